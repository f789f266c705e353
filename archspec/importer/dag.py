"""Structure recovery beyond series-parallel: a network as a DAG of chains that read earlier values
by name (docs/language.md, "Reading earlier values").

A merge whose branches stay inside the module that computes it, and whose inner values nothing
else reads, is a series-parallel part (a residual, a concat, a gate), recovered as structure.py does.
Any other merge — U-Net's skip concat, LR-ASPP's sum of the low features' classifier and the head,
FPN's lateral sums — is a *side merge*: its main input is the chain's (the input with the longest
history), its other inputs side chains read by name (:class:`~archspec.importer.structure.Ref`). A
value read by more than one part, an output, a side chain's value read again, or a value whose
size another op reads (interpolate size_of=, crop to=) ends a *segment*; each segment is a chain
from the previous one or from a value read by name. Segments are written in an order that computes
every value before it is read and, among those, keeps a module's parts together in the order of
its modules (FPN's inner blocks, then its sums, then its layer blocks), so the written network
follows the source's module tree.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import networkx as nx

from archspec.importer.structure import Chain, Part, Recover, Ref, Step, data_inputs, nest_concats, side_inputs, walk
from archspec.importer.trace import ImportRefused, Prim

MERGES = ("add", "concat", "mul")


def _home(p: Prim) -> str:
    return p.path or p.owner or p.within


def _inside(path: str, scope: str) -> bool:
    return not scope or path == scope or path.startswith(scope + ".")


@dataclass
class Segment:
    chain: Chain
    end: int
    claimed: set[int] = field(default_factory=set)


class Dag:
    """The merges' forms (series-parallel or side merges), the segments' ends, and the segments in order."""

    def __init__(
        self,
        prims: list[Prim],
        outputs: list[int],
        order: dict[str, int] | None = None,
        built: bool = False,
        modules: dict[int, str] | None = None,
    ) -> None:
        self.prims, self.outputs = prims, outputs
        self.module_values = set(modules or {})  # values that are a module's output
        self.order = order or {}
        self.rec = Recover(prims, outputs[-1], outputs)
        g = self.rec.graph
        self.users: dict[int, list[int]] = {n: list(g.successors(n)) for n in g.nodes}
        self.side_reads: dict[int, list[int]] = {}  # value → the ops reading its size
        for n in g.nodes:
            for t in side_inputs(prims[n]):
                self.side_reads.setdefault(t, []).append(n)
        self.merges = [n for n in nx.topological_sort(g) if prims[n].op in MERGES and len(set(data_inputs(prims[n]))) > 1]
        self.fork = {m: self.rec.fork(data_inputs(prims[m])) for m in self.merges}
        self.region = {m: (nx.descendants(g, self.fork[m]) & nx.ancestors(g, m)) - {self.fork[m]} for m in self.merges}
        self.side = {m for m in self.merges if not self._local(m)}
        if not built:  # a network archspec built is one flat forward: its merges nest as its spec wrote them
            self._nested()
        self.stops = self._stops()

    # ---- which merges are series-parallel ----------------------------------------------------
    def _local(self, m: int) -> bool:
        region, scope = self.region[m], self.prims[m].owner or ""
        for n in region:
            if n in self.outputs or any(u not in region and u != m for u in self.users[n]):
                return False  # a value inside is read from outside (FPN's inner blocks, an output)
            if any(r not in region and r != m for r in self.side_reads.get(n, [])):
                return False
            if self.prims[m].dense:
                continue  # DenseNet's layer k+1 concatenates layer k's output: a dense layer, wherever it runs
            if self.prims[n].op not in ("pass", "scale") and not _inside(_home(self.prims[n]), scope):
                return False  # a branch runs through other modules (LR-ASPP's backbone)
        return True

    def _inner_fork(self, m: int) -> bool:
        f = self.fork[m]
        return f != 0 and _inside(_home(self.prims[f]), self.prims[m].owner or "")

    def _nested(self) -> None:
        """Merges in one forward whose forks that forward computed, one inside the other's branches
        (U-Net's skip concats, each around the next level): each reads its skip by name."""
        inner = [m for m in self.merges if self._inner_fork(m)]
        for m in inner:
            for k in inner:
                if k != m and self.prims[k].owner == self.prims[m].owner and k in self.region[m]:
                    self.side |= {m, k}

    # ---- where segments end ----------------------------------------------------------------
    def _group(self, v: int, user: int) -> int:
        """The outermost series-parallel merge forked at ``v`` whose branches hold ``user``, else ``user``."""
        around = [m for m in self.merges if m not in self.side and self.fork[m] == v and (user == m or user in self.region[m])]
        return max(around, key=lambda m: len(self.region[m]), default=user)

    def _stops(self) -> frozenset[int]:
        while True:
            stops = set(self.outputs) | self.side
            for v, users in self.users.items():
                if len({self._group(v, u) for u in users}) > 1:
                    stops.add(v)
            interior = set().union(*(self.region[m] for m in self.merges if m not in self.side))
            stops |= {t for t in self.side_reads if t not in interior}
            if self.side or len(self.outputs) > 1:  # a DAG: its parts may be written in module order (FPN's lateral on layer4)
                stops |= {v for v in self.module_values if v in self.users and v not in interior and not self._operand(v)}
            bad = {m for m in self.merges if m not in self.side and stops & self.region[m]}
            if not bad:
                return frozenset(stops - {0})
            self.side |= bad

    def _operand(self, v: int) -> bool:
        """A module's output that only a side merge's sum reads, nothing else (LR-ASPP's
        ``low_classifier(low) + high_classifier(x)``): one operand of the sum, written inside it."""
        users = self.users[v]
        return (
            len(users) == 1
            and users[0] in self.side
            and self.prims[users[0]].op == "add"
            and v not in self.outputs
            and v not in self.side_reads
        )

    def main_input(self, m: int) -> int:
        """The input a side merge continues: the one with the longest history (the spine)."""
        ins = data_inputs(self.prims[m])
        return max(ins, key=lambda i: (len(nx.ancestors(self.rec.graph, i)), -ins.index(i)))

    # ---- the segments, in order ------------------------------------------------------------
    def run(self) -> Chain:
        if not self.side and len(self.outputs) == 1 and not self.stops - {self.outputs[0]}:
            return self.rec.run()  # series-parallel throughout: one chain
        self.rec.stops = self.stops
        self.rec.spine = {m: self.main_input(m) for m in self.side}
        segments: list[Segment] = []
        before = set(self.rec.seen)
        for end in sorted(self.stops):
            chain = self.rec.chain(end, -1)
            claimed = set(self.rec.seen) - before
            before |= claimed
            segments.append(Segment(chain, end, claimed))
        self.rec.check()
        return Chain(self._joined(self._ordered(segments)))

    def _priority(self, seg: Segment) -> tuple[int, int]:
        homes = [_home(s.prim) for s in walk(seg.chain) if isinstance(s, Step)]
        ranks = [self._rank(h) for h in homes if h]
        return (min(ranks) if ranks else self._rank(""), seg.end)

    def _rank(self, path: str) -> int:
        while path and path not in self.order:
            path = path.rpartition(".")[0]
        return self.order.get(path, len(self.order))

    def _ordered(self, segments: list[Segment]) -> list[Segment]:
        """Every value computed before it is read; among the segments ready, the first in module order."""
        where = {n: i for i, s in enumerate(segments) for n in s.claimed}
        deps: dict[int, set[int]] = {i: set() for i in range(len(segments))}
        for i, s in enumerate(segments):
            for x in walk(s.chain):
                reads = [x.prim.id] if isinstance(x, Ref) else side_inputs(x.prim) if isinstance(x, Step) else []
                deps[i] |= {where[r] for r in reads if r in where and where[r] != i}
        ready = [(self._priority(s), i) for i, s in enumerate(segments) if not deps[i]]
        heapq.heapify(ready)
        queued = {i for _, i in ready}
        out: list[Segment] = []
        done: set[int] = set()
        while ready:
            _, i = heapq.heappop(ready)
            out.append(segments[i])
            done.add(i)
            for j, d in deps.items():
                if j not in queued and d <= done:
                    queued.add(j)
                    heapq.heappush(ready, (self._priority(segments[j]), j))
        if len(out) != len(segments):
            raise ImportRefused("the network's parts read each other in a cycle (a size read before its value)")
        return out

    def _joined(self, segments: list[Segment]) -> list[Part]:
        """The segments as one chain: one starting from the value the one before ends with reads it
        as its predecessor; any other starts by reading its value by name (the input: `{from: input}`)."""
        items: list[Part] = []
        last: int | None = None
        for s in segments:
            head = s.chain.items[0] if s.chain.items else None
            start = head.prim.id if isinstance(head, Ref) else 0
            rest = s.chain.items[1:] if isinstance(head, Ref) else s.chain.items
            if start != last and (last is not None or start != 0):
                items.append(Ref(self.prims[start]))
            items += rest
            last = s.end
        return items


def recover(
    prims: list[Prim],
    output: int,
    outputs: list[int] | None = None,
    order: dict[str, int] | None = None,
    built: bool = False,
    modules: dict[int, str] | None = None,
) -> Chain:
    """The network's branch graph: series-parallel parts, and chains reading earlier values by name."""
    nest_concats(prims)
    return Dag(prims, outputs or [output], order, built, modules).run()


__all__ = ["Dag", "recover"]
