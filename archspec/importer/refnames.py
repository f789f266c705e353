"""Names for the values a recovered DAG reads by name: each ``{from: NAME}``, ``interpolate size_of=NAME``,
``crop to=NAME`` and output gets the path that names its value in the written spec.

The emitted tree is walked as the language names nodes (docs/language.md, "What a path names"): a
named node adds a segment, an op or block instance in a list takes its index, an unnamed container
adds none, and the outermost node at a path stands for the nodes inside it. A value is read by the
shortest path naming it (``backbone``, not ``backbone.16``); a value no path names (a sum or an
interpolation without a module) is given a name where it is written, from the output it is or from
the module whose value it merges (``inner_blocks_2_sum``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch.fx as fx

from archspec.importer.emit import E
from archspec.importer.structure import side_inputs
from archspec.importer.trace import ImportRefused, Prim
from archspec.language.model import KEYWORDS, module_name_problem
from archspec.ops import REGISTRY

_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _join(prefix: str, seg: str) -> str:
    return f"{prefix}.{seg}" if prefix else seg


@dataclass
class _Walk:
    """Every node's path and value, in the order nodes end (inner before outer)."""

    canon: dict[int, int]
    modules: dict[int, str]  # value → the outermost module whose output it is (refnames.module_outputs)
    at: dict[str, int] = field(default_factory=dict)  # path → the value of the outermost node there
    owner: dict[int, tuple[E, E, int, str]] = field(default_factory=dict)  # value → (node, its list, index, prefix)
    ops: dict[int, str] = field(default_factory=dict)  # an op's prim → its path
    shares: list[tuple[E, str]] = field(default_factory=list)  # each share, and its block instance's path
    reads: list[tuple[E, str]] = field(default_factory=list)  # each `from` and op reading a value, and its instance's path
    instance: str = ""  # the innermost block instance being walked

    def value(self, e: E, prefix: str, index: int | None, before: int | None, parent: E | None) -> int | None:
        path = (
            _join(prefix, e.name)
            if e.name
            else _join(prefix, str(index))
            if index is not None and e.kind in ("op", "inst", "from")
            else None
        )
        inner = path if path is not None and (e.name or e.kind == "inst") else prefix
        v: int | None
        if e.kind == "op" and e.op is not None and path is not None:
            self.ops[e.op.prim.id] = path
        if e.kind == "share":
            self.shares.append((e, self.instance))
        if e.kind == "from" or (e.kind == "op" and e.op is not None and side_inputs(e.op.prim)):
            self.reads.append((e, self.instance))
        if e.kind in ("op", "share"):
            v = self.canon.get(e.op.prim.id, e.op.prim.id) if e.op is not None else before
        elif e.kind == "from":
            assert e.ref is not None
            v = self.canon.get(e.ref.id, e.ref.id)
        elif e.kind == "inst":
            assert e.inst is not None
            outer, self.instance = self.instance, inner
            v = self.value(e.inst.body, inner, None, before, None)
            self.instance = outer
        elif e.kind == "list":
            v = before
            for i, x in enumerate(e.items):
                v = self.value(x, inner, i, v, e)
        else:
            for i, x in enumerate(e.items):
                branch = index if e.kind != "concat" else i
                self.value(x, inner, branch if e.kind == "concat" else None, before, None)
            v = e.then.prim.id if e.then is not None else e.value.id if e.value is not None else None
            v = self.canon.get(v, v) if v is not None else None
        if path is not None and v is not None and e.kind != "from":
            self.at[path] = v
        if v is not None and parent is not None and index is not None:
            self.owner.setdefault(v, (e, parent, index, prefix))
        return v

    def path_of(self, v: int, name: str = "") -> str | None:
        """An output: the path ending in its own name (`fpn.pool`); else the module whose output the value
        is, where a path names it (`fpn.inner_blocks.2`), else the shortest."""
        found = [p for p, x in self.at.items() if x == v]
        if name and not name.isdigit() and any(p.rpartition(".")[2] == name for p in found):
            return next(p for p in found if p.rpartition(".")[2] == name)
        module = self.modules.get(v)
        if module in found:
            return module
        return min(found, key=lambda p: (p.count("."), len(p))) if found else None


def _canon(prims: list[Prim]) -> dict[int, int]:
    """A fused composite's bn and activation (op `pass`) → the composite, whose value they are."""
    out: dict[int, int] = {}
    for p in prims:
        v = p.id
        while prims[v].op == "pass" and prims[v].inputs:
            v = prims[v].inputs[0]
        out[p.id] = v
    return out


def _stateful(e: E) -> bool:
    if e.kind == "inst" or (e.kind == "op" and e.op is not None and e.op.prim.stateful):
        return True
    return any(_stateful(x) for x in e.items)


class RefNames:
    """Writes the names: each ``from`` node's target, each size read's field, and the outputs' paths."""

    def __init__(self, network: E, prims: list[Prim], modules: dict[int, str] | None = None) -> None:
        self.network, self.prims = network, prims
        self.canon = _canon(prims)
        self.modules = {self.canon[v]: p for v, p in (modules or {}).items()}
        self.given: set[str] = set()  # the names this gave

    def walk(self) -> _Walk:
        w = _Walk(self.canon, self.modules)
        w.value(self.network, "", None, 0, None)
        return w

    def run(self, outputs: list[tuple[str, int]]) -> dict[str, str]:
        """Names every value read by name; returns each output's path."""
        wanted: dict[int, str] = {}  # value → a name to give it, where no path names it
        for name, v in outputs:
            wanted.setdefault(self.canon[v], name)
        for e in _nodes(self.network):
            if e.kind == "from" and e.ref is not None:
                wanted.setdefault(self.canon[e.ref.id], "")
            if e.kind == "op" and e.op is not None:
                for t in side_inputs(e.op.prim):
                    wanted.setdefault(self.canon[t], "")
        w = self.walk()
        for v, hint in wanted.items():
            if v != 0 and (w.path_of(v) is None or (hint and self._unnamed_op(w, v))):
                self._name(w, v, hint)
        self._name_alike(w)
        w = self.walk()

        def path(v: int, p: Prim) -> str:
            if self.canon[v] == 0:
                return "input"
            found = w.path_of(self.canon[v])
            if found is None:
                raise ImportRefused("a value read by name has no path in the written spec", node=p.node, source=p.source)
            return found

        for e, instance in w.reads:  # a value inside the block instance reading it: by its path there (`crop to=up`)
            if e.kind == "from" and e.ref is not None:
                e.target, e.outside = _within(path(e.ref.id, e.ref), instance)
            if e.kind == "op" and e.op is not None:
                fields = REGISTRY[e.op.prim.op].reads_values
                for f, t in zip(fields, side_inputs(e.op.prim), strict=True):
                    at = _within(path(t, self.prims[t]), instance)[0]
                    e.op.prim.params[f] = int(at) if at.isdigit() else at  # size_of=0: a numbered module, as written
        _name_shares(w)
        named = {name: w.path_of(self.canon[v], name) for name, v in outputs}
        return {
            name: at if at is not None else path(v, self.prims[v]) for (name, v), at in zip(outputs, named.values(), strict=True)
        }

    @staticmethod
    def _unnamed_op(w: _Walk, v: int) -> bool:
        """An output computed by an op without weights named only by its index (`out`, not `2`)."""
        found = w.owner.get(v)
        return found is not None and not found[0].name and not _stateful(found[0])

    def _name(self, w: _Walk, v: int, hint: str) -> None:
        """Name the list item whose value ``v`` is (it holds no weights, so no module moves)."""
        found = w.owner.get(v)
        p = self.prims[v]
        if found is None or _stateful(found[0]) or found[0].name:
            raise ImportRefused(
                "a value read by name (a skip, a lateral, an output) is computed where the spec cannot name it",
                node=p.node,
                module=p.owner,
                source=p.source,
            )
        node, parent, _, _ = found
        taken = {x.name for x in parent.items if x.name}
        base = hint if hint and _WORD.match(hint) and hint not in KEYWORDS else self._suggest(v)
        name, n = base, 2
        while name in taken or module_name_problem(name) is not None:
            name, n = f"{base}_{n}", n + 1
        node.name = name
        self.given.add(name)

    def _name_alike(self, w: _Walk) -> None:
        """A merge written beside merges of its kind that were named (FPN's last top-down sum, which only the
        next op reads) is named alike, so the parts of one kind read alike."""
        for v, (node, parent, _, _) in list(w.owner.items()):
            if node.name or node.kind not in ("residual", "concat") or _stateful(node) or node.value is None:
                continue
            if any(x is not node and x.kind == node.kind and x.name in self.given for x in parent.items):
                self._name(w, v, "")

    def _suggest(self, v: int) -> str:
        """After the module whose value the op merges or resizes: `inner_blocks_2_sum`."""
        p = self.prims[v]
        what = {"add": "sum", "concat": "cat", "mul": "product"}.get(p.op, p.op)
        seen, stack = set(), list(p.inputs)
        while stack:
            i = stack.pop(0)
            if i in seen:
                continue
            seen.add(i)
            q = self.prims[self.canon[i]]
            if q.path:
                tail = "_".join(q.path.split(".")[-2:]) if q.path.rpartition(".")[2].isdigit() else q.path.rpartition(".")[2]
                if q.path.split(".")[-1].isdigit() and len(q.path.split(".")) >= 3:
                    tail = "_".join(q.path.split(".")[-3:-1])  # fpn.inner_blocks.2.0: inner_blocks_2
                name = f"{tail}_{what}"
                if _WORD.match(name):
                    return name
            stack += q.inputs
        return what


def _within(path: str, instance: str) -> tuple[str, bool]:
    """A value's path as read from inside the block instance at ``instance`` (names are looked up in the
    innermost instance first: docs/language.md), and whether the value lies outside that instance."""
    if instance and path.startswith(instance + "."):
        return path[len(instance) + 1 :], False
    return path, bool(instance)


def _name_shares(w: _Walk) -> None:
    """The name each share reads its module by: the first call's path, inside the block instance that
    holds both relative to it (a block's body is written once for all its instances)."""
    for e, instance in w.shares:
        assert e.ref is not None
        path = w.ops.get(e.ref.id)
        if path is None:
            raise ImportRefused("a module called again whose first call has no path in the written spec", node=e.ref.node)
        e.target = path[len(instance) + 1 :] if instance and path.startswith(instance + ".") else path


def module_outputs(gm: fx.GraphModule, value: dict[fx.Node, int]) -> dict[int, str]:
    """Each value that is a module's output → the outermost such module (`body.layer1`, not `body.layer1.2`);
    a module called more than once is no one value's."""
    calls = [str(n.target) for n in gm.graph.nodes if n.op == "call_module"]
    last: dict[str, fx.Node] = {}
    for n in gm.graph.nodes:
        for path, _ in (n.meta.get("nn_module_stack") or {}).values():
            if path:
                last[path] = n
        if n.op == "call_module":
            last[str(n.target)] = n
    out: dict[int, str] = {}
    for path, n in last.items():
        if calls.count(path) > 1:
            continue
        if n in value and (value[n] not in out or path.count(".") < out[value[n]].count(".")):
            out[value[n]] = path
    return out


def _nodes(e: E) -> list[E]:
    out = [e]
    if e.kind == "inst" and e.inst is not None:
        out += _nodes(e.inst.body)
    for x in e.items:
        out += _nodes(x)
    return out


__all__ = ["RefNames", "module_outputs"]
