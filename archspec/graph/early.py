"""Shapes worked out during expansion, for ``in`` (the input channels) in ``${...}``.

A node's inputs are always added before it, so the shape rules can run over a node and its
inputs as soon as an op reads ``in``. Each shape is remembered, and the expansion hands them to
shape inference (archspec/shapes.py), which does not compute them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archspec.ir import INPUT, OpGraph
from archspec.ops import REGISTRY
from archspec.shapes import input_shape, op_shape
from archspec.symbolic import Shape

if TYPE_CHECKING:
    from archspec.language.model import InputSpec


class EarlyShapes:
    """The shapes of the nodes some ``in`` needed, in one expansion."""

    def __init__(self, graph: OpGraph, spec_input: InputSpec) -> None:
        self.graph = graph
        self.spec_input = spec_input
        self.memo: dict[str, Shape] = {}

    def channels(self, node: str) -> int:
        """The channels of a node's output: its shape, from the shapes of its inputs."""
        memo, graph = self.memo, self.graph
        todo = [node]
        while todo:
            n = todo[-1]
            if n in memo:
                todo.pop()
                continue
            preds = graph.inputs_of(n) if n != INPUT else []
            missing = [p for p in preds if p not in memo]
            if missing:
                todo.extend(missing)
                continue
            todo.pop()
            memo[n] = self.shape_of(n, [memo[p] for p in preds])
        return memo[node].channels

    def shape_of(self, node: str, inputs: list[Shape]) -> Shape:
        record = self.graph.at(node)
        if record.op == INPUT:
            return input_shape(self.spec_input)
        return op_shape(REGISTRY[record.op], record, inputs)
