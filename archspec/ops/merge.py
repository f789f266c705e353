"""Merges: channel concatenation and the (scaled) residual sum. Both have no weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archspec.ops.registry import Op, OpParams, OpShapeError, Reader, register
from archspec.symbolic import Dim, Shape


@register
class Concat(Op):
    name = "concat"
    doc = "Concatenate branches along channels; every branch must have the same H and W."
    kind = "merge"
    fresh_output = True
    standalone = False
    arity = None
    variadic = True
    agreement = "hw"
    saved_for_backward = ()
    readers = (
        Reader("torch.cat", args=("dim",), structural="concat"),
        Reader("torch.concat", args=("dim",), structural="concat"),
    )

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        """The inputs agree in H and W (and are all maps or all vectors): the shapes stage checked them."""
        first = inputs[0]
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
    doc = (
        "shortcut + scale · branch (residual sum): the shapes agree, or one side broadcasts onto the other as torch "
        "broadcasts (a C×1×1 value added at every pixel: GCNet's x + transform(context)); vectors agree exactly."
    )
    kind = "merge"
    fresh_output = True
    standalone = False
    Params = AddParams
    arity = 2
    agreement = "chw"
    saved_for_backward = ()
    readers = tuple(
        Reader(t, structural="add")
        for t in (
            "operator.add",
            "operator.iadd",
            "torch.add",
            "torch.Tensor.add",
            "torch.Tensor.add_",
            "Tensor.add",
            "Tensor.add_",
        )
    ) + tuple(Reader(t, structural="sub") for t in ("operator.sub", "torch.sub", "Tensor.sub"))  # a − b: a + (−1)·b

    def infer(self, p: AddParams, inputs: list[Shape]) -> Shape:
        """The shortcut's shape, or the body's where the shortcut broadcasts onto it (the shapes stage checked
        that they agree, exactly or by broadcasting)."""
        shortcut, body = inputs
        return body if broadcast_onto(shortcut, body) and not broadcast_onto(body, shortcut) else shortcut

    def function(self, p: AddParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.add, ({"alpha": p.scale} if p.scale != 1.0 else {})

    def in_place(self, p: AddParams) -> Callable[..., Any] | None:
        if self.in_place_input(p) is None:
            return None
        import torch

        return torch.Tensor.add_  # body += shortcut, as torchvision's ResNets do

    def in_place_input(self, p: AddParams) -> int | None:
        return 1 if p.scale == 1.0 else None

    def label(self, p: AddParams) -> str:
        return "+" if p.scale == 1.0 else f"+ ×{p.scale:g}"


@register
class Mul(Op):
    name = "mul"
    doc = (
        "x · gate(x), made by a `gate:` node: the gate is broadcast onto x, so each of its channels, height and "
        "width is x's or 1: C×1×1 with the channels of x (one value per channel, squeeze-and-excitation), "
        "1×H×W with the H and W of x (one value per pixel, a spatial gate, CBAM), C×H×W (one value per element: "
        "GhostNetV2's attention). Like the residual sum, the product "
        "counts no MACs (MACs are those of convolutions and linear layers, as fvcore counts them); the gate's own "
        "convs are counted."
    )
    kind = "merge"
    fresh_output = True
    standalone = False
    arity = 2
    # x * gate(x) (a gate, recovered by the importer's structure stage); x * number is a residual's scale
    readers = tuple(
        Reader(t, structural="mul") for t in ("operator.mul", "operator.imul", "torch.mul", "Tensor.mul", "Tensor.mul_")
    )

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        x, gate = inputs
        if not broadcast_onto(gate, x):
            raise OpShapeError(
                f"a gate must give {x.channels}×1×1 (one value per channel), 1×H×W with the input's H and W (one "
                f"value per pixel) or {x.formula()} (one value per element; each of C, H and W the input's or 1) "
                f"for a {x.formula()} input, got {gate.formula()}",
                hint="end a channel gate with adaptive_avgpool 1x1, 1×1 convs back to the input's channels and an "
                "activation such as sigmoid; a spatial gate with a size-keeping conv to 1 channel; a gate computed "
                "at another size with interpolate size_of=NAME back to the input's",
                code="shape-mismatch",
            )
        return x

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.mul, {}

    def label(self, p: OpParams) -> str:
        return "×"


def broadcast_onto(small: Shape, big: Shape) -> bool:
    """``small`` broadcasts onto the map ``big`` as torch broadcasts, giving ``big``'s shape: each of its C, H
    and W is ``big``'s or 1 (H and W: equal at every input size, or 1 at every one). Vectors never broadcast."""
    return (
        small.is_map
        and big.is_map
        and small.channels in (1, big.channels)
        and _onto(small.height, big.height)
        and _onto(small.width, big.width)
    )


def _onto(g: Dim | None, x: Dim | None) -> bool:
    """A gate's size ``g`` broadcasts onto the input's ``x``: 1 at every input size, or equal to it (proven)."""
    if g is not None and g.is_const and g(0) == 1:
        return True
    return _same_size(g, x)


def _same_size(a: Dim | None, b: Dim | None) -> bool:
    """Equal at every input size, proven: the same record (a size-keeping conv leaves a size as it is), the
    same normal form k·floor((X + a)/m) + c, or the same periodic form R·(X // P) + t[X mod P] (after a
    factor such as 1.5 that the first form cannot hold); :meth:`Dim.equals` decides the last two."""
    if a is None or b is None:
        return False
    equal, proven = a.equals(b)
    return equal and proven
