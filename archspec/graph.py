"""Expansion: a resolved Spec → OpGraph (archspec/ir.py), a networkx.DiGraph of primitive ops.

Writes each node's :class:`~archspec.ir.Node` record (op, params, module path, YAML location,
row, enclosing blocks, the op as written) and the graph's :class:`~archspec.ir.Network`
(outputs, input, rows, block labels, ``init:`` tables). Edges carry ``slot``: the input position
at the consumer.

Naming rule — how module paths arise: an op or a block instance is named by its key when it
has one (``name: op`` or a mapping of branches), else by its index in the enclosing list.
Containers (chains, concats, residuals) add a segment only when named, so a block's branches
sit directly under the block (``features.6.branch1.0``) as in timm and torchvision.

Multipliers (``scale:`` in the spec) act here. ``depth`` multiplies every written repeat count.
``width`` multiplies the channel field of every op that has one (``Op.channels``), except ops
marked ``fixed`` and the ops that decide a network output's channels (found by a first
expansion at width 1: walking back from each output through ops without a channel field).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.ir import INPUT, Network, Node, OpGraph, Unit
from archspec.ops import REGISTRY
from archspec.ops.registry import Op
from archspec.shapes import input_shape, inputs_of, op_shape
from archspec.spec.load import YamlPath
from archspec.spec.model import (
    BlockRef,
    ChainNode,
    ConcatNode,
    GateNode,
    IfNode,
    OpLong,
    ResidualNode,
    ScaleSpec,
    TensorInit,
    name_of_copy,
)
from archspec.spec.resolve import BlockEntry, Resolved
from archspec.spec.shortform import BUILTIN_NAMES, Ref, Scope, ShortForms, mentions_input, referenced_params
from archspec.symbolic import Shape

MAX_NODES = 200_000


@dataclass
class Expander:
    resolved: Resolved
    scale_width: bool = True  # False for the first pass that finds the output ops
    fixed_paths: frozenset[str] = frozenset()  # ops whose channels the width multiplier leaves alone
    totals: dict[str, int] | None = None  # block name → instances, from an earlier expansion (block_count)
    instances: dict[str, int] = field(default_factory=dict)  # block name → instances expanded so far
    first_use: dict[str, Loc] = field(default_factory=dict)  # block name → where its first instance is written
    graph: OpGraph = field(default_factory=OpGraph)
    units: list[Unit] = field(default_factory=list)
    outputs_by_path: dict[str, str] = field(default_factory=dict)
    _module_paths: dict[str, Loc] = field(default_factory=dict)
    _containers: set[str] = field(default_factory=set)  # proper prefixes of module paths
    _ids: set[str] = field(default_factory=set)
    _next_suffix: dict[str, int] = field(default_factory=dict)  # id base → last suffix tried
    _order: int = 0
    _shorts: dict[tuple[str, int, str], tuple[Any, str]] = field(default_factory=dict)
    _params: dict[tuple[str, str], BaseModel] = field(default_factory=dict)  # validated op params by (op, arguments)
    _chains: dict[tuple[str, int], tuple[Any, Any]] = field(default_factory=dict)  # composite → (params, chain)
    forms: ShortForms = field(init=False)  # the short-form parser and $param substitution
    _shapes: dict[str, Shape] = field(default_factory=dict)  # shapes worked out early, for `in` in ${...}

    def __post_init__(self) -> None:
        self.forms = ShortForms(self.resolved, self.totals)
        self.forms.input_channels = self.channels_of

    def channels_of(self, node: str, loc: Loc) -> int:
        """The channels of a node's output, for `in` in ${...}: the shape rules run over the node and its
        inputs (a node's inputs are always added before it), remembered for the next `in`."""
        memo = self._shapes
        todo = [node]
        while todo:
            n = todo[-1]
            if n in memo:
                todo.pop()
                continue
            preds = inputs_of(self.graph, n) if n != INPUT else []
            missing = [p for p in preds if p not in memo]
            if missing:
                todo.extend(missing)
                continue
            todo.pop()
            record = self.graph.at(n)
            if record.op == INPUT:
                memo[n] = input_shape(self.resolved.spec.input)
            else:
                memo[n] = op_shape(REGISTRY[record.op], record, [memo[p] for p in preds])
        return memo[node].channels

    # ---- nodes ---------------------------------------------------------------------------------
    def add(
        self,
        op: str,
        params: BaseModel,
        path: str,
        loc: Loc,
        inputs: list[str],
        scope: Scope,
        origin: tuple[str, str] | None = None,
        composite: tuple[str, BaseModel] | None = None,
    ) -> str:
        """Add a primitive node; ``origin`` is (path, short form) of the op as the spec wrote it and
        ``composite`` (op name, params) of the composite op it was expanded from, if any."""
        entry = REGISTRY[op]
        if entry.stateful:
            if path in self._module_paths or not path:
                first = self._module_paths.get(path)
                where = f" (also at {first})" if first else ""
                raise SpecError(
                    f"two modules would be named {path or '<root>'!r}{where}",
                    loc,
                    code="name",
                    hint="give the ops or branches distinct names (name: op)",
                )
            # a module cannot also be the container of others (unnamed nested lists restart at 0)
            parts = path.split(".")
            above = [".".join(parts[:i]) for i in range(1, len(parts))]
            clash = next((q for q in above if q in self._module_paths), None)
            if clash is None and path in self._containers:
                clash = next(q for q in self._module_paths if q.startswith(path + "."))
            if clash is not None:
                raise SpecError(
                    f"module {path!r} would clash with module {clash!r} (at {self._module_paths[clash]})",
                    loc,
                    code="name",
                    hint="name the nested list or branch (name: [...]) so its ops get their own prefix",
                )
            self._module_paths[path] = loc
            self._containers.update(above)
        base = (path or op).replace(".", "_")  # path segments are identifiers or indices
        node_id, n = base, self._next_suffix.get(base, 1)  # resume where the last search stopped: linear
        if n > 1:
            node_id = f"{base}_{n}"
        while node_id in self._ids:
            n += 1
            node_id = f"{base}_{n}"
        self._next_suffix[base] = n
        self._ids.add(node_id)
        if len(self._ids) > MAX_NODES:
            raise SpecError(f"the network expands to more than {MAX_NODES} ops", loc, code="limit")
        self._order += 1
        self.graph.put(
            node_id,
            Node(
                op=op,
                params=params,
                path=path,
                loc=loc,
                unit=scope.unit or path,
                blocks=scope.blocks,
                order=self._order,
                origin=origin[0] if origin else path,
                text=origin[1] if origin else self._short(entry, params, scope),
                composite=composite,
            ),
        )
        seen: set[str] = set()
        for slot, src in enumerate(inputs):
            if src in seen:
                # a DiGraph holds one edge per pair: an input read twice (a residual with an empty
                # body, a concat of two empty branches) is read the second time through an identity
                src = self.add("identity", REGISTRY["identity"].Params(), path, loc, [src], scope)
            seen.add(src)
            self.graph.add_edge(src, node_id, slot=slot)
        return node_id

    def _short(self, entry: Op, params: BaseModel, scope: Scope) -> str:
        """The op's short form, as written under the spec's `defaults:`; params objects are shared
        between equal ops, so this is cached (per file: a block library has defaults of its own)."""
        key = (entry.name, id(params), scope.source.file)
        hit = self._shorts.get(key)
        if hit is None or hit[0] is not params:
            hit = self._shorts[key] = (params, entry.short(params, self.resolved.defaults(entry.name, scope.source)))
        return hit[1]

    # ---- entry -------------------------------------------------------------------------------
    def run(self) -> OpGraph:
        spec = self.resolved.spec
        source = self.resolved.source
        scope = Scope(source=source, env={})
        x = INPUT
        self._ids.add(x)
        self.graph.put(
            x,
            Node(
                op=INPUT,
                params=None,
                path="",
                loc=source.loc(("input", "size")),
                unit=INPUT,
                blocks=(),
                order=0,
                origin="",
                text="input",
            ),
        )
        out = self.members(spec.network, ("network",), scope, x, "")
        outputs = {"logits": out}
        for name, aux in spec.aux.items():
            yp = ("aux", name)
            tap = self.outputs_by_path.get(aux.tap)
            if tap is None:
                hint = did_you_mean(aux.tap, self.outputs_by_path) or "use the module path of a block, e.g. features.9"
                raise SpecError(
                    f"aux head {name!r} taps {aux.tap!r}, which names no node", source.loc(yp + ("tap",)), code="name", hint=hint
                )
            aux_scope = Scope(source=source, env={}, unit=name)
            self.units.append(Unit(name, f"aux head ({aux.tap})", "aux", source.loc(yp)))
            before = set(self.graph)
            outputs[name] = self.node(aux.head, yp + ("head",), aux_scope, tap, name, None, None)
            self._schedule_after(tap, [n for n in self.graph if n not in before])
            self.units[-1] = Unit(name, f"aux head ({aux.tap})", "aux", source.loc(yp), outputs[name])
        self.graph.net = Network(
            name=spec.name,
            file=source.file,
            input=spec.input,
            outputs=outputs,
            aux_weights={n: a.weight for n, a in spec.aux.items()},
            units=self.units,
            block_labels={n: e.definition.label or n for n, e in self.resolved.blocks.items()},
            init=self.init_tables(),
        )
        return self.graph

    def init_tables(self) -> dict[str, dict[str, TensorInit]]:
        """The ``init:`` tables: the spec's under "", each block's under its name; op names checked."""
        tables: dict[str, tuple[Any, Any, YamlPath]] = {"": (self.resolved.spec.init, self.resolved.source, ("init",))}
        for name, entry in self.resolved.blocks.items():
            tables[name] = (entry.definition.init, entry.source, entry.yaml_path + ("init",))
        out: dict[str, dict[str, TensorInit]] = {}
        for name, (table, source, yp) in tables.items():
            for op in table:
                if "." in op or "*" in op:  # a pattern of module paths, e.g. "*.bn3"
                    continue
                if op in REGISTRY and REGISTRY[op].parameter_only:
                    raise SpecError(
                        f"init: {op!r} starts at the value it is written with",
                        source.loc(yp + (op,), key=True),
                        code="bad-op-args",
                        hint=f"write it in the op, e.g. '{REGISTRY[op].short_form}'",
                    )
                if op not in REGISTRY or not REGISTRY[op].stateful:
                    with_weights = sorted(n for n, o in REGISTRY.items() if o.stateful and not o.parameter_only)
                    raise SpecError(
                        f"init: {op!r} is not an op with weights",
                        source.loc(yp + (op,), key=True),
                        code="unknown-op",
                        hint=did_you_mean(op, with_weights)
                        or f"initialise one of: {', '.join(with_weights)} (a composite conv is conv2d + bn)",
                    )
            out[name] = {op: s if isinstance(s, TensorInit) else TensorInit(weight=s) for op, s in table.items()}
        return out

    def _schedule_after(self, tap: str, head: list[str]) -> None:
        """Order an aux head right after the node it taps, as hand-written networks compute it
        (torchvision's GoogLeNet and Inception-v3): the stable topological order then runs the
        head before the main path goes on, so dropout draws random numbers in the same order."""
        at = self.graph.at
        base = at(tap).order
        for k, node in enumerate(sorted(head, key=lambda n: at(n).order), start=1):
            at(node).order = base + k / (len(head) + 1)

    # ---- structure -----------------------------------------------------------------------------
    def node(
        self, node: Any, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool = False
    ) -> str:
        """Expand one node applied to x; return the node id of its output.

        A node with a written repeat count (``op * N``, ``repeat: N``) is the list of its N copies
        standing where the node stands: named (or a numbered branch), its copies are numbered under
        that name (``layer.0 … layer.N-1``); unnamed (a residual's body), under the enclosing prefix.
        A chain's members pass ``once``: there the copies take consecutive indices of the chain.
        """
        seg = name if name is not None else (str(index) if index is not None else None)
        self.forms.input_node = x  # what `in` in this node's ${...} refers to
        if not once and isinstance(node, (str, BlockRef, ChainNode)):
            written = self.written_repeat(node, yp, scope)
            if written is not None:
                path = _join(prefix, seg)
                pattern = None if isinstance(node, str) else node.names
                for i in range(written):
                    x = self.node(node, yp, scope, x, path, name_of_copy(pattern, i) if pattern else None, i, once=True)
                return x
        chain_copy = once and isinstance(node, ChainNode) and "repeat" in node.model_fields_set
        if scope.unit is None and (_is_group(node, name) or chain_copy):  # a chain's copy is a row, named or not
            return self.group(node, yp, scope, x, prefix, name, index, _join(prefix, seg), once)
        if isinstance(node, str):
            ref = self.forms.parse(node, yp, scope)
            return self.reference(ref, yp, scope, x, prefix, seg)
        if isinstance(node, list):
            return self.members(node, yp, scope, x, _join(prefix, name))
        if isinstance(node, ChainNode):
            # a copy of a repeated chain is named like a block instance (by its index), so copies never clash
            copy = once and "repeat" in node.model_fields_set
            return self.members(node.chain, yp + ("chain",), scope, x, _join(prefix, seg if copy else name))
        if isinstance(node, ConcatNode):
            return self.concat(node, yp, scope, x, _join(prefix, name))
        if isinstance(node, ResidualNode):
            return self.residual(node, yp, scope, x, _join(prefix, name))
        if isinstance(node, GateNode):  # a module of its own in the references: named like an op
            return self.gate(node, yp, scope, x, _join(prefix, seg))
        if isinstance(node, IfNode):  # transparent: the chosen node stands where the if stands, with its name or index
            return self.conditional(node, yp, scope, x, prefix, name, index)
        if isinstance(node, OpLong):
            loc = scope.source.loc(yp)
            raw = dict(node.model_extra or {})
            fixed = raw.pop("fixed", False)
            if not isinstance(fixed, bool):
                raise SpecError(
                    f"'fixed' must be true or false, got {fixed!r}", scope.source.loc(yp + ("fixed",)), code="bad-op-args"
                )
            args = {k: self.forms.subst_value(v, yp + (k,), scope) for k, v in raw.items()}
            locs = {k: scope.source.loc(yp + (k,), key=True) for k in raw}
            from_input = frozenset(
                k for k, v in raw.items() if isinstance(v, str) and (mentions_input(v) or referenced_params(v) & scope.from_input)
            )
            ref = Ref(node.op, args, locs, 1, loc, fixed, from_input=from_input)
            if node.op not in REGISTRY:
                self.forms.unknown(node.op, scope.source.loc(yp + ("op",)))
            return self.reference(ref, yp, scope, x, prefix, seg)
        if isinstance(node, BlockRef):
            loc = scope.source.loc(yp + ("block",))
            params = {k: self.forms.subst_value(v, yp + ("params", k), scope) for k, v in node.params.items()}
            from_input = frozenset(
                k
                for k, v in node.params.items()
                if isinstance(v, str) and (mentions_input(v) or referenced_params(v) & scope.from_input)
            )
            ref = Ref(
                node.block,
                params,
                {k: scope.source.loc(yp + ("params", k), key=True) for k in params},
                self.repeat_of(node, yp, scope),
                loc,
                from_input=from_input,
            )
            if node.block not in self.resolved.blocks:
                self.forms.unknown(node.block, loc)
            return self.reference(ref, yp, scope, x, prefix, seg)
        if isinstance(node, dict):
            ((key, value),) = node.items()
            return self.node(value, yp + (key,), scope, x, prefix, key, None)
        raise SpecError(f"unexpected node {node!r}", scope.source.loc(yp), code="schema")  # pragma: no cover

    def group(
        self,
        node: Any,
        yp: YamlPath,
        scope: Scope,
        x: str,
        prefix: str,
        name: str | None,
        index: int | None,
        unit: str,
        once: bool,
    ) -> str:
        """A container written in place among the rows (not in a block): one report row for all its ops."""
        out = self.node(node, yp, replace(scope, unit=unit), x, prefix, name, index, once)
        self.units.append(Unit(unit, _group_label(node), "group", scope.source.loc(yp), out))
        self.outputs_by_path.setdefault(unit, out)
        return out

    def members(self, members: Any, yp: YamlPath, scope: Scope, x: str, prefix: str) -> str:
        """A chain: each member applied to the previous one's output."""
        index = 0
        items = members.items() if isinstance(members, dict) else enumerate(members)
        for key, member in items:
            myp = yp + (key,)
            if isinstance(members, dict):
                x = self.node(member, myp, scope, x, prefix, str(key), None)
                continue
            if isinstance(member, dict) and len(member) == 1 and not isinstance(member, BaseModel):
                ((name, value),) = member.items()
                x = self.node(value, myp + (name,), scope, x, prefix, name, None)
                index += 1
                continue
            self.forms.input_node = x
            repeat = self.repeat_of(member, myp, scope)
            pattern = member.names if isinstance(member, (BlockRef, ChainNode)) else None
            for k in range(repeat):
                copy_name = name_of_copy(pattern, k) if pattern else None
                x = self.node(member, myp, scope, x, prefix, copy_name, index, once=True)
                index += 1
        return x

    def written_repeat(self, node: str | BlockRef | ChainNode, yp: YamlPath, scope: Scope) -> int | None:
        """The repeat count of a short form, block reference or chain, or None where none was written."""
        if isinstance(node, str):
            ref = self.forms.parse(node, yp, scope)
            return ref.repeat if ref.repeated else None
        return self.repeat_of(node, yp, scope) if "repeat" in node.model_fields_set else None

    def repeat_of(self, member: Any, yp: YamlPath, scope: Scope) -> int:
        if isinstance(member, str):
            return self.forms.parse(member, yp, scope).repeat
        if isinstance(member, (BlockRef, ChainNode)):
            loc = scope.source.loc(yp + ("repeat",))
            count = self.forms.check_repeat(self.forms.subst_value(member.repeat, yp + ("repeat",), scope), loc)
            return self.forms.check_repeat(self.scale.repeats(count), loc) if "repeat" in member.model_fields_set else count
        return 1

    @property
    def scale(self) -> ScaleSpec:
        return self.resolved.spec.scale

    def concat(self, node: ConcatNode, yp: YamlPath, scope: Scope, x: str, prefix: str) -> str:
        outs: list[str] = []
        branches = node.concat
        items = branches.items() if isinstance(branches, dict) else enumerate(branches)
        for key, branch in items:
            byp = yp + ("concat", key)
            if isinstance(branches, dict):
                outs.append(self.node(branch, byp, scope, x, prefix, str(key), None))
            else:
                outs.append(self.node(branch, byp, scope, x, prefix, None, int(key)))
        if len(outs) == 1:
            return outs[0]
        loc = scope.source.loc(yp + ("concat",), key=True)
        return self.add("concat", REGISTRY["concat"].Params(), _join(prefix, "concat"), loc, outs, scope)

    def residual(self, node: ResidualNode, yp: YamlPath, scope: Scope, x: str, prefix: str) -> str:
        r = node.residual
        ryp = yp + ("residual",)
        body = self.node(r.body, ryp + ("body",), scope, x, prefix, None, None)
        short = x if r.shortcut is None else self.node(r.shortcut, ryp + ("shortcut",), scope, x, prefix, None, None)
        self.forms.input_node = x
        scale = self.forms.subst_value(r.scale, ryp + ("scale",), scope)
        params = self.validate_params(
            REGISTRY["add"], {"scale": scale}, {"scale": scope.source.loc(ryp + ("scale",))}, scope.source.loc(ryp)
        )
        out = self.add("add", params, _join(prefix, "add"), scope.source.loc(ryp, key=True), [short, body], scope)
        if r.then is not None:
            self.forms.input_node = out
            ref = self.forms.parse(r.then, ryp + ("then",), scope)
            if ref.name not in REGISTRY:
                self.forms.unknown(ref.name, ref.loc)
            if ref.repeated:  # 'then: relu * 2': act.0, act.1, as every named repeat
                for i in range(ref.repeat):
                    out = self.reference(ref, ryp + ("then",), scope, out, _join(prefix, "act"), str(i))
            else:
                out = self.reference(ref, ryp + ("then",), scope, out, prefix, "act")
        return out

    def gate(self, node: GateNode, yp: YamlPath, scope: Scope, x: str, path: str) -> str:
        """x · gate(x): the gate's ops sit under the gate's own path (timm's ``se.fc1``)."""
        g = self.node(node.gate, yp + ("gate",), scope, x, path, None, None)
        return self.add(
            "mul", REGISTRY["mul"].Params(), _join(path, "mul"), scope.source.loc(yp + ("gate",), key=True), [x, g], scope
        )

    def conditional(
        self, node: IfNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None
    ) -> str:
        cond = self.forms.subst_value(node.cond, yp + ("if",), scope)
        if not isinstance(cond, bool):
            raise SpecError(
                f"'if' needs true or false, got {cond!r}",
                scope.source.loc(yp + ("if",)),
                code="param",
                hint="pass the block parameter as true or false, e.g. projection=true",
            )
        chosen, key = (node.then, "then") if cond else (node.otherwise, "else")
        skipped = node.otherwise if cond else node.then
        if skipped is not None:
            # the branch not taken is still language: the ops and blocks it names must exist
            self.check_names(skipped, yp + ("else" if cond else "then",), scope)
            if scope.used is not None:
                # a parameter written in the branch not taken is used: a block's optional parts need their
                # parameters whether or not this instance has them
                scope.used |= referenced_params(skipped)
        if chosen is None:
            return x
        return self.node(chosen, yp + (key,), scope, x, prefix, name, index)

    def check_names(self, node: Any, yp: YamlPath, scope: Scope) -> None:
        """Every op and block a node names exists, without expanding it (a branch of an 'if' not taken)."""
        if isinstance(node, str):
            self.forms.check_name(node, yp, scope)
        elif isinstance(node, OpLong):
            if node.op not in REGISTRY and "$" not in node.op:
                self.forms.unknown(node.op, scope.source.loc(yp + ("op",)))
        elif isinstance(node, BlockRef):
            if node.block not in self.resolved.blocks and "$" not in node.block:
                self.forms.unknown(node.block, scope.source.loc(yp + ("block",)))
        for part, part_yp in _parts(node, yp):
            self.check_names(part, part_yp, scope)

    # ---- ops and blocks ----------------------------------------------------------------------
    def reference(self, ref: Ref, yp: YamlPath, scope: Scope, x: str, prefix: str, seg: str | None) -> str:
        path = _join(prefix, seg)
        new_unit = scope.unit is None
        if ref.name in REGISTRY:
            op = REGISTRY[ref.name]
            if not op.standalone:
                raise SpecError(
                    f"{op.name!r} cannot stand alone: it merges branches",
                    ref.loc,
                    code="bad-op-args",
                    hint="write a residual sum as 'residual: {body: [...]}' and a concatenation as 'concat: [branch, ...]'",
                )
            inner = replace(scope, unit=scope.unit or path)
            out, params = self.op(op, ref, inner, x, path)
            if new_unit:
                self.units.append(Unit(path, self._short(op, params, scope), "op", ref.loc, out))
            self.outputs_by_path.setdefault(path, out)
            return out
        entry = self.resolved.blocks.get(ref.name)
        if entry is None:
            self.forms.unknown(ref.name, ref.loc)
        assert entry is not None
        if any(b == ref.name for b, _ in scope.blocks):
            raise SpecError(
                f"block {ref.name!r} uses itself",
                ref.loc,
                code="name",
                hint="a block cannot contain itself, directly or through other blocks",
            )
        env = self.block_env(entry, ref, scope)
        index = self.instances.get(ref.name, 0)  # block_index: instances of this block so far, in order
        self.instances[ref.name] = index + 1
        self.first_use.setdefault(ref.name, ref.loc)
        inner = Scope(
            entry.source, env, scope.blocks + ((ref.name, path),), scope.unit or path, set(), index, ref.from_input & set(env)
        )  # parameters computed from `in` are not scaled again
        definition = entry.definition
        body_yp = entry.yaml_path if definition.body_key != "op" else entry.yaml_path + ("op",)
        out = self.node(definition.body, body_yp, inner, x, path, None, None)
        unused = set(definition.params) - (inner.used or set())
        if unused:
            name = sorted(unused)[0]
            raise SpecError(
                f"parameter ${name} of block {ref.name!r} is never used",
                entry.source.loc(entry.yaml_path + ("params", name), key=True),
                code="param",
                hint="remove it, or use it as $" + name,
            )
        if new_unit:
            self.units.append(Unit(path, definition.label or ref.name, "block", ref.loc, out, ref.name))
        self.outputs_by_path.setdefault(path, out)
        return out

    def block_env(self, entry: BlockEntry, ref: Ref, scope: Scope) -> dict[str, Any]:
        declared = entry.definition.params
        for name in BUILTIN_NAMES:
            if name in declared:
                meaning = "this instance's index among" if name == "block_index" else "the number of"
                raise SpecError(
                    f"block {ref.name!r} declares a parameter ${name}, a name every block defines",
                    entry.source.loc(entry.yaml_path + ("params", name), key=True),
                    code="param",
                    hint=f"rename the parameter: ${name} is {meaning} the block's instances (see docs/language.md)",
                )
        env = dict(declared)
        for key, value in ref.args.items():
            if key not in declared:
                hint = did_you_mean(key, declared) or (
                    f"its parameters are {', '.join(declared)}" if declared else "it takes no parameters"
                )
                raise SpecError(
                    f"block {ref.name!r} has no parameter {key!r}", ref.token_locs.get(key, ref.loc), code="param", hint=hint
                )
            env[key] = value
        return env

    def op_args(self, op: Op, ref: Ref, path: str, scope: Scope) -> dict[str, Any]:
        """The op's arguments: defaults, then the spec's, then the width multiplier."""
        args = {**self.resolved.defaults(op.name, scope.source), **ref.args}
        field_name = op.channels
        if (
            not self.scale_width
            or field_name is None
            or ref.fixed
            or path in self.fixed_paths
            or self.scale.width == 1
            or not isinstance(args.get(field_name), int)
            or field_name in ref.from_input
        ):  # computed from `in`, the already scaled input channels
            return args
        old = args[field_name]
        args[field_name] = self.scale.channels(old)
        if args.get("groups") == old:  # depthwise stays depthwise
            args["groups"] = args[field_name]
        return args

    def op(self, op: Op, ref: Ref, scope: Scope, x: str, path: str) -> tuple[str, Any]:
        """Add the op (expanding composites); return its output node and its validated params."""
        args = self.op_args(op, ref, path, scope)
        params = self.validate_params(op, args, ref.token_locs, ref.loc)
        chain = self.expand_composite(op, params, ref.loc)
        if chain is None:
            return self.add(op.name, params, path, ref.loc, [x], scope), params
        origin = (path, self._short(op, params, scope))
        for child, child_op, child_params in chain:
            x = self.add(child_op, child_params, _join(path, child), ref.loc, [x], scope, origin, (op.name, params))
        return x, params

    def expand_composite(self, op: Op, params: Any, loc: Loc) -> list[tuple[str, str, Any]] | None:
        """A composite op's primitive chain with validated params; None for a primitive op.

        Equal ops share one params object (see validate_params), so the chain is worked out once
        per distinct op: a zoo network writes a few dozen distinct convs hundreds of times."""
        key = (op.name, id(params))
        hit = self._chains.get(key)
        if hit is not None and hit[0] is params:
            return hit[1]
        chain = op.expand(params)
        if chain is not None:
            chain = [
                (child, child_op, self.validate_params(REGISTRY[child_op], child_args, {}, loc))
                for child, child_op, child_args in chain
            ]
        self._chains[key] = (params, chain)
        return chain

    def validate_params(self, op: Op, args: dict[str, Any], token_locs: dict[str, Loc], loc: Loc) -> Any:
        key = (op.name, repr(args))  # arguments are plain YAML data, so repr tells them apart (1, 1.0, True)
        cached = self._params.get(key)
        if cached is not None:  # params are frozen models: equal arguments can share one
            return cached
        try:
            params = op.Params.model_validate(args)
            self._params[key] = params
            return params
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            field = str(err["loc"][0]) if err["loc"] else ""
            where = token_locs.get(field, loc)
            if err["type"] == "extra_forbidden":
                fields = list(op.Params.model_fields) + list(op.flags)
                hint = did_you_mean(field, fields) or f"{op.name} takes: {', '.join(fields) or 'no arguments'}"
                return_error = SpecError(f"{op.name} has no option {field!r}", where, code="bad-op-args", hint=hint)
            elif err["type"] == "missing":
                return_error = SpecError(
                    f"{op.name} needs {field!r}",
                    loc,
                    code="bad-op-args",
                    hint=f"short form: {op.short_form}" if op.short_form else None,
                )
            else:
                msg = err["msg"].removeprefix("Value error, ")
                return_error = SpecError(f"{op.name} {field}: {msg}", where, code="bad-op-args")
            raise return_error from None


def _is_group(node: Any, name: str | None) -> bool:
    """Merges are one row wherever they stand; an op list only when unnamed (a named one is a section)."""
    return isinstance(node, (ConcatNode, ResidualNode, GateNode)) or (name is None and isinstance(node, (list, ChainNode)))


def _group_label(node: Any) -> str:
    if isinstance(node, ConcatNode):
        return f"concat of {len(node.concat)} branches"
    if isinstance(node, ResidualNode):
        return "residual"
    if isinstance(node, GateNode):
        return "gate"
    members = node.chain if isinstance(node, ChainNode) else node
    texts = []
    for m in members.values() if isinstance(members, dict) else members:
        if isinstance(m, dict) and len(m) == 1:
            m = next(iter(m.values()))
        texts.append(m.split()[0] if isinstance(m, str) else "…")
    return " → ".join(texts)


def _join(prefix: str, seg: str | None) -> str:
    if seg is None:
        return prefix
    return f"{prefix}.{seg}" if prefix else seg


def output_ops(graph: OpGraph) -> frozenset[str]:
    """Module paths of the ops that decide the channels of a network output.

    Walking back from each output (logits, aux heads) through ops without a channel field
    (activations, dropout, pools, flatten, merges), the first op with one is such an op.
    """
    found: set[str] = set()
    todo = list(graph.net.outputs.values())
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        record = graph.at(node)
        if record.op == INPUT:
            continue
        if REGISTRY[record.op].channels is not None:
            found.add(record.origin)
        else:
            todo.extend(graph.pred[node])
    return frozenset(found)


def _expand_counted(resolved: Resolved, **options: Any) -> OpGraph:
    """Expand once; again when ``block_count`` was used, now with every block's number of instances.

    The first expansion counts the instances (block_count is provisional there); the second
    must make as many, else the count would depend on itself: a located error."""
    first = Expander(resolved, **options)
    graph = first.run()
    if not first.forms.counted:
        return graph
    second = Expander(resolved, totals=dict(first.instances), **options)
    graph = second.run()
    if second.instances != first.instances:
        name = next(
            n for n in sorted(set(first.instances) | set(second.instances)) if first.instances.get(n) != second.instances.get(n)
        )
        raise SpecError(
            f"the number of instances of block {name!r} depends on $block_count",
            second.first_use.get(name) or first.first_use[name],
            code="param",
            hint="block_count may set values inside the blocks (a drop rate), not how many blocks there are",
        )
    return graph


def expand(resolved: Resolved) -> OpGraph:
    if resolved.spec.scale.width == 1:
        return _expand_counted(resolved)
    fixed = output_ops(_expand_counted(resolved, scale_width=False))
    return _expand_counted(resolved, fixed_paths=fixed)


def _parts(node: Any, yp: YamlPath) -> list[tuple[Any, YamlPath]]:
    """The nodes a node holds, each with its YAML path (none for an op or a block reference)."""
    if isinstance(node, list):
        return [(item, yp + (i,)) for i, item in enumerate(node)]
    if isinstance(node, dict):  # named nodes: a chain's mapping, or one name: node
        return [(value, yp + (key,)) for key, value in node.items()]
    if isinstance(node, ChainNode):
        return [(node.chain, yp + ("chain",))]
    if isinstance(node, ConcatNode):
        return [(node.concat, yp + ("concat",))]
    if isinstance(node, GateNode):
        return [(node.gate, yp + ("gate",))]
    parts: tuple[tuple[str, Any], ...]
    if isinstance(node, ResidualNode):
        r = node.residual
        parts = (("body", r.body), ("shortcut", r.shortcut), ("then", r.then))
    elif isinstance(node, IfNode):
        parts = (("then", node.then), ("else", node.otherwise))
    else:
        return []
    base = yp + ("residual",) if isinstance(node, ResidualNode) else yp
    return [(part, base + (key,)) for key, part in parts if part is not None]
