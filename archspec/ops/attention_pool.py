"""``attention_pool``: a map pooled over its pixels by a softmax over H×W of attention logits (GCNet's context
modelling, Cao et al. arXiv 1904.11492, Fig. 4: context = Σ_j x_j · softmax_j(W_k x)_j)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from archspec.ops.registry import Op, OpParams, OpShapeError, register
from archspec.symbolic import Dim, Shape, factor


class AttentionPoolParams(OpParams):
    of: str = Field(
        min_length=1,
        max_length=1000,
        description="the module path of the earlier C×H×W map pooled (looked up as from: looks a name up)",
    )


@register
class AttentionPool(Op):
    name = "attention_pool"
    doc = (
        "Attention pooling over the pixels: its input is the attention logits, 1×H×W (one softmax over H×W, "
        "GCNet's context modelling) or C×H×W (one per channel); OF names the earlier C×H×W map pooled, of the "
        "same H and W. The logits are softmaxed over the H·W pixels and the output is the map's pixels weighed "
        "by them and summed, C×1×1: Σ_p x[:, p] · softmax(logits)[p] (GCNet, arXiv 1904.11492, Fig. 4; timm's "
        "`GlobalContext` with its `conv_attn`, the 1×1 conv to one channel giving the logits). No weights; "
        "counts C·H·W MACs, the matrix product's, as fvcore counts timm's. Short form: attention_pool of=OF"
    )
    kind = "pool"
    Params = AttentionPoolParams
    arity = 2
    reads_values = ("of",)
    fresh_output = True
    saved_for_backward = ("in", "out")
    not_imported = (
        "timm computes it inside GlobalContext (a reshape, a softmax and a matrix product in its forward), which "
        "the importer reads as a module it does not know (docs/import.md, Not yet)"
    )

    def infer(self, p: AttentionPoolParams, inputs: list[Shape]) -> Shape:
        logits, x = inputs
        if not x.is_map:
            raise OpShapeError(
                f"of={p.of} must be a C×H×W map to pool over its pixels, got the vector {x.formula()}",
                hint="name a feature map in of=, not a pooled or flattened value",
                code="shape-mismatch",
            )
        fits = (
            logits.is_map
            and logits.channels in (1, x.channels)
            and _same(logits.height, x.height)
            and _same(logits.width, x.width)
        )
        if not fits:
            raise OpShapeError(
                f"the attention logits must be 1×H×W (one softmax over the pixels) or {x.channels}×H×W (one per "
                f"channel) with the H and W of of={p.of}, {x.formula()}; got {logits.formula()}",
                hint="compute the logits from the map with a size-keeping conv to 1 channel, as GCNet's conv_attn: conv2d 1 1x1",
                code="shape-mismatch",
            )
        return Shape(x.channels, Dim.const(1), Dim.const(1))

    def macs(self, p: AttentionPoolParams, inputs: list[Shape], out: Shape, h: int, w: int) -> int:
        x = inputs[1]
        assert x.height is not None and x.width is not None
        return x.channels * x.height(h) * x.width(w)

    def macs_formula(self, p: AttentionPoolParams, inputs: list[Shape], out: Shape) -> str:
        x = inputs[1]
        assert x.height is not None and x.width is not None
        return f"{x.channels}·{factor(x.height.formula())}·{factor(x.width.formula())}"

    def function(self, p: AttentionPoolParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        from archspec.runtime import attention_pool

        return attention_pool, {}

    def label(self, p: AttentionPoolParams) -> str:
        return f"attention pool of {p.of}"


def _same(a: Dim | None, b: Dim | None) -> bool:
    """Equal at every input size, proven (:meth:`Dim.equals`), as a gate's size must be its input's."""
    if a is None or b is None:
        return False
    equal, proven = a.equals(b)
    return equal and proven
