"""Merges: channel concatenation and the (scaled) residual sum. Both have no weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archspec.ops.registry import Op, OpParams, OpShapeError, register
from archspec.symbolic import Shape


@register
class Concat(Op):
    name = "concat"
    doc = "Concatenate branches along channels; every branch must have the same H and W."
    kind = "merge"
    fresh_output = True
    standalone = False
    arity = None

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        first = inputs[0]
        if not first.is_map:
            if any(x.is_map for x in inputs):
                raise OpShapeError("cannot concatenate vectors with feature maps", code="shape-mismatch")
            return Shape(sum(x.channels for x in inputs))
        return Shape(sum(x.channels for x in inputs), first.height, first.width)

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.cat, {"dim": 1}

    def label(self, p: OpParams) -> str:
        return "Filter concat"

class AddParams(OpParams):
    scale: float = 1.0

@register
class Add(Op):
    name = "add"
    doc = "shortcut + scale · branch (residual sum); shapes must agree exactly."
    kind = "merge"
    fresh_output = True
    standalone = False
    Params = AddParams
    arity = 2

    def infer(self, p: AddParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def function(self, p: AddParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.add, ({"alpha": p.scale} if p.scale != 1.0 else {})

    def short(self, p: AddParams) -> str:
        return "add" + (f" scale={p.scale:g}" if p.scale != 1.0 else "")

    def label(self, p: AddParams) -> str:
        return "+" if p.scale == 1.0 else f"+ ×{p.scale:g}"

_ = OpShapeError  # shape agreement is checked by the shapes stage, which knows both locations
