"""Recover the branch graph from the traced dataflow: chains, concats and residual sums.

Walking back from the output, a one-input op extends the chain; a concat's branches start at
the nearest value that dominates all its inputs (the fork) and are recovered recursively; an
add is a residual whose shortcut is the identity when one input *is* the fork, whose body is
the input multiplied by a constant (its ``scale``) or else the input with more weighted ops,
and whose ``then`` is the activation that reads nothing but the sum. A value read by two merges
(dense connectivity) has no such form: every op must land in the tree exactly once, or the
import stops with an error naming the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import networkx as nx

from archspec.importer.convert import ACTIVATIONS
from archspec.importer.trace import ImportRefused, Prim
from archspec.ops import REGISTRY

ACTS = ACTIVATIONS


@dataclass
class Step:
    prim: Prim

    @property
    def path(self) -> str | None:
        return self.prim.path


@dataclass
class Chain:
    items: list[Part] = field(default_factory=list)


@dataclass
class Concat:
    branches: list[Chain]
    merge: Prim | None = None  # the concatenation, whose value the part is


@dataclass
class Residual:
    body: Chain
    shortcut: Chain | None
    scale: float = 1.0
    then: Step | None = None
    merge: Prim | None = None  # the sum (its value, unless `then` follows)


@dataclass
class Gate:
    """x · body(x): the multiply's other input is the fork itself."""

    body: Chain
    mul: Prim  # the product, for messages


@dataclass
class Ref:
    """An earlier value read by name (`{from: NAME}`): the chain it starts reads it, not its predecessor
    (a skip connection, a lateral, a side branch of a merge that is no series-parallel form; dag.py)."""

    prim: Prim  # the value's producer


Part = Step | Chain | Concat | Residual | Gate | Ref


def data_inputs(p: Prim) -> list[int]:
    """The values an op computes with; an op that reads another value's size (interpolate size_of=,
    crop to=) has it as a last input, read by name, not as data (:func:`side_inputs`)."""
    op = REGISTRY.get(p.op)
    n = len(op.reads_values) if op is not None else 0
    return p.inputs[: len(p.inputs) - n] if n else p.inputs


def side_inputs(p: Prim) -> list[int]:
    return p.inputs[len(data_inputs(p)) :]


def walk(node: Part) -> Iterator[Part]:
    """The part and every part inside it, in order: a chain's items, a concat's branches, a gate's
    body, a residual's body, shortcut and `then` (the one walk over the tree; the rest read it)."""
    yield node
    children: list[Part]
    if isinstance(node, Chain):
        children = list(node.items)
    elif isinstance(node, Concat):
        children = list(node.branches)
    elif isinstance(node, Gate):
        children = [node.body]
    elif isinstance(node, Residual):
        children = [c for c in (node.body, node.shortcut, node.then) if c is not None]
    else:
        children = []
    for child in children:
        yield from walk(child)


def steps(node: Part) -> list[Step]:
    """The ops inside, in order."""
    return [x for x in walk(node) if isinstance(x, Step)]


def paths(node: Part) -> list[str]:
    """Module paths of the ops inside, in order."""
    return [s.path for s in steps(node) if s.path]


def weighted(node: Part) -> int:
    return sum(int(s.prim.stateful) for s in steps(node))


def data_graph(prims: list[Prim], outputs: list[int]) -> nx.DiGraph:
    """The dataflow between the values the outputs depend on (a size read is no edge)."""
    g = nx.DiGraph()
    g.add_nodes_from(p.id for p in prims)
    for p in prims:
        for i in data_inputs(p):
            g.add_edge(i, p.id)
    live = set(outputs)
    for o in outputs:
        live |= nx.ancestors(g, o)
    return g.subgraph(live).copy()


class Recover:
    """The branch graph between stops: from ``end`` back to its fork (a merge's branch) or to the
    nearest stop (a value read by name, dag.py), a merge that is no series-parallel form (``spine``:
    merge → its main input) reading its other inputs by name."""

    def __init__(
        self,
        prims: list[Prim],
        output: int,
        outputs: list[int] | None = None,
        stops: frozenset[int] = frozenset(),
        spine: dict[int, int] | None = None,
    ) -> None:
        self.prims = prims
        self.output = output
        self.stops, self.spine = stops, spine or {}
        self.graph = data_graph(prims, outputs or [output])
        self.idom = nx.immediate_dominators(self.graph, 0)
        self.depth: dict[int, int] = {}
        for n in nx.topological_sort(self.graph):
            self.depth[n] = 0 if n == 0 else self.depth[self.idom[n]] + 1
        self.seen: dict[int, int] = {}

    def refuse(self, prim: Prim, message: str) -> ImportRefused:
        return ImportRefused(message, node=prim.node, module=prim.path, source=prim.source)

    def fork(self, ids: list[int]) -> int:
        """The nearest value dominating all of ``ids``: where the branches split."""
        a = ids[0]
        for b in ids[1:]:
            while a != b:
                if self.depth[a] >= self.depth[b]:
                    a = self.idom[a]
                else:
                    b = self.idom[b]
        return a

    def run(self) -> Chain:
        chain = self.chain(self.output, 0)
        self.check()
        return chain

    def check(self) -> None:
        """Every op landed in the tree exactly once."""
        for p in self.graph.nodes:
            if self.prims[p].op in ("input", "pass", "scale"):
                continue
            if self.seen.get(p, 0) != 1:
                raise self.refuse(
                    self.prims[p],
                    "this value feeds two branches of one module's merges in a form archspec import "
                    "does not recover (a value merged again inside a series-parallel part)",
                )

    def chain(self, end: int, base: int) -> Chain:
        """The ops from ``base`` (excluded) to ``end``; base -1: from the nearest stop or the input, a
        stop becoming the chain's first item, a :class:`Ref`."""
        items: list[Part] = []
        cur = end
        while cur != base:
            p = self.prims[cur]
            if base == -1 and (p.op == "input" or (cur in self.stops and cur != end)):
                if cur != 0 or items:
                    items.append(Ref(p))
                break
            if p.op == "input":
                raise self.refuse(self.prims[end], "a branch reaches the input without passing its fork")
            if self.seen.get(cur):
                raise self.refuse(
                    p,
                    "this value feeds two branches of one module's merges in a form archspec import "
                    "does not recover (a value merged again inside a series-parallel part)",
                )
            self.seen[cur] = 1
            if cur in self.spine:
                part, cur = self.side_merge(p)
                items.append(part)
            elif p.op == "concat":
                fork = self.fork(p.inputs)
                items.append(Concat([self.chain(i, fork) for i in p.inputs], p))
                cur = fork
            elif p.op == "add":
                items.append(self.residual(p))
                cur = self.fork(p.inputs)
            elif p.op == "mul":
                fork = self.fork(p.inputs)
                if fork not in p.inputs and p.inputs[0] != p.inputs[1] and self._gate_of(p) is not None:
                    # x · g(y) where x and y both come from the fork (LR-ASPP's head): the gate reads the fork by name
                    gate = self._gate_of(p)
                    assert gate is not None
                    body = self.chain(gate, fork)
                    items.append(Gate(Chain([Ref(self.prims[fork]), *body.items]), p))
                    cur = p.inputs[1] if p.inputs[0] == gate else p.inputs[0]
                    continue
                if fork not in p.inputs or p.inputs[0] == p.inputs[1]:
                    raise self.refuse(
                        p,
                        "a product of two computed tensors: archspec's `gate:` multiplies a value by "
                        "a function of it (x · g(x), squeeze-and-excitation), and nothing else",
                    )
                other = p.inputs[1] if p.inputs[0] == fork else p.inputs[0]
                items.append(Gate(self.chain(other, fork), p))
                cur = fork
            elif p.op == "scale":  # x · s outside a residual sum: the `scale` op (NF-ResNet's β)
                p.params = {"factor": p.params.get("factor", p.params.get("scale"))}
                items.append(Step(p))
                cur = p.inputs[0]
            else:
                if p.op != "pass":
                    items.append(Step(p))
                cur = p.inputs[0]
        items.reverse()
        return Chain(_fold_then(items))

    def _gate_of(self, mul: Prim) -> int | None:
        """The factor of a product that is a gate: the one a sigmoid-like activation computes."""
        gates = [i for i in mul.inputs if self.prims[i].op in ("sigmoid", "hardsigmoid")]
        return gates[0] if len(gates) == 1 else None

    def _pathless_run(self, start: int) -> bool:
        """Whether the chain back from ``start`` reaches a stop through ops without modules only (FPN's
        top-down interpolation of the sum before)."""
        cur, n = start, 0
        while cur not in self.stops or n == 0:
            p = self.prims[cur]
            if p.path or p.stateful or p.op in ("input", "add", "concat", "mul", "pass") or len(data_inputs(p)) != 1:
                return False
            cur, n = data_inputs(p)[0], n + 1
        return True

    def side_merge(self, merge: Prim) -> tuple[Part, int]:
        """A merge whose main input is the chain's: its other inputs are side chains from the nearest
        stop (read by name), in place — `residual: {body: identity, shortcut: [{from: x}, ...]}`,
        `concat: [identity, [{from: x}, ...]]`, `gate: [{from: x}, ...]`; and where the chain ends that is
        the next one to go. A sum whose main input is ops without modules from a value read by name is
        two side chains (FPN's `residual: {body: {from: lateral}, shortcut: [{from: top}, interpolate ...]}`)."""
        main = self.spine[merge.id]
        sides = [
            Chain([]) if i == main else Chain([Ref(self.prims[i])]) if i in self.stops or i == 0 else self.chain(i, -1)
            for i in data_inputs(merge)
        ]
        if merge.op == "concat":
            return Concat(sides, merge), main
        other = next(c for i, c in zip(data_inputs(merge), sides, strict=True) if i != main)
        if merge.op == "mul":
            return Gate(other, merge), main
        if any(self.prims[i].op == "scale" for i in merge.inputs):
            raise self.refuse(merge, "a scaled sum of a value and another read by name; archspec scales a residual's body")
        if len(data_inputs(merge)) == 2 and main not in self.stops and self._pathless_run(main):
            top = self.chain(main, -1)
            start = top.items[0]
            assert isinstance(start, Ref)
            return Residual(other, top, merge=merge), start.prim.id
        body, rest = self._operand(main, other)
        return Residual(body, other, merge=merge), rest

    def _operand(self, main: int, other: Chain) -> tuple[Chain, int]:
        """The main input's ops that the forward computes after the side chain's first op: the sum's
        own operand, its body (LR-ASPP's ``low_classifier(low) + high_classifier(x)``: body
        ``high_classifier``, shortcut ``[{from: low}, low_classifier]``), and the value before them.
        None when the side chain has no op (a value read by name as it is)."""
        first = min((s.prim.id for s in steps(other)), default=None)
        items: list[Part] = []
        cur = main
        while first is not None and cur not in self.stops and cur > first and not self.seen.get(cur):
            p = self.prims[cur]
            if p.op in ("input", "add", "concat", "mul", "pass", "scale") or len(data_inputs(p)) != 1:
                break
            if self.graph.out_degree(cur) != 1 and cur != main:
                break
            self.seen[cur] = 1
            items.append(Step(p))
            cur = data_inputs(p)[0]
        items.reverse()
        return Chain(items), cur

    def residual(self, add: Prim) -> Residual:
        fork = self.fork(add.inputs)
        sides = list(add.inputs)
        scale = 1.0
        scaled = [i for i in sides if self.prims[i].op == "scale"]
        if len(scaled) == 2:
            raise self.refuse(add, "both inputs of a sum are scaled; a residual scales its body only")
        if scaled:
            body_id = scaled[0]
            self.seen[body_id] = 1
            scale = self.prims[body_id].params["scale"]
            other = sides[1] if sides[0] == body_id else sides[0]
            body = self.chain(self.prims[body_id].inputs[0], fork)
            shortcut = None if other == fork else self.chain(other, fork)
            if scale == 0.0:
                raise self.refuse(add, "a residual body scaled by 0")
            return Residual(body, shortcut, scale, merge=add)
        if fork in sides:
            other = sides[1] if sides[0] == fork else sides[0]
            if other == fork:
                raise self.refuse(add, "x + x: a sum of a value with itself")
            return Residual(self.chain(other, fork), None, merge=add)
        a, b = (self.chain(i, fork) for i in sides)
        body, shortcut = (a, b) if weighted(a) >= weighted(b) else (b, a)
        return Residual(body, shortcut, merge=add)


def _fold_then(items: list[Part]) -> list[Part]:
    """A residual followed by a stateless activation takes it as its `then`."""
    out: list[Part] = []
    for x in items:
        if isinstance(x, Step) and x.prim.op in ACTS and out and isinstance(out[-1], Residual) and out[-1].then is None:
            out[-1].then = x
            continue
        out.append(x)
    return out


def nest_concats(prims: list[Prim]) -> None:
    """Dense connectivity as nested concatenations, in place: ``cat(x, a, b)`` where an earlier
    ``q = cat(x, a)`` computes ``b`` becomes ``cat(q, b)`` — the same tensor (concatenation is
    associative), and the form of a dense layer, ``concat: [identity, layer]`` (DenseNet's
    ``torch.cat(features, 1)`` over every earlier layer's output)."""
    g = nx.DiGraph()
    g.add_nodes_from(p.id for p in prims)
    for p in prims:
        for i in p.inputs:
            g.add_edge(i, p.id)
    seen: dict[tuple[int, ...], int] = {}
    by_id = {p.id: p for p in prims}
    for p in prims:
        if p.op != "concat":
            continue
        original = tuple(p.inputs)
        for k in range(len(original) - 1, 1, -1):
            q = seen.get(original[:k])
            if q is not None and all(nx.has_path(g, q, t) for t in original[k:]):
                p.inputs = [q, *original[k:]]
                p.dense = by_id[q].dense = True  # both are dense layers' concats
                g.add_edge(q, p.id)
                break
        seen.setdefault(original, p.id)


def recover(prims: list[Prim], output: int) -> Chain:
    nest_concats(prims)
    return Recover(prims, output).run()


__all__ = [
    "Chain",
    "Concat",
    "Gate",
    "Part",
    "Recover",
    "Ref",
    "Residual",
    "Step",
    "data_graph",
    "data_inputs",
    "paths",
    "recover",
    "side_inputs",
    "steps",
    "walk",
    "weighted",
]
