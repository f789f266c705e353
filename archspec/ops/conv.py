"""Convolutions: the primitive ``conv2d`` and the composite ``conv`` (Conv2d → BatchNorm → act)."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field

from archspec.ops._types import Channels, Eps, NonNegPair, PosPair
from archspec.ops.registry import Op, OpParams, OpShapeError, fmt_pair, register
from archspec.symbolic import Shape, Window, factor

Activation = Literal["relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "none"]


class Conv2dParams(OpParams):
    out: Channels
    kernel: PosPair = (1, 1)
    stride: PosPair = (1, 1)
    padding: NonNegPair = (0, 0)
    dilation: PosPair = (1, 1)
    groups: Union[Channels, Literal["in"]] = Field(
        1, description="channel groups; 'in' (the flag dw) makes one group per input channel: a depthwise conv"
    )
    bias: bool = True


def groups_of(p: Conv2dParams, cin: int) -> int:
    """The number of groups, with 'in' (depthwise) resolved against the input channels."""
    return cin if p.groups == "in" else p.groups


def conv_shape(p: Conv2dParams, x: Shape) -> Shape:
    if not x.is_map or x.height is None or x.width is None:
        raise OpShapeError(
            f"needs a C×H×W feature map, got a vector of {x.channels}", hint="convolutions come before flatten / global_avgpool"
        )
    groups = groups_of(p, x.channels)
    if x.channels % groups or p.out % groups:
        what = "dw (one group per input channel)" if p.groups == "in" else f"groups={groups}"
        raise OpShapeError(f"{what} must divide both input channels ({x.channels}) and out ({p.out})")
    h = x.height.window(Window(p.kernel[0], p.stride[0], p.padding[0], p.dilation[0]))
    w = x.width.window(Window(p.kernel[1], p.stride[1], p.padding[1], p.dilation[1]))
    return Shape(p.out, h, w)


def conv_weights(p: Conv2dParams, cin: int) -> int:
    return p.out * (cin // groups_of(p, cin)) * p.kernel[0] * p.kernel[1]


def conv_short(name: str, p: Conv2dParams) -> str:
    parts = [name, str(p.out), f"{p.kernel[0]}x{p.kernel[1]}"]
    if p.stride != (1, 1):
        parts.append("s" + fmt_pair(p.stride))
    if p.padding != (0, 0):
        parts.append("p" + fmt_pair(p.padding))
    if p.dilation != (1, 1):
        parts.append("d" + fmt_pair(p.dilation))
    if p.groups == "in":
        parts.append("dw")
    elif p.groups != 1:
        parts.append(f"g{p.groups}")
    return " ".join(parts)


def conv_label(p: Conv2dParams, same_size_padding: bool) -> str:
    extra = [str(p.out)]
    if p.stride != (1, 1):
        extra.append(f"stride {fmt_pair(p.stride)}")
    if p.padding == (0, 0) and p.kernel != (1, 1):
        extra.append("V")
    elif not same_size_padding and p.padding != (0, 0):
        extra.append(f"pad {fmt_pair(p.padding)}")
    return f"{p.kernel[0]}×{p.kernel[1]} conv ({', '.join(extra)})"


def _same(p: Conv2dParams) -> bool:
    return all(2 * p.padding[i] == p.dilation[i] * (p.kernel[i] - 1) for i in (0, 1))


@register
class Conv2d(Op):
    name = "conv2d"
    channels = "out"
    doc = (
        "torch.nn.Conv2d alone; input channels are inferred. `dw` (or `groups=in`) makes it depthwise: one "
        "group per input channel. Short form: conv2d OUT KxK [sS] [pP|pH,W] [dD] [gG|dw] [no_bias]"
    )
    kind = "conv"
    Params = Conv2dParams
    positional = ("out",)
    grid = "kernel"
    flags = {"bias": ("bias", True), "no_bias": ("bias", False), "dw": ("groups", "in")}
    stateful = True
    fresh_output = True
    saved_for_backward = ("in", "w")

    def infer(self, p: Conv2dParams, inputs: list[Shape]) -> Shape:
        return conv_shape(p, inputs[0])

    def param_count(self, p: Conv2dParams, inputs: list[Shape], out: Shape) -> int:
        return conv_weights(p, inputs[0].channels) + (p.out if p.bias else 0)

    def macs(self, p: Conv2dParams, inputs: list[Shape], out: Shape, h: int, w: int) -> int:
        assert out.height is not None and out.width is not None
        return conv_weights(p, inputs[0].channels) * out.height(h) * out.width(w)

    def macs_formula(self, p: Conv2dParams, inputs: list[Shape], out: Shape) -> str:
        assert out.height is not None and out.width is not None
        return f"{conv_weights(p, inputs[0].channels)}·{factor(out.height.formula())}·{factor(out.width.formula())}"

    def module(self, p: Conv2dParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        cin = inputs[0].channels
        return nn.Conv2d(cin, p.out, p.kernel, p.stride, p.padding, p.dilation, groups_of(p, cin), p.bias, device=device)

    def short(self, p: Conv2dParams) -> str:
        return conv_short("conv2d", p) + ("" if p.bias else " no_bias")

    def label(self, p: Conv2dParams) -> str:
        return conv_label(p, _same(p))


class ConvParams(Conv2dParams):
    bias: bool = False
    bn: bool = True
    eps: Eps = 1e-5
    momentum: float = 0.1
    act: Activation = "relu"


@register
class Conv(Op):
    name = "conv"
    channels = "out"
    doc = (
        "Composite Conv2d → BatchNorm2d → activation, with children `conv` and `bn` (timm's ConvNormAct, "
        "torchvision's BasicConv2d). Short form: conv OUT KxK [sS] [pP|pH,W] [dD] [gG|dw] [bias] [no_bn] "
        "[eps=E] [act=relu|none|...]"
    )
    kind = "conv"
    Params = ConvParams
    positional = ("out",)
    grid = "kernel"
    flags = {
        "bias": ("bias", True),
        "no_bias": ("bias", False),
        "no_bn": ("bn", False),
        "linear": ("act", "none"),
        "dw": ("groups", "in"),
    }

    def expand(self, p: ConvParams) -> list[tuple[str, str, dict[str, Any]]]:
        conv = {k: getattr(p, k) for k in Conv2dParams.model_fields}
        chain: list[tuple[str, str, dict[str, Any]]] = [("conv", "conv2d", conv)]
        if p.bn:
            chain.append(("bn", "bn", {"eps": p.eps, "momentum": p.momentum}))
        if p.act != "none":
            chain.append(("act", p.act, {}))
        return chain

    def infer(self, p: ConvParams, inputs: list[Shape]) -> Shape:  # used only for documentation
        return conv_shape(p, inputs[0])

    def short(self, p: ConvParams) -> str:
        s = conv_short("conv", p)
        if p.bias:
            s += " bias"
        if not p.bn:
            s += " no_bn"
        if p.act != "relu":
            s += f" act={p.act}"
        return s

    def label(self, p: ConvParams) -> str:
        return conv_label(p, _same(p))
