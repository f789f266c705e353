"""Pooling: max and average windows, adaptive and global average and max pooling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archspec.ops._types import NonNegPair, PosPair
from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, Unreadable, fmt_pair, map_size, pair, register
from archspec.symbolic import Dim, Shape, Window


class PoolParams(OpParams):
    kernel: PosPair
    stride: PosPair = (1, 1)
    padding: NonNegPair = (0, 0)
    ceil: bool = False


class MaxPoolParams(PoolParams):
    dilation: PosPair = (1, 1)


class AvgPoolParams(PoolParams):
    exclude_pad: bool = False  # torch's count_include_pad=False


def _pool_shape(p: PoolParams, x: Shape) -> Shape:
    height, width = map_size(x)
    for i in (0, 1):
        if 2 * p.padding[i] > p.kernel[i]:
            raise OpShapeError(
                f"padding {fmt_pair(p.padding)} is more than half the kernel {p.kernel[0]}x{p.kernel[1]}",
                hint="PyTorch pools allow padding up to kernel // 2",
                code="bad-op-args",
            )
    d = getattr(p, "dilation", (1, 1))
    h = height.window(Window(p.kernel[0], p.stride[0], p.padding[0], d[0], p.ceil))
    w = width.window(Window(p.kernel[1], p.stride[1], p.padding[1], d[1], p.ceil))
    return Shape(x.channels, h, w)


def _least_extent(kernel: int, stride: int, padding: int, dilation: int) -> int:
    """The least input extent at which every dilated window touches the input. A window starting in
    the left padding at -q samples -q, -q + d, ...: the first sample inside is at (-q) mod d, which the
    map must reach (with d > 1 the samples can step over a map smaller than d: max pool gives -inf).
    Windows starting inside the map sample their start. Checked against torch's own output for every
    kernel ≤ 5, stride and dilation ≤ 3 and legal padding (tests/test_pool_windows.py)."""
    starts = range(-padding, 0, stride)
    return 1 + max((q % dilation for q in starts), default=0)


def _pool_label(kind: str, p: PoolParams) -> str:
    extra = []
    if p.stride != (1, 1):
        extra.append(f"stride {fmt_pair(p.stride)}")
    if p.padding == (0, 0) and p.kernel != (1, 1):
        extra.append("V")
    return f"{p.kernel[0]}×{p.kernel[1]} {kind}" + (f" ({', '.join(extra)})" if extra else "")


class _Pool(Op):
    kind = "pool"
    fresh_output = True
    grid = "kernel"

    def infer(self, p: PoolParams, inputs: list[Shape]) -> Shape:
        return _pool_shape(p, inputs[0])


@register
class MaxPool(_Pool):
    name = "maxpool"
    layer = "MaxPool2d"
    saved_for_backward = ("in", "indices")
    doc = (
        "torch max_pool2d. Short form: maxpool KxK [sS] [pP] [dD] [ceil]. Stride defaults to 1, as for convs; "
        "a dilation spreads the window as a conv's does."
    )
    Params = MaxPoolParams
    flags = {"ceil": ("ceil", True)}

    def least_input(self, p: MaxPoolParams) -> tuple[int, int]:
        h, w = (_least_extent(p.kernel[i], p.stride[i], p.padding[i], p.dilation[i]) for i in (0, 1))
        return h, w

    readers = (
        Reader("torch.nn.MaxPool2d"),
        Reader(
            "torch.nn.functional.max_pool2d",
            args=("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
        ),
    )

    def read(self, call: Call) -> dict[str, Any]:
        if call.get("return_indices", False):
            raise Unreadable("max pooling with return_indices")
        kernel = pair(call.get("kernel_size"))
        stride = call.get("stride")
        return {
            "kernel": kernel,
            "stride": pair(stride) if stride else kernel,  # torch: no stride is the kernel's
            "padding": pair(call.get("padding", 0)),
            "dilation": pair(call.get("dilation", 1)),
            "ceil": bool(call.get("ceil_mode", False)),
        }

    def function(self, p: MaxPoolParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        kwargs: dict[str, Any] = {"kernel_size": p.kernel, "stride": p.stride, "padding": p.padding}
        if p.dilation != (1, 1):  # left out otherwise, so generated code reads as before
            kwargs["dilation"] = p.dilation
        return F.max_pool2d, {**kwargs, "ceil_mode": p.ceil}

    def label(self, p: MaxPoolParams) -> str:
        return _pool_label("max pool", p)


@register
class AvgPool(_Pool):
    name = "avgpool"
    layer = "AvgPool2d"
    doc = (
        "torch avg_pool2d. Short form: avgpool KxK [sS] [pP] [ceil] [exclude_pad]; exclude_pad divides "
        "by the number of real pixels (count_include_pad=False)."
    )
    Params = AvgPoolParams
    flags = {"ceil": ("ceil", True), "exclude_pad": ("exclude_pad", True)}
    readers = (
        Reader("torch.nn.AvgPool2d"),
        Reader(
            "torch.nn.functional.avg_pool2d",
            args=("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
        ),
        # timm's anti-aliasing blur: a padding, then K − 1 box filters of 2×2, the last at the stride (importer/forms.py)
        Reader("timm.layers.blur_pool.BlurPool2d", structural="blur_pool"),
    )

    def read(self, call: Call) -> dict[str, Any]:
        if call.get("divisor_override") is not None:
            raise Unreadable("average pooling with divisor_override")
        kernel = pair(call.get("kernel_size"))
        stride = call.get("stride")
        return {
            "kernel": kernel,
            "stride": pair(stride) if stride else kernel,
            "padding": pair(call.get("padding", 0)),
            "ceil": bool(call.get("ceil_mode", False)),
            "exclude_pad": not call.get("count_include_pad", True),
        }

    def function(self, p: AvgPoolParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.avg_pool2d, {
            "kernel_size": p.kernel,
            "stride": p.stride,
            "padding": p.padding,
            "ceil_mode": p.ceil,
            "count_include_pad": not p.exclude_pad,
        }

    def label(self, p: AvgPoolParams) -> str:
        return _pool_label("avg pool", p)


class AdaptiveParams(OpParams):
    size: PosPair


@register
class AdaptiveAvgPool(Op):
    name = "adaptive_avgpool"
    layer = "AdaptiveAvgPool2d"
    doc = "torch adaptive_avg_pool2d to a fixed size. Short form: adaptive_avgpool HxW"
    kind = "pool"
    fresh_output = True
    Params = AdaptiveParams
    grid = "size"
    readers = (
        Reader("torch.nn.AdaptiveAvgPool2d"),
        Reader("torch.nn.functional.adaptive_avg_pool2d", args=("output_size",)),
    )

    def read(self, call: Call) -> dict[str, Any]:
        size = call.get("output_size")
        if size is None or (isinstance(size, (tuple, list)) and None in size):
            raise Unreadable("adaptive pooling to a size with None in it")
        return {"size": pair(size)}

    def infer(self, p: AdaptiveParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        map_size(x)
        return Shape(x.channels, Dim.const(p.size[0]), Dim.const(p.size[1]))

    def function(self, p: AdaptiveParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.adaptive_avg_pool2d, {"output_size": p.size}

    def label(self, p: AdaptiveParams) -> str:
        return f"adaptive avg pool ({p.size[0]}×{p.size[1]})"


@register
class GlobalAvgPool(Op):
    name = "global_avgpool"
    doc = "Average over all of H and W, giving a vector of C (pooling and flatten in one, like timm's head)."
    kind = "pool"
    fresh_output = True
    saved_for_backward = ()
    # x.mean((2, 3)); also adaptive_avgpool 1x1 then flatten (the importer's flatten rule)
    readers = (
        Reader("torch.mean", args=("dim", "keepdim"), structural="mean"),
        Reader("Tensor.mean", args=("dim", "keepdim"), structural="mean"),
    )

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        map_size(x)
        return Shape(x.channels)

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.mean, {"dim": (2, 3)}

    def label(self, p: OpParams) -> str:
        return "global avg pool"


@register
class AdaptiveMaxPool(Op):
    name = "adaptive_maxpool"
    layer = "AdaptiveMaxPool2d"
    doc = "torch adaptive_max_pool2d to a fixed size. Short form: adaptive_maxpool HxW"
    kind = "pool"
    fresh_output = True
    Params = AdaptiveParams
    grid = "size"
    saved_for_backward = ("indices",)
    readers = (
        Reader("torch.nn.AdaptiveMaxPool2d"),
        Reader("torch.nn.functional.adaptive_max_pool2d", args=("output_size", "return_indices")),
    )

    def read(self, call: Call) -> dict[str, Any]:
        if call.get("return_indices", False):
            raise Unreadable("adaptive max pooling that returns its indices")
        return AdaptiveAvgPool().read(call)

    def infer(self, p: AdaptiveParams, inputs: list[Shape]) -> Shape:
        return AdaptiveAvgPool().infer(p, inputs)

    def function(self, p: AdaptiveParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.adaptive_max_pool2d, {"output_size": p.size}

    def label(self, p: AdaptiveParams) -> str:
        return f"adaptive max pool ({p.size[0]}×{p.size[1]})"


@register
class GlobalMaxPool(Op):
    name = "global_maxpool"
    doc = "The maximum over all of H and W, giving a vector of C (timm's 'max' pool type; CBAM's channel attention)."
    kind = "pool"
    # torch's amax backward reads its output (the positions of the maximum): never overwritten in place
    saved_for_backward = ("in", "out")
    not_imported = "torch's amax over H and W is not read yet; adaptive_maxpool 1x1 and flatten are"

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        return GlobalAvgPool().infer(p, inputs)

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.amax, {"dim": (2, 3)}

    def label(self, p: OpParams) -> str:
        return "global max pool"
