"""``weighted_sum``: K same-shape maps, stacked along the channels by a concat, summed with K learned weights
(BiFPN's fast normalised fusion, EfficientDet arXiv 1911.09070 §3.3; softmax-based fusion; plain weights)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from archspec.ops._types import Eps, TensorFloat
from archspec.ops.branch_sum import MAX_BRANCHES
from archspec.ops.registry import Op, OpParams, OpShapeError, Reader, register
from archspec.symbolic import Shape


class WeightedSumParams(OpParams):
    branches: int = Field(
        ge=1, le=MAX_BRANCHES, strict=True, description="K: the input holds K branches of equal width, one after another"
    )
    weights: Literal["fast", "softmax", "plain"] = Field(
        "fast",
        description="how the K learned weights w weigh the branches: `fast`, relu(w_i) / (eps + Σ_j relu(w_j)) "
        "(BiFPN's fast normalised fusion); `softmax`, exp(w_i) / Σ_j exp(w_j); `plain`, w_i as they are",
    )
    eps: Eps = Field(1e-4, description="added to the sum of the weights under `fast` (EfficientDet: 1e-4)")
    init: TensorFloat = Field(1.0, description="the value every weight starts at (EfficientDet: 1)")


@register
class WeightedSum(Op):
    name = "weighted_sum"
    doc = (
        "The weighted sum of K branches concatenated along the channels, with K learned scalar weights: K·C×H×W "
        "to C×H×W, branch i being channels i·C to (i + 1)·C − 1 (as `branch_sum`), O = Σ_i v_i · I_i. With "
        "`fast` (the default) v_i = relu(w_i) / (EPS + Σ_j relu(w_j)), BiFPN's fast normalised fusion "
        "(EfficientDet, arXiv 1911.09070 §3.3); `softmax`: v = softmax(w); `plain`: v = w. The K weights are "
        "one tensor at the op's path, an `nn.Parameter` of the enclosing module (as `layer_scale`'s), so "
        "`p6_w1: weighted_sum 2` makes the key `p6_w1`, shape [K], starting at INIT (1). On a vector, the same "
        "over its values. Counts no MACs, as the residual sum. "
        "Short form: weighted_sum K [fast|softmax|plain] [eps=E] [init=V]"
    )
    kind = "misc"
    Params = WeightedSumParams
    positional = ("branches",)
    flags = {"fast": ("weights", "fast"), "softmax": ("weights", "softmax"), "plain": ("weights", "plain")}
    stateful = True
    parameter_only = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    # archspec's own function, weighted_sum(x, w, ...), in a network it built (importer/forms.py); EfficientDet
    # implementations compute it inline (relu, a division by the sum, products and sums of the inputs), which the
    # importer does not read as one op
    readers = (Reader("archspec.runtime.weighted_sum", args=("w", "branches", "weights", "eps"), structural="weighted_sum"),)

    def infer(self, p: WeightedSumParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if x.channels % p.branches:
            raise OpShapeError(
                f"needs its input's channels to split into {p.branches} branches of equal width, got {x.formula()}",
                hint=f"concatenate the {p.branches} same-shape branches (concat:) before weighted_sum {p.branches}",
            )
        if x.is_map:
            return Shape(x.channels // p.branches, x.height, x.width)
        return Shape(x.channels // p.branches)

    def param_count(self, p: WeightedSumParams, inputs: list[Shape], out: Shape) -> int:
        return p.branches

    def parameter(self, p: WeightedSumParams, inputs: list[Shape], out: Shape) -> tuple[tuple[int, ...], float]:
        return (p.branches,), p.init

    def function(self, p: WeightedSumParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        from archspec.runtime import weighted_sum

        return weighted_sum, {"branches": p.branches, "weights": p.weights, "eps": p.eps}

    def label(self, p: WeightedSumParams) -> str:
        return f"{p.weights} weighted sum of {p.branches}"
