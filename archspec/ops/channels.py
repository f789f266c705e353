"""Channel rearrangements without weights: a slice of the channels and ShuffleNet's channel shuffle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field, model_validator

from archspec.ops._types import Channels
from archspec.ops.registry import Op, OpParams, OpShapeError, register
from archspec.symbolic import Shape


class SliceParams(OpParams):
    start: int = Field(ge=0, le=1 << 16, description="first channel taken (0-based)")
    stop: Channels = Field(description="one past the last channel taken")

    @model_validator(mode="after")
    def _order(self) -> SliceParams:
        if self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be greater than start ({self.start})")
        return self


@register
class ChannelSlice(Op):
    name = "channel_slice"
    doc = (
        "Channels START to STOP − 1 of the input (a view, like ShuffleNetV2's channel split x.chunk(2, 1)). "
        "Short form: channel_slice START STOP"
    )
    kind = "misc"
    Params = SliceParams
    positional = ("start", "stop")
    view = True
    saved_for_backward = ()

    def infer(self, p: SliceParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if p.stop > x.channels:
            raise OpShapeError(
                f"channels {p.start}:{p.stop} of an input with {x.channels}", hint=f"stop may be at most {x.channels}"
            )
        return Shape(p.stop - p.start, x.height, x.width, x.flat)

    def function(self, p: SliceParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.narrow, {"dim": 1, "start": p.start, "length": p.stop - p.start}

    def short(self, p: SliceParams) -> str:
        return f"channel_slice {p.start} {p.stop}"

    def label(self, p: SliceParams) -> str:
        return f"channels {p.start}:{p.stop}"


class ShuffleParams(OpParams):
    groups: Channels = Field(description="the channels are split into this many groups and interleaved")


@register
class ChannelShuffle(Op):
    name = "channel_shuffle"
    layer = "ChannelShuffle"
    doc = (
        "ShuffleNet's channel shuffle (arXiv 1707.01083, Fig. 1): view the C channels as GROUPS × C/GROUPS, "
        "transpose, flatten. Short form: channel_shuffle GROUPS"
    )
    kind = "misc"
    Params = ShuffleParams
    positional = ("groups",)
    saved_for_backward = ()

    def infer(self, p: ShuffleParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if not x.is_map or x.channels % p.groups:
            raise OpShapeError(
                f"channel_shuffle {p.groups} needs a C×H×W map whose C is a multiple of {p.groups}, got {x.formula()}"
            )
        return x

    def function(self, p: ShuffleParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.channel_shuffle, {"groups": p.groups}

    def short(self, p: ShuffleParams) -> str:
        return f"channel_shuffle {p.groups}"

    def label(self, p: ShuffleParams) -> str:
        return f"channel shuffle ({p.groups})"
