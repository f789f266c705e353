"""The structure walk: each node kind of archspec/graph/tree.py expanded into primitive ops.

``node`` first unrolls a written repeat count and opens a report row for a container written
among the rows, then dispatches on the node's kind to the method of that name (``short``,
``seq``, ``named``, ``chain``, ``concat``, ``residual``, ``gate``, ``cond``, ``op``, ``block``).
Every method takes the node, its YAML path, the scope (block environment), ``x`` (the node id it
is applied to), the name prefix, and its name or index, and returns the node id of its output.
Naming lives in naming.py, writing nodes in writer.py, an op's parameters in params.py, written
values (long forms, repeat counts, conditions) in reading.py, block environments in blocks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from archspec.errors import SpecError, did_you_mean
from archspec.graph.blocks import check_nesting, check_used, instance_scope, refuse_named_inline
from archspec.graph.early import EarlyShapes
from archspec.graph.instances import InstanceCopies
from archspec.graph.naming import Copies, check_top_level, group_label, in_place, is_group, join
from archspec.graph.outputs import check_aux_name, feature_taps, named_outputs
from archspec.graph.params import OpParams, check_standalone
from archspec.graph.reading import Reader
from archspec.graph.refs import PathValues, earlier_value
from archspec.graph.share import shared
from archspec.graph.tree import kind_of
from archspec.graph.writer import Remake, Writer, Written
from archspec.ir import Network, OpGraph, Unit
from archspec.language.load import YamlPath
from archspec.language.model import (
    BlockRef,
    ChainNode,
    ConcatNode,
    FromNode,
    GateNode,
    IfNode,
    OpLong,
    ResidualNode,
    ShareNode,
)
from archspec.language.resolve import BlockEntry, Resolved
from archspec.language.shortform import Ref, Scope, ShortForms
from archspec.ops import REGISTRY
from archspec.ops.registry import Op

Named = dict[str, Any]  # one name: node


def network(resolved: Resolved, outputs: dict[str, str], units: list[Unit], written: dict[str, Any]) -> Network:
    """The Network record the expansion writes: the spec's fields, the outputs and the report's rows;
    ``written``: what ``outputs:`` says (graph/outputs.py)."""
    spec = resolved.spec
    return Network(
        name=spec.name,
        file=resolved.source.file,
        input=spec.input,
        outputs=outputs,
        aux_weights={n: a.weight for n, a in spec.aux.items()},
        units=units,
        block_labels={n: e.definition.label or n for n, e in resolved.blocks.items()},
        init=resolved.init,
        frozen=tuple(spec.frozen),
        **written,
    )


def _seg(name: str | None, index: int | None) -> str | None:
    return name if name is not None else (str(index) if index is not None else None)


@dataclass
class Expander:
    """One expansion of a resolved spec (archspec/graph/__init__.py runs it)."""

    resolved: Resolved
    scale_width: bool = True  # False for a first pass that finds the output ops
    fixed_paths: frozenset[str] = frozenset()  # ops whose channels the width multiplier leaves alone
    totals: dict[str, int] | None = None  # block name → instances, when known before (block_count)
    graph: OpGraph = field(default_factory=OpGraph)
    units: list[Unit] = field(default_factory=list)
    values: PathValues = field(default_factory=PathValues)  # module path → the values there (graph/refs.py)
    instances: dict[str, int] = field(default_factory=dict)  # block name → instances expanded so far
    first_use: dict[str, Any] = field(default_factory=dict)  # block name → where its first instance is written
    written: list[Written] = field(default_factory=list)  # ops that read block_count or were scaled
    copies: Copies = field(default_factory=Copies)  # the repeat counts around the node being expanded

    def __post_init__(self) -> None:
        self.params = OpParams(self.resolved, self.scale_width)
        self.out = Writer(self.graph, self.params)
        self.early = EarlyShapes(self.graph, self.resolved.spec.input)
        self.forms = ShortForms(self.resolved, self.totals, self.early.channels)
        self.read = Reader(self.resolved, self.forms)
        parts = (self.graph, self.out, self.values, self.early, self.forms, self.instances, self.units, self.written, self.copies)
        self.equal = InstanceCopies(*parts, enabled=not self.fixed_paths)  # not where paths decide widths (graph/instances.py)

    # ---- entry -------------------------------------------------------------------------------
    def run(self) -> OpGraph:
        spec, source = self.resolved.spec, self.resolved.source
        x = self.out.input(source.loc(("input", "size")))
        last = self.members(spec.network, ("network",), Scope(source=source, env={}), x, "")
        outputs, written = named_outputs(self.values, spec.outputs, source, last)  # written: main, named_outputs, output_paths
        if spec.features is not None:
            written["features"] = feature_taps(self.values, spec.features, source)
        for name, aux in spec.aux.items():
            check_aux_name(name, outputs, source)
            outputs[name] = self.aux_head(name, aux.tap, aux.head)
        self.graph.net = network(self.resolved, outputs, self.units, written)
        for node, shape in self.early.memo.items():  # handed on to shape inference
            self.graph.at(node).shape = shape
        return self.graph

    def aux_head(self, name: str, tap_path: str, head: Any) -> str:
        """An aux head: its ops applied to the output of the module at ``tap_path``, after it in order."""
        source, yp = self.resolved.source, ("aux", name)
        check_top_level(name, source.loc(yp, key=True))
        where = source.loc(yp + ("tap",))
        tap = self.values.value(tap_path, where, f"aux head {name!r} taps")
        if tap is None:
            hint = did_you_mean(tap_path, self.values.at) or "use the module path of a block, e.g. features.9"
            raise SpecError(f"aux head {name!r} taps {tap_path!r}, which names no node", where, code="name", hint=hint)
        self.units.append(Unit(name, f"aux head ({tap_path})", "aux", source.loc(yp)))
        before = len(self.graph)
        out = self.node(head, yp + ("head",), Scope(source=source, env={}, unit=name), tap, name, None, None)
        self.out.schedule_after(tap, list(self.graph)[before:])
        self.units[-1] = replace(self.units[-1], output=out)
        return out

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
        if prefix or name is None:
            return self._node(node, yp, scope, x, prefix, name, index, once)
        before = len(self.graph)
        out = self._node(node, yp, scope, x, prefix, name, index, once)
        if len(self.graph) > before:  # the name now names values of the compiled forward (an empty branch names none)
            check_top_level(name, scope.source.loc(yp, key=True))
        return out

    def _node(
        self, node: Any, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        since = self.values.mark()
        if isinstance(node, ChainNode) and node.flat and name is not None:  # `head: {chain: [...], repeat: 8, flat: true}`
            path = join(prefix, _seg(name, index))
            x = flat_copies(self, node, yp, scope, x, path, 0)[0]
            return self.values.keep(path, x, scope.source.loc(yp), since)
        if not once and isinstance(node, (str, BlockRef, ChainNode)):
            written = self.read.written_repeat(node, yp, scope, x)
            if written is not None:
                path = join(prefix, _seg(name, index))
                pattern = self.read.copy_names(node, yp, scope, x)
                with self.copies.nested(written, scope.source.loc(yp)):
                    for i in range(written):
                        x = self.node(node, yp, scope, x, path, self.read.copy_name(pattern, i, yp, scope), i, once=True)
                # the copies stand where the node stands: a named node is the chain of its copies
                return x if name is None else self.values.keep(path, x, scope.source.loc(yp), since)
        chain_copy = once and isinstance(node, ChainNode) and "repeat" in node.model_fields_set
        if scope.unit is None and (is_group(node, name) or chain_copy):  # a chain's copy is a row, named or not
            named = name is not None or chain_copy or isinstance(node, GateNode)  # a gate is named like an op
            unit = join(prefix, _seg(name, index)) if named else in_place(prefix, index)
            out = self.node(node, yp, replace(scope, unit=unit), x, prefix, name, index, once)
            self.units.append(Unit(unit, group_label(node), "group", scope.source.loc(yp), out))
            return self.values.keep(unit, out, scope.source.loc(yp), since)
        method: Callable[..., str] = getattr(self, kind_of(node))
        out = method(node, yp, scope, x, prefix, name, index, once)
        if chain_copy:  # a copy of a repeated chain is named like a block instance (its index or pattern name)
            self.values.keep(join(prefix, _seg(name, index)), out, scope.source.loc(yp), since)
        return out if name is None else self.values.keep(join(prefix, name), out, scope.source.loc(yp), since)

    def short(
        self, node: str, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        ref = self.forms.parse(node, yp, scope, x)
        return self.reference(ref, yp, scope, x, prefix, _seg(name, index), lambda: self.forms.reparse(node, yp, scope, x))

    def seq(
        self, node: list[Any], yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        return self.members(node, yp, scope, x, join(prefix, name))

    def named(
        self, node: Named, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        ((key, value),) = node.items()
        if name is not None:  # `stem: {conv1: ...}`: a name inside a name is one path segment under it
            prefix = join(prefix, _seg(name, index))
        return self.node(value, yp + (key,), scope, x, prefix, self.read.key(key, yp + (key,), scope, x), None)

    def chain(
        self, node: ChainNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        # a copy of a repeated chain is named like a block instance (by its index), so copies never clash
        copy = once and "repeat" in node.model_fields_set
        return self.members(node.chain, yp + ("chain",), scope, x, join(prefix, _seg(name, index) if copy else name))

    def members(self, members: Any, yp: YamlPath, scope: Scope, x: str, prefix: str) -> str:
        """A chain: each member applied to the previous one's output."""
        if isinstance(members, dict):
            for key, member in members.items():
                x = self.node(member, yp + (key,), scope, x, prefix, self.read.key(str(key), yp + (key,), scope, x), None)
            return x
        index = 0
        for i, written in enumerate(members):
            x, index = list_item(self, written, yp + (i,), scope, x, prefix, index)
        return x

    def concat(
        self, node: ConcatNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        prefix, count = join(prefix, name), self.read.count_of(node, yp, scope, x)  # count: N, side by side
        with self.copies.nested(count, scope.source.loc(yp + ("count",) if node.count is not None else yp)):
            outs = [self.node(b, p, s, x, prefix, key, at) for b, p, s, key, at in self.read.branches(node, count, yp, scope, x)]
        if len(outs) == 1:
            return outs[0]
        loc = scope.source.loc(yp + ("concat",), key=True)
        return self.out.add("concat", REGISTRY["concat"].Params(), join(prefix, "concat"), loc, outs, scope)

    def residual(
        self, node: ResidualNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        prefix = join(prefix, name)
        r, ryp = node.residual, yp + ("residual",)
        body = self.node(r.body, ryp + ("body",), scope, x, prefix, None, None)
        short = x if r.shortcut is None else self.node(r.shortcut, ryp + ("shortcut",), scope, x, prefix, None, None)
        scale = self.read.structural(r.scale, ryp + ("scale",), scope, x)
        params = self.params.validate(
            REGISTRY["add"], {"scale": scale}, {"scale": scope.source.loc(ryp + ("scale",))}, scope.source.loc(ryp)
        )
        out = self.out.add("add", params, join(prefix, "add"), scope.source.loc(ryp, key=True), [short, body], scope)
        if r.then is None:
            return out
        then, typ = r.then, ryp + ("then",)
        ref = self.forms.parse(then, typ, scope, out)
        if ref.name not in REGISTRY:
            self.forms.unknown(ref.name, ref.loc)
        if not ref.repeated:
            return self.reference(ref, typ, scope, out, prefix, "act", lambda: self.forms.reparse(then, typ, scope, out))
        add, since = out, self.values.mark()
        for i in range(ref.repeat):  # 'then: relu * 2': act.0, act.1, as every named repeat
            out = self.reference(
                ref, typ, scope, out, join(prefix, "act"), str(i), lambda: self.forms.reparse(then, typ, scope, add)
            )
        return self.values.keep(join(prefix, "act"), out, ref.loc, since)  # `act`: the chain of its copies

    def gate(
        self, node: GateNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        """x · gate(x): the gate's ops sit under the gate's own path (timm's ``se.fc1``)."""
        path = join(prefix, _seg(name, index))  # a module of its own in the references: named like an op
        since = self.values.mark()
        g = self.node(node.gate, yp + ("gate",), scope, x, path, None, None)
        loc = scope.source.loc(yp + ("gate",), key=True)
        out = self.out.add("mul", REGISTRY["mul"].Params(), join(path, "mul"), loc, [x, g], scope)
        return self.values.keep(path, out, loc, since)  # the gate, around its body's ops at its path

    def cond(
        self, node: IfNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        """Transparent: the chosen node stands where the if stands, with its name or index."""
        chosen, cyp = self.read.chosen(node, yp, scope, x)
        if chosen is None:
            return x
        return self.node(chosen, cyp, scope, x, prefix, name, index)

    def op(
        self, node: OpLong, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        ref = self.read.long_op(node, yp, scope, x)
        if node.op not in REGISTRY:
            self.forms.unknown(node.op, scope.source.loc(yp + ("op",)))
        return self.reference(ref, yp, scope, x, prefix, _seg(name, index), lambda: self.read.long_op(node, yp, scope, x))

    def block(
        self, node: BlockRef, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        return self.reference(self.read.long_block(node, yp, scope, x), yp, scope, x, prefix, _seg(name, index), None)

    def take(
        self, node: FromNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        """The value of an earlier named node, in place of x (archspec/graph/refs.py)."""
        loc = scope.source.loc(yp + ("from",))  # from: $skip in a block
        return earlier_value(self.forms.subst_text(node.source, loc, scope, x), scope, self.values, loc)

    def share(
        self, node: ShareNode, yp: YamlPath, scope: Scope, x: str, prefix: str, name: str | None, index: int | None, once: bool
    ) -> str:
        row = None if scope.unit else join(prefix, name) if name is not None else in_place(prefix, index)
        return shared(self.out, self.forms, self.values, node.share, x, scope.source.loc(yp + ("share",)), scope, row, self.units)

    # ---- ops and blocks ----------------------------------------------------------------------
    def reference(self, ref: Ref, yp: YamlPath, scope: Scope, x: str, prefix: str, seg: str | None, remake: Remake | None) -> str:
        path = join(prefix, seg)
        if ref.name in REGISTRY:
            return self.apply_op(REGISTRY[ref.name], ref, scope, x, path, remake)
        entry = self.resolved.blocks.get(ref.name)
        if entry is None:
            self.forms.unknown(ref.name, ref.loc)
        assert entry is not None
        check_nesting(ref, scope.blocks)
        if entry.definition.inline:
            return self.inline(entry, ref, yp, scope, x, prefix, seg)
        inner = instance_scope(entry, ref, scope, x, path, scope.unit or path, self.instances, self.first_use)
        since = self.values.mark()
        definition = entry.definition
        key = self.equal.key(ref.name, inner)
        out = self.equal.copy(key, x, path, inner) if key is not None else None
        if out is None:
            start = self.equal.start()
            body_yp = entry.yaml_path if definition.body_key != "op" else entry.yaml_path + ("op",)
            out = self.node(definition.body, body_yp, inner, x, path, None, None)
            check_used(entry, ref, inner.used)
            self.equal.keep(key, start, x, out, path, inner)
        if scope.unit is None:
            self.units.append(Unit(path, definition.label or ref.name, "block", ref.loc, out, ref.name, dict(inner.env)))
        return self.values.keep(path, out, ref.loc, since)

    def inline(self, entry: BlockEntry, ref: Ref, yp: YamlPath, scope: Scope, x: str, prefix: str, seg: str | None) -> str:
        """An instance of an inline block: its body stands where the instance stands (at its index in a list:
        ``seg`` a number), its parts named there; among the rows it is one row, as a container in place."""
        index = int(seg) if seg is not None and seg.isdigit() else None
        if seg is not None and index is None:
            refuse_named_inline(ref, scope.source.loc(yp, key=True) if yp and isinstance(yp[-1], str) else ref.loc)
        inner = instance_scope(entry, ref, scope, x, prefix, scope.unit, self.instances, self.first_use)
        definition = entry.definition
        body_yp = entry.yaml_path if definition.body_key != "op" else entry.yaml_path + ("op",)
        rows = len(self.units)
        out = self.node(definition.body, body_yp, inner, x, prefix, None, index)
        check_used(entry, ref, inner.used)
        if scope.unit is None and len(self.units) == rows + 1 and self.units[-1].kind == "group":  # the row it made
            self.units[-1] = replace(self.units[-1], label=definition.label or ref.name, block=ref.name, params=dict(inner.env))
        return out

    def apply_op(self, op: Op, ref: Ref, scope: Scope, x: str, path: str, remake: Remake | None) -> str:
        """Add the op (expanding composites); return its output node."""
        check_standalone(op, ref)
        since = self.values.mark()
        inner = scope if scope.unit else replace(scope, unit=path)
        params, chain, scaled = self.params.of(op, ref, scope.source, fixed=path in self.fixed_paths)
        if chain is None:
            read = [  # values an op's field names (crop to=up)
                earlier_value(getattr(params, f), scope, self.values, ref.token_locs.get(f, ref.loc), f"{op.name} {f}=")
                for f in op.reads_values
            ]
            ids = [self.out.add(op.name, params, path, ref.loc, [x, *read], inner)]
        else:
            ids = self.out.add_chain(op, params, chain, path, ref.loc, x, inner)
        unit = len(self.units) if scope.unit is None else None
        if ref.indexed and ref.rereadable:  # its arguments read again in each copy of the instance around it
            self.equal.rereads.append((ids[-1], ref.text, ref.yp, scope))
        if ref.from_count or scaled:
            self.written.append(Written(op, ref, remake, path, inner, ids, scaled, unit))
        if unit is not None:
            self.units.append(Unit(path, self.params.short(op, params, scope.source), "op", ref.loc, ids[-1]))
        return self.values.keep(path, ids[-1], ref.loc, since)


def flat_copies(ex: Expander, node: ChainNode, yp: YamlPath, scope: Scope, x: str, prefix: str, start: int) -> tuple[str, int]:
    """A ``flat`` chain (docs/language.md, Repeats): each copy's items numbered on from ``start`` under ``prefix``,
    as one list; the value and the next index."""
    if not isinstance(node.chain, list) or node.names is not None:
        raise SpecError(
            "flat: a chain whose items are numbered on in one list is a list chain without names:",
            scope.source.loc(yp + ("flat",)),
            code="name",
            hint="write the chain as a list ({chain: [conv2d 8 3x3 p1, relu], repeat: 4, flat: true}), without names:",
        )
    items = [*node.chain] * ex.read.repeat_of(node, yp, scope, x)
    ys = [yp + ("chain", j % len(node.chain)) for j in range(len(items))]
    with ex.copies.nested(len(items) // max(len(node.chain), 1), scope.source.loc(yp)):
        for item, iyp in zip(items, ys, strict=True):
            x, start = list_item(ex, item, iyp, scope, x, prefix, start)
    return x, start


def list_item(ex: Expander, written: Any, yp: YamlPath, scope: Scope, x: str, prefix: str, index: int) -> tuple[str, int]:
    """One item of a list chain at ``index`` (its copies, a repeat's, at the indices after it): its value
    and the index of the next item."""
    member, myp = ex.read.chosen(written, yp, scope, x)  # an if stands for the node it chooses
    if member is None:  # the identity: an if without else, its condition false
        return x, index + 1
    if isinstance(member, dict) and len(member) == 1 and not isinstance(member, BaseModel):
        ((name, value),) = member.items()
        x = ex.node(value, myp + (name,), scope, x, prefix, ex.read.key(name, myp + (name,), scope, x), None)
        return x, index + 1
    if isinstance(member, ChainNode) and member.flat:  # its items take this list's next indices
        return flat_copies(ex, member, myp, scope, x, prefix, index)
    repeat = ex.read.repeat_of(member, myp, scope, x)
    pattern = ex.read.copy_names(member, myp, scope, x)
    if repeat == 1:  # one copy: the product of the repeat counts around it stays as it is
        x = ex.node(member, myp, scope, x, prefix, ex.read.copy_name(pattern, 0, myp, scope), index, once=True)
        return x, index + 1
    with ex.copies.nested(repeat, scope.source.loc(myp)):
        for k in range(repeat):
            x = ex.node(member, myp, scope, x, prefix, ex.read.copy_name(pattern, k, myp, scope), index, once=True)
            index += 1
    return x, index
