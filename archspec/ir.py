"""The intermediate representation the stages pass to each other: an :class:`OpGraph`.

networkx keeps the topology only: which node reads which (an edge's ``slot`` is the input
position at the reader). What is known about a node lives in one typed record, a :class:`Node`,
and what is known about the network in one :class:`Network`; each field says which stage writes
it. Read them with ``graph.at(node)`` and ``graph.net``, iterate with ``graph.records()``.

    expansion (graph/)   ─ writes every Node field above ``shape``, and the Network's spec fields
    shapes (shapes.py)   ─ writes ``shape``, ``range``, ``conditions``, ``param_count``, ``mac_count``;
                           the Network's ``min_size``, ``params``, ``macs``, ``accepted``,
                           ``train_accepted``, ``partial_merges``, ``warnings``

Later stages (compile, codegen, summary, render, view, diff, export) read only. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx

from archspec.errors import Loc, SpecWarning
from archspec.sizes import Accepted, Condition, Range

if TYPE_CHECKING:
    from pydantic import BaseModel

    from archspec.language.model import InputSpec, TensorInit
    from archspec.symbolic import Shape

INPUT = "input"  # the id (and op) of the node standing for the network's input


@dataclass(slots=True)
class Node:
    """One primitive op of the expanded network (or its input)."""

    # ---- written by expansion (archspec/graph/)
    op: str  # a registry name, or "input"
    params: BaseModel | None  # the op's validated (frozen) parameter model; None for the input
    path: str  # module path, e.g. ``features.6.branch1.0.conv``; "" for the input
    loc: Loc  # where the spec writes the op
    unit: str  # path of the top-level row (block instance, op, group, aux head) it belongs to
    blocks: tuple[tuple[str, str], ...]  # the enclosing block instances (block name, instance path), outermost first
    order: float  # position in the spec: breaks ties of the topological order (an aux head sits after its tap)
    origin: str  # module path of the op as written (a composite conv's conv2d, bn and act share it)
    # the short form of the op as written, $parameters filled in (``conv 96 3x3 s2``): see ``text``
    _text: str | Callable[[], str]
    composite: tuple[str, BaseModel] | None = None  # (op, params) of the composite op it was expanded from
    # a `share:` replay: the node whose module (at the same path) it calls again, the weights shared
    shares: str | None = None
    replays: str | None = None  # ... and the node it applies again (a copy itself, in a copy of a copy)
    # ---- written by shapes.py
    shape: Shape | None = None  # the output shape, C exact, H and W as canonical forms of the input size
    range: Range | None = None  # input sizes at which this value (and everything before it) is computable
    conditions: tuple[Condition, ...] = ()  # a merge: input sizes at which its branches agree
    param_count: int = 0
    mac_count: int = 0  # at the spec's input size

    @property
    def text(self) -> str:
        """The short form of the op as written, $parameters filled in: ``conv 96 3x3 s2``. Written when
        first read (a message, a view): building never reads it, and writing every op's text was a
        tenth of expanding a network."""
        text = self._text
        if not isinstance(text, str):
            text = self._text = text()
        return text

    @text.setter
    def text(self, value: str) -> None:
        self._text = value

    @property
    def out(self) -> Shape:
        """The output shape, for the stages after shapes.py (which gives every node one)."""
        assert self.shape is not None, f"{self.path or self.op} has no shape: shapes.py has not run"
        return self.shape

    @property
    def sizes(self) -> Range:
        """The input sizes at which this value is computable, for the stages after shapes.py."""
        assert self.range is not None, f"{self.path or self.op} has no range: shapes.py has not run"
        return self.range


@dataclass(frozen=True)
class Unit:
    """A row of reports: a top-level op or block instance."""

    path: str
    label: str
    kind: str  # "block", "op", "aux", or "group" (a concat, residual or op list written in place)
    loc: Loc
    output: str = ""  # the node computing the row's output
    block: str | None = None  # the block it instantiates
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # the block's $parameters, as used


@dataclass(frozen=True)
class PartialMerge:
    """Two inputs of a merge whose size on one axis agrees at some input sizes only."""

    node: str
    axis: int  # 0: H, 1: W
    first: str
    other: str


@dataclass(slots=True)
class Network:
    """What is known about the network as a whole."""

    # ---- written by expansion (archspec/graph/)
    name: str  # the spec's name
    file: str  # the spec's file ("" for text)
    input: InputSpec  # channels, and the size reports use
    outputs: dict[str, str]  # output name → node id: "logits" (or the spec's ``outputs:``), then the aux heads
    aux_weights: dict[str, float]  # aux head → its loss weight
    units: list[Unit]  # the report's rows, in spec order
    block_labels: dict[str, str]  # block name → its label (the name where it has none)
    init: dict[str, dict[str, TensorInit]]  # ``init:`` tables: the spec's under "", each block's under its name
    main: tuple[str, ...] = ("logits",)  # the outputs eval mode returns: ``logits`` alone, or the spec's ``outputs:``
    named_outputs: bool = False  # the spec writes ``outputs:``: the network returns a dict of them, in order
    output_paths: tuple[str, ...] = ()  # the module path ``outputs:`` writes for each of them
    frozen: tuple[str, ...] = ()  # ``frozen:``: module-path patterns whose parameters do not train (archspec/frozen.py)
    features: tuple[tuple[str, str, Loc], ...] = ()  # ``features:``: (path, node id, where written), in order
    # ---- written by shapes.py
    min_size: tuple[int, int] | None = None  # the smallest input the main output accepts
    params: int = 0  # every op's parameters, aux heads included
    macs: int = 0  # multiply-accumulates of the main output at the spec's input size (aux heads left out)
    accepted: Accepted = field(default_factory=Accepted)  # input sizes eval mode accepts (the main output)
    train_accepted: Accepted = field(default_factory=Accepted)  # ... and training mode (every output)
    partial_merges: list[PartialMerge] = field(default_factory=list)
    warnings: list[SpecWarning] = field(default_factory=list)

    def main_outputs(self) -> dict[str, str]:
        """The outputs eval mode returns (name → node), in order: ``logits``, or the spec's ``outputs:``."""
        return {name: self.outputs[name] for name in self.main}

    @property
    def first(self) -> str:
        """The node of the first main output (``logits`` where the spec names no outputs)."""
        return self.outputs[self.main[0]]


class OpGraph(nx.DiGraph):  # type: ignore[misc]  # networkx has no type information
    """A networkx DiGraph whose nodes each carry a :class:`Node` and whose graph carries a :class:`Network`.

    The records sit under one attribute key each (``"node"``, ``"network"``), so networkx's own
    algorithms (ancestors, topological sorts) work unchanged and no other key is ever used.
    """

    _ordered: list[str] | None = None  # the topological order, while the topology is unchanged
    _inputs: dict[str, list[str]] | None = None  # each node's inputs in argument order, likewise

    def at(self, node: str) -> Node:
        """The record of ``node``."""
        return self._node[node]["node"]

    def add_node(self, node_for_adding: str, **attr: Any) -> None:
        self._ordered = self._inputs = None
        super().add_node(node_for_adding, **attr)

    def add_edge(self, u: str, v: str, **attr: Any) -> None:
        self._ordered = self._inputs = None
        super().add_edge(u, v, **attr)

    def remove_node(self, node: str) -> None:
        self._ordered = self._inputs = None
        super().remove_node(node)

    def remove_edge(self, u: str, v: str) -> None:
        self._ordered = self._inputs = None
        super().remove_edge(u, v)

    def add_nodes_from(self, nodes: Any, **attr: Any) -> None:
        self._ordered = self._inputs = None
        super().add_nodes_from(nodes, **attr)

    def add_edges_from(self, edges: Any, **attr: Any) -> None:
        self._ordered = self._inputs = None
        super().add_edges_from(edges, **attr)

    def remove_nodes_from(self, nodes: Any) -> None:
        self._ordered = self._inputs = None
        super().remove_nodes_from(nodes)

    def remove_edges_from(self, edges: Any) -> None:
        self._ordered = self._inputs = None
        super().remove_edges_from(edges)

    def clear(self) -> None:
        self._ordered = self._inputs = None
        super().clear()

    def clear_edges(self) -> None:
        self._ordered = self._inputs = None
        super().clear_edges()

    def ordered(self) -> list[str]:
        """Topological order, stable: ties broken by the order nodes were written in the spec
        (``Node.order``, final once expansion ends). Worked out once while the topology stays."""
        if self._ordered is None:
            order = {n: r.order for n, r in self.records()}
            if all(order[u] < order[v] for u, v in self.edges):  # the usual case: the spec order is topological
                self._ordered = sorted(self, key=order.__getitem__)
            else:
                self._ordered = list(nx.lexicographical_topological_sort(self, key=lambda n: order[n]))
        return list(self._ordered)

    @property
    def net(self) -> Network:
        return self.graph["network"]

    @net.setter
    def net(self, network: Network) -> None:
        self.graph["network"] = network

    def put(self, node: str, record: Node) -> None:
        """Add ``node`` with its record (or replace the record)."""
        self.add_node(node, node=record)

    def inputs_of(self, node: str) -> list[str]:
        """The node's inputs, in argument order (an edge's ``slot``). Worked out once while the topology stays."""
        known = self._inputs
        if known is None:
            known = self._inputs = {}
        found = known.get(node)
        if found is None:
            preds = self._pred[node]
            found = known[node] = list(preds) if len(preds) < 2 else sorted(preds, key=lambda p: preds[p]["slot"])
        return list(found)

    def records(self) -> Iterator[tuple[str, Node]]:
        """(id, record) of every node, in insertion order."""
        for n, d in self._node.items():
            yield n, d["node"]

    def input_loc(self) -> Loc:
        """Where the spec writes its input: the place of errors about input sizes."""
        return self.at(INPUT).loc
