"""``l2_norm``: L2 normalisation over the channels at each pixel (ParseNet, arXiv 1506.04579; SSD's conv4_3 norm)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from archspec.ops._types import Eps
from archspec.ops.registry import Call, Op, OpParams, Reader, Unreadable, register
from archspec.symbolic import Shape


class L2NormParams(OpParams):
    eps: Eps = Field(1e-12, description="the least norm divided by (torch's default 1e-12)")


@register
class L2Norm(Op):
    name = "l2_norm"
    doc = (
        "L2 normalisation over the channels at each pixel: x / max(‖x‖₂, EPS), the norm taken over the C values "
        "of each pixel of a C×H×W map (over the values of a vector), as torch's `F.normalize(x, dim=1)` "
        "(ParseNet's and SSD's conv4_3 norm; SSD then scales each channel by a learned 20: `layer_scale 20 flat`). "
        "No weights; counts no MACs, as fvcore. Short form: l2_norm [eps=E]"
    )
    kind = "norm"
    Params = L2NormParams
    fresh_output = False  # the quotient's backward reads its inputs, not its output; kept off: nothing gains
    readers = (Reader("torch.nn.functional.normalize", args=("p", "dim", "eps", "out")),)

    def read(self, call: Call) -> dict[str, Any]:
        p, dim = float(call.get("p", 2.0)), call.get("dim", 1)
        if p != 2.0 or dim != 1 or call.get("out") is not None:
            raise Unreadable(f"F.normalize with p={p:g}, dim={dim!r}: archspec's l2_norm is the L2 norm over dim 1")
        eps = float(call.get("eps", 1e-12))
        return {} if eps == 1e-12 else {"eps": eps}

    def infer(self, p: L2NormParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def function(self, p: L2NormParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.normalize, {"p": 2.0, "dim": 1, "eps": p.eps}

    def label(self, p: L2NormParams) -> str:
        return "L2Norm"
