"""``branch_select``: attention across K branches, softmaxed over the branch axis, weighing the branches into
one map (SKNet's selective kernel, Li et al. arXiv 1903.06586, Fig. 1; ResNeSt's split attention with its
radix softmax per cardinal group, Zhang et al. arXiv 2004.08955, Fig. 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from archspec.ops._types import Channels
from archspec.ops.branch_sum import MAX_BRANCHES
from archspec.ops.registry import Op, OpParams, OpShapeError, Reader, register
from archspec.symbolic import Shape


class BranchSelectParams(OpParams):
    branches: int = Field(ge=1, le=MAX_BRANCHES, strict=True, description="K: how many branches the attention weighs")
    of: str = Field(
        min_length=1,
        max_length=1000,
        description="the module path of an earlier value holding the K branches concatenated along the channels "
        "(looked up as from: looks a name up)",
    )
    groups: Channels = Field(
        default=1,
        description="cardinal groups (ResNeSt's cardinality): the logits are ordered group, branch, channel, and "
        "each group's channels are softmaxed over the branches on their own",
    )


@register
class BranchSelect(Op):
    name = "branch_select"
    doc = (
        "Softmax over branches: its input is the attention logits, K·C×1×1, computed from the branches (usually "
        "from their `branch_sum`); OF names the earlier value holding the K branches, K·C×H×W, branch i being "
        "channels i·C to (i + 1)·C − 1. Each channel's K logits are softmaxed over the branches and the output "
        "is the branches' weighted sum, C×H×W. With `groups=G` the logits are ordered group, branch, channel "
        "within the group (ResNeSt's radix softmax); with K = 1 the weight is sigmoid(logit) (ResNeSt's radix 1). "
        "Counts no MACs, as fvcore. Short form: branch_select K of=OF [groups=G]"
    )
    kind = "misc"
    Params = BranchSelectParams
    positional = ("branches",)
    arity = 2
    reads_values = ("of",)
    fresh_output = True
    saved_for_backward = ("in", "out")
    # archspec's own function, branch_select(logits, x, branches, groups), in a network it built (importer/forms.py);
    # timm computes it inside SelectiveKernel and SplitAttn, whose forwards the importer reads as modules it does
    # not know (docs/import.md, Not yet)
    readers = (Reader("archspec.runtime.branch_select", args=("x", "branches", "groups"), structural="branch_select"),)

    def infer(self, p: BranchSelectParams, inputs: list[Shape]) -> Shape:
        logits, x = inputs
        k = p.branches
        if not x.is_map or x.channels % k or (x.channels // k) % p.groups:
            raise OpShapeError(
                f"of={p.of} must be a C×H×W map holding {k} branches of equal width, each divisible into "
                f"{p.groups} group(s), got {x.formula()}",
                hint=f"name the concat of the {k} branches (or the conv giving all of them) in of=",
                code="shape-mismatch",
            )
        if not logits.per_channel or logits.channels != x.channels:
            raise OpShapeError(
                f"the attention logits must be {x.channels}×1×1 (one per channel of each of the {k} branches of "
                f"{p.of}, {x.formula()}), got {logits.formula()}",
                hint=f"end the attention with adaptive_avgpool 1x1 (or a global sum) and a 1×1 conv to {x.channels}",
                code="shape-mismatch",
            )
        return Shape(x.channels // k, x.height, x.width)

    def function(self, p: BranchSelectParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        from archspec.runtime import branch_select

        return branch_select, {"branches": p.branches, "groups": p.groups}

    def label(self, p: BranchSelectParams) -> str:
        return f"softmax over {p.branches} branches of {p.of}" if p.branches > 1 else f"sigmoid-weighted {p.of}"
