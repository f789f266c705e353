"""``channel_conv``: one small convolution sliding along the channels of a C×1×1 vector (ECA's attention,
Wang et al., arXiv 1910.03151: each channel's gate is computed from its K neighbouring channels)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator

from archspec.ops._types import MAX_KERNEL
from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, register
from archspec.symbolic import Shape


class ChannelConvParams(OpParams):
    kernel: int | None = Field(
        None,
        ge=1,
        le=MAX_KERNEL,
        strict=True,
        description="K, odd: the channels each output reads; left out, ECA's rule picks it from the channels C: "
        "t = int(abs(log2(C) + beta) / gamma), t + 1 where t is even, at least 3",
    )
    gamma: float = Field(2.0, gt=0, le=1e6, description="γ of ECA's rule for K (the paper's and timm's: 2)")
    beta: float = Field(1.0, ge=-1e6, le=1e6, description="b of ECA's rule for K (the paper's and timm's: 1)")

    @field_validator("kernel")
    @classmethod
    def _odd(cls, v: int | None) -> int | None:
        if v is not None and v % 2 == 0:
            raise ValueError(f"must be odd (the output keeps the C channels with (K - 1)/2 zeros each side), got {v}")
        return v


def kernel_of(p: ChannelConvParams, channels: int) -> int:
    """K: the written one, else ECA's rule as timm's EcaModule applies it: t = int(|log2(C) + b| / γ),
    the odd number t or t + 1, and at least 3."""
    if p.kernel is not None:
        return p.kernel
    t = int(abs(math.log2(channels) + p.beta) / p.gamma)
    return max(t if t % 2 else t + 1, 3)


@register
class ChannelConv(Op):
    name = "channel_conv"
    doc = (
        "A convolution of one input and one output channel sliding along the C channels of a C×1×1 map (or a "
        "vector of C), zero-padded by (K − 1)/2 each side, no bias: C×1×1 to C×1×1, each value computed from "
        "its K neighbouring channels (ECA's attention, Wang et al., arXiv 1910.03151, inside a `gate:` between "
        "the average pool and the sigmoid). Its weight is an `nn.Conv1d(1, 1, K)`'s, [1, 1, K], so "
        "`conv: channel_conv` inside timm's `se` gate is the key `se.conv.weight` of timm's EcaModule. Without "
        "K, ECA's rule picks it from C: t = int(abs(log2(C) + beta) / gamma), t + 1 where t is even, at least 3 "
        "(γ 2 and b 1: 3 for 64 channels, 5 for 128 to 1024, 7 for 2048), as timm computes it. C·K MACs, as "
        "fvcore counts a Conv1d. Short form: channel_conv [K] [gamma=G] [beta=B]"
    )
    kind = "conv"
    Params = ChannelConvParams
    positional = ("kernel",)
    stateful = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    # archspec's own module, in a network it built; timm computes it inside EcaModule's forward (a mean, a view
    # to N×1×C, the Conv1d, a view back), which the importer reads as a module it does not know (docs/import.md)
    readers = (Reader("archspec.runtime.ChannelConv"),)

    def read(self, call: Call) -> dict[str, Any]:
        return {"kernel": int(call.get("kernel_size")[0])}

    def infer(self, p: ChannelConvParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if x.is_map and not x.per_channel:
            raise OpShapeError(
                f"needs one value per channel, C×1×1 (or a vector of C), got {x.formula()}",
                hint="pool first: adaptive_avgpool 1x1 (ECA: gate: [adaptive_avgpool 1x1, channel_conv, sigmoid])",
            )
        return x

    def param_count(self, p: ChannelConvParams, inputs: list[Shape], out: Shape) -> int:
        return kernel_of(p, inputs[0].channels)

    def macs(self, p: ChannelConvParams, inputs: list[Shape], out: Shape, h: int, w: int) -> int:
        return inputs[0].channels * kernel_of(p, inputs[0].channels)

    def macs_formula(self, p: ChannelConvParams, inputs: list[Shape], out: Shape) -> str:
        return str(self.macs(p, inputs, out, 0, 0))

    def module(self, p: ChannelConvParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        from archspec.runtime import ChannelConv as Layer

        return Layer(kernel_of(p, inputs[0].channels), device=device)

    def label(self, p: ChannelConvParams) -> str:
        return "Channel conv" + (f" k={p.kernel}" if p.kernel is not None else " (ECA's k)")
