"""``space_to_depth``: each B×B block of pixels moved into the channels (TResNet's stem, timm's SpaceToDepth;
torch's pixel_unshuffle in the other channel order)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, Unreadable, register
from archspec.symbolic import Dim, Shape, Window

MAX_BLOCK = 64


class SpaceToDepthParams(OpParams):
    block: int = Field(ge=1, le=MAX_BLOCK, strict=True, description="B: the side of the blocks of pixels moved into the channels")
    order: Literal["block", "channel"] = Field(
        "block",
        description="the output channels' order: `block`, block position major ((i·B + j)·C + c: timm's "
        "SpaceToDepth, TensorFlow's space_to_depth); `channel`, channel major (c·B² + i·B + j: torch's pixel_unshuffle)",
    )


@register
class SpaceToDepth(Op):
    name = "space_to_depth"
    doc = (
        "Moves each B×B block of pixels into the channels: C×H×W to B²·C×H/B×W/B, the value at row i, column j "
        "of a block (0 ≤ i, j < B) of channel c going to channel (i·B + j)·C + c (`block` order, the default: "
        "timm's SpaceToDepth, TResNet's stem, TensorFlow's space_to_depth) or c·B² + i·B + j (`channel_major`: "
        "torch's pixel_unshuffle). H and W must be multiples of B: `check` refuses an input size where they are "
        "not (a located error) and reports the sizes accepted; the built network's input guard refuses them too. "
        "No weights, no MACs. Short form: space_to_depth B [channel_major]"
    )
    kind = "misc"
    Params = SpaceToDepthParams
    positional = ("block",)
    flags = {"block_major": ("order", "block"), "channel_major": ("order", "channel")}
    fresh_output = False  # a reshape of a permuted copy: kept off (the channel order may be a view at B = 1)
    saved_for_backward = ()
    readers = (
        Reader("timm.layers.space_to_depth.SpaceToDepth"),
        Reader("torch.nn.PixelUnshuffle"),
        Reader("torch.nn.functional.pixel_unshuffle", args=("downscale_factor",)),
        Reader("archspec.runtime.space_to_depth", args=("block",)),  # in a network archspec built
    )

    def read(self, call: Call) -> dict[str, Any]:
        block = call.get("bs", call.get("block"))
        if block is not None:  # timm's SpaceToDepth, archspec's own: block-major
            return {"block": int(block)}
        factor = call.get("downscale_factor")
        if factor is None:
            raise Unreadable("a pixel unshuffle without its downscale_factor")
        return {"block": int(factor), "order": "channel"}

    def infer(self, p: SpaceToDepthParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if not x.is_map:
            raise OpShapeError("needs a C×H×W feature map", hint="space_to_depth moves blocks of pixels: give it a map")
        assert x.height is not None and x.width is not None
        blocks = Window(p.block, p.block)
        return Shape(x.channels * p.block * p.block, x.height.window(blocks), x.width.window(blocks))

    def agreeing_sizes(self, p: SpaceToDepthParams, inputs: list[Shape]) -> list[tuple[int, Dim, Dim, str]]:
        x = inputs[0]
        assert x.height is not None and x.width is not None
        blocks = Window(p.block, p.block)
        need = f"a multiple of {p.block}"
        return [(axis, d, d.window(blocks).scaled(p.block), need) for axis, d in enumerate((x.height, x.width))]

    def function(self, p: SpaceToDepthParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        if p.order == "channel":
            import torch.nn.functional as F

            return F.pixel_unshuffle, {"downscale_factor": p.block}
        from archspec.runtime import space_to_depth

        return space_to_depth, {"block": p.block}

    def label(self, p: SpaceToDepthParams) -> str:
        return f"space to depth {p.block}"
