"""``branch_sum``: the sum of K branches stacked along the channels (the input of SKNet's and ResNeSt's
attention, computed from the sum of the branches it will weigh)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, register
from archspec.symbolic import Shape

MAX_BRANCHES = 64


class BranchSumParams(OpParams):
    branches: int = Field(
        ge=1, le=MAX_BRANCHES, strict=True, description="K: the input holds K branches of equal width, one after another"
    )


@register
class BranchSum(Op):
    name = "branch_sum"
    doc = (
        "The sum of K branches concatenated along the channels: K·C×H×W to C×H×W, branch i being channels "
        "i·C to (i + 1)·C − 1 (timm's `x.sum(1)` over SKNet's stacked paths, ResNeSt's `x_gap = x.sum(dim=1)` "
        "over the radix splits). Counts no MACs, as fvcore. Short form: branch_sum K"
    )
    kind = "misc"
    Params = BranchSumParams
    positional = ("branches",)
    fresh_output = True
    saved_for_backward = ()
    # archspec's own function, in a network it built; timm computes it inside SelectiveKernelAttn and SplitAttn,
    # whose forwards the importer reads as modules it does not know (docs/import.md, Not yet)
    readers = (Reader("archspec.runtime.branch_sum", args=("branches",)),)

    def read(self, call: Call) -> dict[str, Any]:
        return {"branches": int(call.get("branches"))}

    def infer(self, p: BranchSumParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if not x.is_map or x.channels % p.branches:
            raise OpShapeError(
                f"needs a C×H×W map whose channels split into {p.branches} branches of equal width, got {x.formula()}",
                hint=f"concatenate the {p.branches} branches (concat:) before branch_sum {p.branches}",
            )
        return Shape(x.channels // p.branches, x.height, x.width)

    def function(self, p: BranchSumParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        from archspec.runtime import branch_sum

        return branch_sum, {"branches": p.branches}

    def label(self, p: BranchSumParams) -> str:
        return f"sum of {p.branches} branches"
