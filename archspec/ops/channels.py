"""Channel rearrangements without weights: a slice of the channels, ShuffleNet's channel shuffle, and the
mean and maximum over the channels (CBAM's spatial attention)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field, model_validator

from archspec.ops._types import Channels
from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, Unreadable, map_size, register
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
    readers = (
        Reader("torch.narrow", args=("dim", "start", "length")),
        Reader("Tensor.chunk", args=("chunks", "dim"), structural="chunk"),  # x.chunk(2, 1)[i]
        Reader("torch.chunk", args=("chunks", "dim"), structural="chunk"),
        Reader("Tensor.split", args=("split_size", "dim"), structural="split"),  # x.split(64, 1)[i] (CSPNet)
        Reader("torch.split", args=("split_size_or_sections", "dim"), structural="split"),
    )

    def read(self, call: Call) -> dict[str, Any]:
        dim, start, length = call.get("dim"), call.get("start"), call.get("length")
        if dim not in (1, -3) or not isinstance(start, int) or not isinstance(length, int):
            raise Unreadable("torch.narrow other than along the channels by numbers")
        return {"start": start, "stop": start + length}

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
    readers = (
        Reader("torch.nn.ChannelShuffle"),
        Reader("torch.nn.functional.channel_shuffle", args=("groups",)),
        Reader("torch.channel_shuffle", args=("groups",)),
        Reader("torchvision.models.shufflenetv2.channel_shuffle", args=("groups",)),  # traced as one call
    )

    def read(self, call: Call) -> dict[str, Any]:
        return {"groups": int(call.get("groups"))}

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

    def label(self, p: ShuffleParams) -> str:
        return f"channel shuffle ({p.groups})"


class _OverChannels(Op):
    """One value per pixel from all the channels: 1×H×W (kept as a map, as torch's keepdim=True)."""

    fresh_output = True
    torch_function: str = ""

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        height, width = map_size(x)
        return Shape(1, height, width)

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return getattr(torch, self.torch_function), {"dim": 1, "keepdim": True}


@register
class ChannelMean(_OverChannels):
    name = "channel_mean"
    torch_function = "mean"
    doc = "The mean over the channels at each pixel: C×H×W to 1×H×W (x.mean(1, keepdim=True))."
    not_imported = "x.mean(1, keepdim=True) is read by global_avgpool's `mean` reader as this op (importer/forms.py)"

    def label(self, p: OpParams) -> str:
        return "mean over C"


@register
class ChannelMax(_OverChannels):
    name = "channel_max"
    torch_function = "amax"
    fresh_output = False  # amax's backward reads its output: an activation after it must not run in place
    saved_for_backward = ("in", "out")
    doc = "The maximum over the channels at each pixel: C×H×W to 1×H×W (x.amax(1, keepdim=True))."
    readers = (
        Reader("torch.amax", args=("dim", "keepdim"), structural="amax"),
        Reader("Tensor.amax", args=("dim", "keepdim"), structural="amax"),
    )

    def label(self, p: OpParams) -> str:
        return "max over C"
