"""Writing primitive nodes into the OpGraph: the node's record, its id, its input edges.

Each node gets its :class:`~archspec.ir.Node` record, a fresh id (naming.py) and one edge per
input carrying ``slot``, the input's position. A module with state claims its path first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from archspec.errors import Loc
from archspec.graph.naming import Names, join
from archspec.graph.params import Chain, OpParams
from archspec.ir import INPUT, Node, OpGraph
from archspec.language.shortform import Ref, Scope
from archspec.ops import REGISTRY
from archspec.ops.registry import Op

Remake = Callable[[], Ref]  # parses an op again (with the real block_count)


@dataclass
class Written:
    """An op as added, kept so that its parameters can be worked out again (archspec/graph/__init__.py)."""

    op: Op
    ref: Ref
    remake: Remake | None
    path: str
    scope: Scope
    ids: list[str]
    scaled: bool  # the width multiplier changed its arguments
    unit: int | None = None  # its report row, when it is one


class Writer:
    """Adds nodes to one expansion's graph, in spec order (``Node.order``)."""

    def __init__(self, graph: OpGraph, params: OpParams) -> None:
        self.graph = graph
        self.params = params
        self.names = Names()
        self.order = 0

    def input(self, loc: Loc) -> str:
        """The node standing for the network's input."""
        self.names.reserve(INPUT)
        self.graph.put(INPUT, Node(INPUT, None, "", loc, INPUT, (), 0, "", "input"))
        return INPUT

    def add(
        self,
        op: str,
        params: Any,
        path: str,
        loc: Loc,
        inputs: list[str],
        scope: Scope,
        text: str | Callable[[], str] | None = None,
        composite: tuple[str, Any] | None = None,
    ) -> str:
        """Add a primitive node; ``text`` is the op as the spec wrote it (a composite's short form) and
        ``composite`` (op name, params) the composite op it was expanded from, if any."""
        entry = REGISTRY[op]
        if entry.stateful:
            self.names.claim_module(path, loc)
        node_id = self.names.new_id(path, op, loc)
        self.order += 1
        origin = path.rpartition(".")[0] if composite is not None else path  # a composite's children: path.child
        text = text or self.params.text(entry, params, scope.source)  # written when first read
        record = Node(op, params, path, loc, scope.unit or path, scope.blocks, self.order, origin, text, composite)
        self.graph.put(node_id, record)
        seen: set[str] = set()
        for slot, src in enumerate(inputs):
            if src in seen:
                # a DiGraph holds one edge per pair: an input read twice (a residual with an empty
                # body, a concat of two empty branches) is read the second time through an identity
                src = self.add("identity", REGISTRY["identity"].Params(), path, loc, [src], scope)
            seen.add(src)
            self.graph.add_edge(src, node_id, slot=slot)
        return node_id

    def replay(self, original: str, inputs: list[str], loc: Loc, scope: Scope) -> str:
        """A copy of node ``original`` applied to ``inputs`` (a ``share:``): the same op, parameters and path,
        so a module with state is the original's, called again (it claims no path); ``shares`` names the
        node whose module it is (the original's own, where the original is a replay too)."""
        first = self.graph.at(original)
        node_id = self.names.new_id(first.path, first.op, loc)
        self.order += 1
        record = replace(
            first,
            loc=loc,
            unit=scope.unit or first.unit,
            blocks=scope.blocks,
            order=self.order,
            shares=first.shares or original,
            replays=original,
            shape=None,  # the shapes stage writes it (an `in` reads it through the early shapes)
        )
        self.graph.put(node_id, record)
        for slot, src in enumerate(inputs):
            self.graph.add_edge(src, node_id, slot=slot)
        return node_id

    def add_chain(self, op: Op, params: Any, chain: Chain, path: str, loc: Loc, x: str, scope: Scope) -> list[str]:
        """A composite op as the chain of primitives it expands to, each under ``path.child``; their ids."""
        text, ids = self.params.text(op, params, scope.source), list[str]()
        for child, child_op, child_params in chain:
            ids.append(
                self.add(child_op, child_params, join(path, child), loc, [ids[-1] if ids else x], scope, text, (op.name, params))
            )
        return ids

    def schedule_after(self, tap: str, head: list[str]) -> None:
        """Order an aux head right after the node it taps, as hand-written networks compute it
        (torchvision's GoogLeNet and Inception-v3): the stable topological order then runs the
        head before the main path goes on, so dropout draws random numbers in the same order."""
        at = self.graph.at
        base = at(tap).order
        for k, node in enumerate(sorted(head, key=lambda n: at(n).order), start=1):
            at(node).order = base + k / (len(head) + 1)
