"""``prelu``: the parametric ReLU (He et al., arXiv 1502.01852): max(x, 0) + a · min(x, 0) with a learned slope a,
one for the whole tensor or one per channel (torch's ``nn.PReLU``; ENet, ArcFace's iResNet, SRGAN)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from archspec.ops.registry import Call, Op, OpParams, Reader, register
from archspec.symbolic import Shape


class PReLUParams(OpParams):
    per_channel: bool = Field(
        False, description="one slope per channel (nn.PReLU(C), weight [C]) instead of one for all (nn.PReLU(), weight [1])"
    )
    init: float = Field(0.25, ge=-1e6, le=1e6, description="the slope every weight starts at (torch's default 0.25)")


@register
class PReLU(Op):
    name = "prelu"
    doc = (
        "Parametric ReLU: x for x ≥ 0, a · x otherwise, with a learned slope a starting at INIT (0.25): one for the "
        "whole tensor, torch's `nn.PReLU()` (its `weight` [1] at the op's path), or with `per_channel` one per "
        "channel, `nn.PReLU(C)` (`weight` [C]; on a map, each channel's over its H×W). Counts no MACs. "
        "Short form: prelu [per_channel] [init=V]"
    )
    kind = "act"
    Params = PReLUParams
    flags = {"per_channel": ("per_channel", True)}
    stateful = True
    constant_init = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    readers = (Reader("torch.nn.PReLU"),)
    number = "init"  # a composite conv's act=prelu(0.1): one slope, starting at 0.1

    def read(self, call: Call) -> dict[str, Any]:
        """nn.PReLU's slopes are weights, read with the state_dict; its attributes say how many there are and
        the value they started at (``init``, what a spec written from it draws again)."""
        read: dict[str, Any] = {"per_channel": True} if int(call.get("num_parameters", 1)) > 1 else {}
        init = float(call.get("init", 0.25))
        return read if init == 0.25 else read | {"init": init}

    def infer(self, p: PReLUParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def param_count(self, p: PReLUParams, inputs: list[Shape], out: Shape) -> int:
        return out.channels if p.per_channel else 1

    def module(self, p: PReLUParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        return nn.PReLU(out.channels if p.per_channel else 1, init=p.init, device=device)

    def label(self, p: PReLUParams) -> str:
        return "PReLU" + (f" ({p.init:g})" if p.init != 0.25 else "")
