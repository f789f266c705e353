"""Spatial resizing without weights: padding (constant, reflected, replicated or circular), upsampling
(nearest or bilinear) and a centre crop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from archspec.ops._types import MAX_KERNEL, PosPair
from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, Unreadable, map_size, register
from archspec.symbolic import SCAN_LIMIT, Dim, Shape, Window


def _sides(v: Any) -> Any:
    """One number: every side; a pair [H, W] (as `pH,W` writes it for a conv): top and bottom, left and right."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v, v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return (v[1], v[1], v[0], v[0])
    return v


class PadParams(OpParams):
    padding: tuple[int, int, int, int] = Field(
        description="pixels added on the left, right, top and bottom (one number: every side; [H, W] or pH,W: "
        "top and bottom H, left and right W)"
    )
    value: float = Field(0.0, description="the value of the added pixels (mode constant only)")
    mode: Literal["constant", "reflect", "replicate", "circular"] = Field(
        "constant",
        description="constant: VALUE; reflect: the map mirrored about its edge pixel (each side's padding below the "
        "map's extent); replicate: the edge pixel repeated; circular: the opposite edge (padding at most the extent)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_number(cls, data: Any) -> Any:
        if isinstance(data, dict) and "padding" in data:
            return {**data, "padding": _sides(data["padding"])}
        return data

    @model_validator(mode="after")
    def _range(self) -> PadParams:
        if min(self.padding) < 0 or max(self.padding) > MAX_KERNEL:
            raise ValueError(f"padding must be between 0 and {MAX_KERNEL} on each side")
        if self.mode != "constant" and self.value != 0.0:
            raise ValueError(f"value applies to constant padding only, not {self.mode}")
        return self


def _grow(d: Dim, by: int) -> Dim:
    """``d + by``: a window of kernel by + 1 padded by ``by`` on each side adds exactly ``by`` pixels."""
    return d if by == 0 else d.window(Window(by + 1, 1, by))


@register
class Pad(Op):
    name = "pad"
    doc = (
        "Pads a map (torch's F.pad, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.CircularPad2d): "
        "P pixels on every side (`pH,W`: H at the top and bottom, W left and right), or `padding: [left, right, "
        "top, bottom]`, of VALUE (default 0), or with `reflect` the map mirrored about its edge pixel (each side's "
        "padding must stay below the map's extent: a smaller input is refused), `replicate` its edge pixel "
        "repeated, `circular` the opposite edge (padding at most the extent); BiT's stem pads by 1 with zeros "
        "before its max pool, timm's BlurPool2d reflects by 1 before its blur. "
        "Short form: pad P [value=V] [reflect|replicate|circular]"
    )
    kind = "pool"
    Params = PadParams
    positional = ("padding",)
    flags = {"reflect": ("mode", "reflect"), "replicate": ("mode", "replicate"), "circular": ("mode", "circular")}
    readers = (
        Reader("torch.nn.ConstantPad2d"),
        Reader("torch.nn.ZeroPad2d"),
        Reader("torch.nn.ReflectionPad2d", sets=(("mode", "reflect"),)),
        Reader("torch.nn.ReplicationPad2d", sets=(("mode", "replicate"),)),
        Reader("torch.nn.CircularPad2d", sets=(("mode", "circular"),)),
        Reader("torch.nn.functional.pad", args=("pad", "mode", "value")),
    )

    def read(self, call: Call) -> dict[str, Any]:
        mode = call.get("mode", "constant") or "constant"
        if mode not in ("constant", "reflect", "replicate", "circular"):
            raise Unreadable(f"padding with mode={mode!r}; archspec pads with a constant, reflect, replicate or circular")
        pad = call.get("padding", None)
        pad = call.get("pad") if pad is None else pad
        if not isinstance(pad, (tuple, list)) or len(pad) != 4:
            raise Unreadable(f"padding {pad!r}; archspec pads a map's four sides (left, right, top, bottom)")
        value = float(call.get("value", 0.0) or 0.0) if mode == "constant" else 0.0
        return {"padding": tuple(int(v) for v in pad), "value": value, "mode": mode}

    fresh_output = True
    saved_for_backward = ()

    def infer(self, p: PadParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        height, width = map_size(x)
        left, right, top, bottom = p.padding
        return Shape(x.channels, _grow(height, top + bottom), _grow(width, left + right))

    def least_input(self, p: PadParams) -> tuple[int, int]:
        # torch refuses a reflection as wide as the map and a circular padding that wraps around more than once
        left, right, top, bottom = p.padding
        extra = {"reflect": 1, "circular": 0}.get(p.mode)
        if extra is None:
            return (1, 1)
        return (max(1, max(top, bottom) + extra), max(1, max(left, right) + extra))

    def function(self, p: PadParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        if p.mode != "constant":
            return F.pad, {"pad": p.padding, "mode": p.mode}
        return F.pad, {"pad": p.padding, "value": p.value}

    def label(self, p: PadParams) -> str:
        return f"pad {','.join(map(str, p.padding))}" + ("" if p.mode == "constant" else f" ({p.mode})")


class UpsampleParams(OpParams):
    scale: float | None = Field(
        None, gt=0, le=64, description="the factor on H and W: the output is floor(X · scale) (torch's scale_factor)"
    )
    size: PosPair | None = Field(None, description="a fixed output size H×W instead of a factor")
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: bool | None = Field(None, description="bilinear only: torch's align_corners (None: torch's default, False)")

    @model_validator(mode="after")
    def _one_of(self) -> UpsampleParams:
        if (self.scale is None) == (self.size is None):
            raise ValueError("give exactly one of scale (a factor) and size (HxW)")
        if self.align_corners is not None and self.mode != "bilinear":
            raise ValueError("align_corners applies to bilinear upsampling only")
        return self


@register
class Upsample(Op):
    name = "upsample"
    doc = (
        "Resizes a map by interpolation (torch's F.interpolate): by a factor SCALE, the output floor(X · SCALE) "
        "on each axis, or to a fixed size HxW; `nearest` (default) or `bilinear`, with `align_corners` as torch "
        "has it. Counts no MACs (fvcore counts none for interpolation either). Short form: upsample [SCALE] "
        "[HxW] [nearest|bilinear] [align_corners]"
    )
    kind = "pool"
    Params = UpsampleParams
    positional = ("scale",)
    readers = (
        Reader("torch.nn.Upsample"),
        Reader("torch.nn.functional.interpolate", args=("size", "scale_factor", "mode", "align_corners")),
    )

    def read(self, call: Call) -> dict[str, Any]:
        mode = call.get("mode", "nearest")
        if mode not in ("nearest", "bilinear"):
            raise Unreadable(f"interpolation mode {mode!r}; archspec upsamples nearest or bilinear")
        for unread in ("recompute_scale_factor", "antialias"):
            if call.get(unread, None):
                raise Unreadable(f"interpolate with {unread}=True")
        size, scale = call.get("size", None), call.get("scale_factor", None)
        out: dict[str, Any] = {"mode": mode}
        if call.get("align_corners", None) is not None:
            out["align_corners"] = bool(call.get("align_corners"))
        if size is not None:
            if not isinstance(size, (int, tuple, list)):
                raise Unreadable("an upsample to a size computed at run time")
            out["size"] = (size, size) if isinstance(size, int) else tuple(size)
            return out
        if isinstance(scale, (tuple, list)):
            if len(set(scale)) != 1:
                raise Unreadable(f"upsampling by {scale}: archspec scales H and W alike")
            scale = scale[0]
        if not isinstance(scale, (int, float)):
            raise Unreadable("an upsample without a size or a factor")
        out["scale"] = float(scale)
        return out

    grid = "size"
    flags = {"nearest": ("mode", "nearest"), "bilinear": ("mode", "bilinear"), "align_corners": ("align_corners", True)}
    fresh_output = True
    saved_for_backward = ()

    def infer(self, p: UpsampleParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        height, width = map_size(x)
        if p.size is not None:
            return Shape(x.channels, Dim.const(p.size[0]), Dim.const(p.size[1]))
        assert p.scale is not None
        return Shape(x.channels, height.scaled(p.scale), width.scaled(p.scale))

    def function(self, p: UpsampleParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        kwargs: dict[str, Any] = {"size": p.size} if p.size is not None else {"scale_factor": p.scale}
        kwargs["mode"] = p.mode
        if p.align_corners is not None:
            kwargs["align_corners"] = p.align_corners
        return F.interpolate, kwargs

    def label(self, p: UpsampleParams) -> str:
        what = f"×{p.scale:g}" if p.scale is not None else f"to {p.size[0]}×{p.size[1]}"  # type: ignore[index]
        return f"{p.mode} upsample ({what})"


class InterpolateParams(OpParams):
    size_of: str = Field(
        min_length=1,
        max_length=1000,
        description="the module path of an earlier value (as from: names one) whose H×W the output takes",
    )
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: bool | None = Field(None, description="bilinear only: torch's align_corners (None: torch's default, False)")

    @model_validator(mode="before")
    @classmethod
    def _path_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("size_of"), int) and not isinstance(data["size_of"], bool):
            return {**data, "size_of": str(data["size_of"])}  # a numbered module: size_of=0
        return data

    @model_validator(mode="after")
    def _corners(self) -> InterpolateParams:
        if self.align_corners is not None and self.mode != "bilinear":
            raise ValueError("align_corners applies to bilinear interpolation only")
        return self


@register
class Interpolate(Op):
    name = "interpolate"
    doc = (
        "Resizes a map to the height and width of an earlier value of the network (torch's "
        "`F.interpolate(x, size=other.shape[-2:])`): FPN's top-down path (nearest, to the lateral's size), "
        "DeepLab's and LR-ASPP's heads (bilinear, to the input's size: `size_of=input`). `size_of` names the "
        "value as `from:` does; its channels may differ. Counts no MACs. A standalone file defines its small "
        "`InterpolateLike` class. Short form: interpolate size_of=PATH [nearest|bilinear] [align_corners]"
    )
    kind = "pool"
    Params = InterpolateParams
    reads_values = ("size_of",)
    stateless_module = True
    # F.interpolate(x, size=v.shape[-2:]): the call with a size read from another value (importer/forms.py);
    # with a fixed size or a factor it is upsample's
    readers = (
        Reader("torch.nn.functional.interpolate", args=("size", "scale_factor", "mode", "align_corners"), structural="resize_to"),
        Reader("archspec.runtime.InterpolateLike", structural="resize_like"),  # a network archspec built: (x, like)
    )
    flags = {"nearest": ("mode", "nearest"), "bilinear": ("mode", "bilinear"), "align_corners": ("align_corners", True)}
    fresh_output = True
    saved_for_backward = ()

    def infer(self, p: InterpolateParams, inputs: list[Shape]) -> Shape:
        x, like = inputs
        map_size(x, what=" as its input")
        return Shape(x.channels, *map_size(like, what=f" as size_of={p.size_of}"))

    def train_module_of(self, p: InterpolateParams) -> Any:
        from archspec.runtime import InterpolateLike

        return InterpolateLike(p.mode, p.align_corners)

    def label(self, p: InterpolateParams) -> str:
        return f"{p.mode} resize (to {p.size_of})"


class CropParams(OpParams):
    to: str = Field(
        min_length=1,
        max_length=1000,
        description="the module path of an earlier value whose H×W the crop takes (looked up as from: looks a name up)",
    )


def _first_smaller(x: Dim, ref: Dim) -> int | None:
    """The smallest input size at which ``x`` is smaller than ``ref`` while both are at least 1, or None."""
    start = max(x.min_input(), ref.min_input())
    return next((s for s in range(start, SCAN_LIMIT + 1) if x(s) < ref(s)), None)


@register
class Crop(Op):
    name = "crop"
    doc = (
        "The centre of the input at the H×W of an earlier value (U-Net's copy and crop, Ronneberger et al. 2015, "
        "arXiv 1505.04597, Fig. 1): the rows and columns left out split evenly, the odd one at the bottom and "
        "right; a view. TO is that value's module path, looked up as `from:` looks one up; the input must be at "
        "least as large at every input size. Short form: crop to=TO"
    )
    kind = "pool"
    Params = CropParams
    arity = 2
    reads_values = ("to",)
    view = True
    saved_for_backward = ()
    # x[:, :, top : top + h, left : left + w] with top = (x.shape[2] - h) // 2, h = v.shape[2] (importer/forms.py)
    readers = (
        Reader("operator.getitem", structural="crop"),
        Reader("archspec.runtime.center_crop", structural="center_crop"),  # center_crop(x, like): a network archspec built
    )

    def infer(self, p: CropParams, inputs: list[Shape]) -> Shape:
        x, ref = inputs[0], inputs[-1]
        (h, w), (rh, rw) = map_size(x, what=" as its input"), map_size(ref, what=f" as to={p.to}")
        for axis, (a, b) in enumerate(((h, rh), (w, rw))):
            bad = _first_smaller(a, b)
            if bad is not None:
                name = "HW"[axis]
                raise OpShapeError(
                    f"the input ({a.formula()}) is smaller than {p.to!r} ({b.formula()}) at {name} = {bad}",
                    hint="crop a larger map (an earlier one on the contracting path) to a smaller one",
                )
        return Shape(x.channels, ref.height, ref.width)

    def function(self, p: CropParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        from archspec.runtime import center_crop

        return center_crop, {}

    def label(self, p: CropParams) -> str:
        return f"crop to {p.to}"
