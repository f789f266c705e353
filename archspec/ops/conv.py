"""Convolutions: the primitive ``conv2d``, the weight-standardised ``std_conv2d`` and the composite
``conv`` (Conv2d → BatchNorm → act). Each takes a padding in pixels or ``same`` (TensorFlow's)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BeforeValidator, Field, ValidationError, WithJsonSchema, model_validator

from archspec.errors import did_you_mean
from archspec.ops._types import Channels, Eps, NonNegPair, PosPair
from archspec.ops.act import Elu, LeakyReLU
from archspec.ops.prelu import PReLU
from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, Unreadable, fmt_pair, map_size, pair, register
from archspec.ops.write import NUMBER as _NUMBER
from archspec.ops.write import number_text
from archspec.symbolic import Shape, Window, factor

Activation = Literal[
    "relu",
    "relu6",
    "gelu",
    "silu",
    "sigmoid",
    "tanh",
    "hardswish",
    "hardsigmoid",
    "leaky_relu",
    "elu",
    "mish",
    "prelu",
    "none",
]
# The activations whose one number `act=` gives in parentheses (Op.number): act=leaky_relu(0.1) ends a conv in
# leaky_relu with slope 0.1, as `leaky_relu 0.1` written after it would.
_NUMBERED_OPS: dict[str, type[Op]] = {op.name: op for op in (LeakyReLU, Elu, PReLU)}
NUMBERED: dict[str, str] = {name: str(op.number) for name, op in _NUMBERED_OPS.items()}
_ACT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?", re.DOTALL)
_FORMS = [f"{name}({number.upper()})" for name, number in NUMBERED.items()]  # leaky_relu(SLOPE), ...
_WITH_NUMBER = ", ".join(_FORMS[:-1]) + " and " + _FORMS[-1]


def _activation(value: Any) -> str:
    """`act=`'s value: an activation's name, or NAME(V) for one that takes a number (``NUMBERED``), its number
    checked by that op's own model; written canonically (the default number left out: leaky_relu(0.01) is
    leaky_relu; the number as short as it reads back: leaky_relu(.10) is leaky_relu(0.1))."""
    names = get_args(Activation)
    shown = " / ".join(names)
    if not isinstance(value, str):
        raise ValueError(f"must be an activation ({shown}), or one with its number: {_WITH_NUMBER}")
    m = _ACT.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not an activation: write its name ({shown}), or one with its number: {_WITH_NUMBER}")
    name, arg = m.group(1), m.group(2)
    if name not in names:
        hint = did_you_mean(name, names)
        raise ValueError(f"unknown activation {name!r}" + (f" ({hint})" if hint else f": write one of {shown}"))
    if arg is None:
        return name
    number = NUMBERED.get(name)
    if number is None:
        raise ValueError(f"{name} takes no number: write act={name}; only {_WITH_NUMBER} take one in parentheses")
    if not re.fullmatch(_NUMBER, arg.strip()):
        raise ValueError(f"{arg!r} in {value!r} is not a number: {name}'s {number} is written act={name}(0.1)")
    op = _NUMBERED_OPS[name]
    try:
        model = op.Params.model_validate({number: float(arg)})
    except ValidationError as e:
        raise ValueError(f"{name}'s {number} in {value!r}: {e.errors(include_url=False)[0]['msg']}") from None
    given = float(getattr(model, number))
    default = op.Params.model_fields[number].default
    return name if given == default else f"{name}({number_text(given)})"


def act_op(act: str) -> tuple[str, dict[str, float]]:
    """A validated `act=` value as the activation op it ends the conv in: (``leaky_relu``, ``{"slope": 0.1}``)."""
    name, _, arg = act.partition("(")
    return (name, {NUMBERED[name]: float(arg[:-1])}) if arg else (name, {})


def act_text(name: str, params: dict[str, Any]) -> str | None:
    """The `act=` value that ends a conv in the activation ``name`` with ``params`` (as its op reads them back),
    the inverse of :func:`act_op`; None where `act=` cannot say it (prelu per_channel)."""
    if not params:
        return name
    number = NUMBERED.get(name)
    if number is None or set(params) != {number}:
        return None
    return _activation(f"{name}({number_text(float(params[number]))})")


_ACT_SCHEMA = {
    "anyOf": [
        {"enum": list(get_args(Activation))},
        {
            "type": "string",
            "title": " / ".join(_FORMS),
            "pattern": rf"^(?:{'|'.join(NUMBERED)})\({_NUMBER}\)$",
        },
    ]
}
ActivationText = Annotated[str, BeforeValidator(_activation), WithJsonSchema(_ACT_SCHEMA)]

Padding = Union[
    Literal["same"],
    Annotated[NonNegPair, Field(description="pixels added on each side")],
]
_PADDING_DOC = (
    "pixels of zeros on each side, or `same` (the flag same): TensorFlow's padding, output ceil(X / stride), "
    "the odd pixel at the bottom and right; fixed where it does not depend on the input size (stride 1 and "
    "an odd span), else computed at run time (timm's Conv2dSame)"
)


class Conv2dParams(OpParams):
    out: Channels
    kernel: PosPair = (1, 1)
    stride: PosPair = (1, 1)
    padding: Padding = Field((0, 0), description=_PADDING_DOC)
    dilation: PosPair = (1, 1)
    groups: Union[Channels, Literal["in"]] = Field(
        1, description="channel groups; 'in' (the flag dw) makes one group per input channel: a depthwise conv"
    )
    bias: bool = True


def groups_of(p: Conv2dParams, cin: int) -> int:
    """The number of groups, with 'in' (depthwise) resolved against the input channels."""
    return cin if p.groups == "in" else p.groups


def conv_shape(p: Conv2dParams, x: Shape) -> Shape:
    height, width = map_size(x, hint="convolutions come before flatten / global_avgpool")
    groups = groups_of(p, x.channels)
    if x.channels % groups or p.out % groups:
        what = "dw (one group per input channel)" if p.groups == "in" else f"groups={groups}"
        raise OpShapeError(f"{what} must divide both input channels ({x.channels}) and out ({p.out})")
    if p.padding == "same":  # ceil(X / s) whatever the kernel: floor((X - 1)/s) + 1, a 1-wide window of stride s
        return Shape(p.out, height.window(Window(1, p.stride[0])), width.window(Window(1, p.stride[1])))
    h = height.window(Window(p.kernel[0], p.stride[0], p.padding[0], p.dilation[0]))
    w = width.window(Window(p.kernel[1], p.stride[1], p.padding[1], p.dilation[1]))
    return Shape(p.out, h, w)


def static_padding(p: Conv2dParams) -> tuple[int, int] | None:
    """The pixels a conv pads on each side, when that does not depend on the input size: its own padding,
    or for `same` at stride 1 with an odd span d·(k − 1) + 1 half of the span less one; None for a `same`
    padding computed at run time (timm's rule, ``is_static_pad``)."""
    if p.padding != "same":
        return p.padding
    if p.stride != (1, 1) or any(p.dilation[i] * (p.kernel[i] - 1) % 2 for i in (0, 1)):
        return None
    return (p.dilation[0] * (p.kernel[0] - 1) // 2, p.dilation[1] * (p.kernel[1] - 1) // 2)


def conv_weights(p: Conv2dParams, cin: int) -> int:
    return p.out * (cin // groups_of(p, cin)) * p.kernel[0] * p.kernel[1]


def conv_label(p: Conv2dParams, same_size_padding: bool) -> str:
    extra = [str(p.out)]
    if p.stride != (1, 1):
        extra.append(f"stride {fmt_pair(p.stride)}")
    if p.padding == "same":
        extra.append("same")
    elif p.padding == (0, 0) and p.kernel != (1, 1):
        extra.append("V")
    elif not same_size_padding and p.padding != (0, 0):
        extra.append(f"pad {fmt_pair(p.padding)}")
    return f"{p.kernel[0]}×{p.kernel[1]} conv ({', '.join(extra)})"


def _same(p: Conv2dParams) -> bool:
    pad = p.padding
    return pad == "same" or all(2 * pad[i] == p.dilation[i] * (p.kernel[i] - 1) for i in (0, 1))


class _ConvRules(Op):
    """The shape, parameter and MAC rules every convolution shares (a registry entry each below)."""

    channels = "out"
    kind = "conv"
    positional = ("out",)
    grid = "kernel"
    stateful = True
    fresh_output = True

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


@register
class Conv2d(_ConvRules):
    name = "conv2d"
    doc = (
        "torch.nn.Conv2d alone; input channels are inferred. `dw` (or `groups=in`) makes it depthwise: one "
        "group per input channel. Short form: conv2d OUT KxK [sS] [pP|pH,W|same] [dD] [gG|dw] [no_bias]"
    )
    Params = Conv2dParams
    flags = {"bias": ("bias", True), "no_bias": ("bias", False), "dw": ("groups", "in"), "same": ("padding", "same")}
    saved_for_backward = ("in", "w")
    readers = (
        Reader("torch.nn.Conv2d"),
        Reader("timm.layers.conv2d_same.Conv2dSame", sets=(("padding", "same"),)),  # TensorFlow's padding, at run time
        Reader("archspec.runtime.Conv2dSame", sets=(("padding", "same"),)),  # the same, in a network archspec built
    )

    def read(self, call: Call) -> dict[str, Any]:
        return read_conv(call)

    def module(self, p: Conv2dParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        cin = inputs[0].channels
        pad = static_padding(p)
        if pad is None:
            from archspec.runtime import Conv2dSame

            return Conv2dSame(cin, p.out, p.kernel, p.stride, p.dilation, groups_of(p, cin), p.bias, device=device)
        return nn.Conv2d(cin, p.out, p.kernel, p.stride, pad, p.dilation, groups_of(p, cin), p.bias, device=device)

    def label(self, p: Conv2dParams) -> str:
        return conv_label(p, _same(p))


def read_conv(call: Call) -> dict[str, Any]:
    """An nn.Conv2d's fields (and its subclasses': timm's Conv2dSame, StdConv2d)."""
    if call.get("padding_mode", "zeros") != "zeros":
        raise Unreadable(f"Conv2d with padding_mode={call.get('padding_mode')!r}; archspec pads with zeros")
    kernel, dilation = pair(call.get("kernel_size")), pair(call.get("dilation", 1))
    padding = call.get("padding", 0)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        if any(t % 2 for t in total):
            raise Unreadable("Conv2d padding='same' with an even kernel pads unevenly")
        padding = (total[0] // 2, total[1] // 2)
    groups = int(call.get("groups", 1))
    return {
        "out": int(call.get("out_channels")),
        "kernel": kernel,
        "stride": pair(call.get("stride", 1)),
        "padding": pair(padding),
        "dilation": dilation,
        "groups": "in" if 1 < groups == call.get("in_channels") else groups,  # depthwise: `dw`
        "bias": call.get("bias") is not None,
    }


class StdConv2dParams(Conv2dParams):
    bias: bool = False
    eps: Eps = Field(1e-6, description="added to each filter's variance (timm's StdConv2d: 1e-6; BiT: 1e-8; NF-ResNets: 1e-5)")
    gain: bool = Field(
        False,
        description="the flag gain: timm's ScaledStdConv2d (NF-Nets): the standardised weights times a learned gain "
        "per output channel (state_dict key gain, out×1×1×1, starting at 1) and gamma / sqrt(fan_in)",
    )
    gamma: float = Field(
        1.0,
        gt=0.0,
        le=1e6,
        description="with gain: the fixed scale gamma / sqrt(fan_in) of the standardised weights (fan_in = in / groups "
        "· kh · kw); NF-Nets take the activation's gamma, 1.7139588594436646 for relu",
    )

    @model_validator(mode="after")
    def _gamma_needs_gain(self) -> StdConv2dParams:
        if self.gamma != 1.0 and not self.gain:
            raise ValueError("gamma scales a conv with a gain (timm's ScaledStdConv2d): write the flag gain too")
        return self


@register
class StdConv2d(_ConvRules):
    name = "std_conv2d"
    doc = (
        "A Conv2d whose weights are standardised before every use (Qiao et al., arXiv 1903.10520; BiT, "
        "arXiv 1912.11370): each output channel's filter, less its mean, over its standard deviation (biased, "
        "with `eps` added to the variance; a filter of one weight becomes 0), as timm's StdConv2d computes it; "
        "its parameters and state_dict keys "
        "are an nn.Conv2d's, and `same` pads as timm's StdConv2dSame. MACs are the convolution's (fvcore "
        "counts the standardisation as none). With `gain` it is timm's ScaledStdConv2d (NF-ResNets and NFNets, Brock "
        "et al., arXiv 2101.08692): the standardised weights are multiplied by a learned gain per output channel "
        "(`gain`, out×1×1×1, starting at 1) and by the fixed `gamma` / √fan_in. Short form: std_conv2d OUT KxK [sS] "
        "[pP|pH,W|same] [dD] [gG|dw] [bias] [eps=E] [gain [gamma=G]]"
    )
    Params = StdConv2dParams
    flags = {**Conv2d.flags, "gain": ("gain", True)}
    readers = (
        Reader("timm.layers.std_conv.StdConv2d"),
        Reader("timm.layers.std_conv.StdConv2dSame"),
        Reader("timm.layers.std_conv.ScaledStdConv2d"),
        Reader("timm.layers.std_conv.ScaledStdConv2dSame"),
        Reader("archspec.runtime.StdConv2d"),  # a network archspec built: its `same` and `gamma` are attributes
    )
    saved_for_backward = ("in", "w", "stats")

    def read(self, call: Call) -> dict[str, Any]:
        fields = {**read_conv(call), "eps": float(call.get("eps", 1e-6))}
        if call.get("gain") is not None:  # a scaled one: archspec's own layer keeps its gamma, timm's gamma / sqrt(fan_in)
            fan_in = int(call.get("in_channels")) // int(call.get("groups", 1)) * math.prod(pair(call.get("kernel_size")))
            gamma = call.get("gamma")
            if gamma is None:  # timm's, back from gamma / sqrt(fan_in) to 15 digits (1.7139588594436646: 1.71395885944366)
                gamma = float(f"{float(call.get('scale')) * math.sqrt(fan_in):.15g}")
            fields |= {"gain": True, "gamma": float(gamma), "bias": call.get("bias") is not None}
        if call.get("same_pad", False) or call.get("same", False) is True:  # StdConv2dSame's (or archspec's) at run time
            fields["padding"] = "same"
        return fields

    def module(self, p: StdConv2dParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        from archspec.runtime import StdConv2d as Layer

        cin = inputs[0].channels
        pad = static_padding(p)
        fixed = (0, 0) if pad is None else pad
        groups = groups_of(p, cin)
        return Layer(
            cin, p.out, p.kernel, p.stride, fixed, p.dilation, groups, p.bias, p.eps, pad is None, p.gain, p.gamma, device=device
        )

    def param_count(self, p: Conv2dParams, inputs: list[Shape], out: Shape) -> int:
        gain = p.out if isinstance(p, StdConv2dParams) and p.gain else 0
        return super().param_count(p, inputs, out) + gain

    def label(self, p: StdConv2dParams) -> str:
        return ("scaled WS " if p.gain else "WS ") + conv_label(p, _same(p))


class ConvParams(Conv2dParams):
    bias: bool = False
    bn: bool = True
    eps: Eps = 1e-5
    momentum: float = 0.1
    act: ActivationText = Field(
        "relu",
        description="the activation after the BatchNorm; leaky_relu(SLOPE), elu(ALPHA) and prelu(INIT) give it its "
        "number (act=leaky_relu(0.1): Darknet's and YOLO's slope; without one, each op's default)",
    )


@register
class Conv(Op):
    name = "conv"
    channels = "out"
    doc = (
        "Composite Conv2d → BatchNorm2d → activation, with children `conv` and `bn` (timm's ConvNormAct, "
        "torchvision's BasicConv2d). Short form: conv OUT KxK [sS] [pP|pH,W|same] [dD] [gG|dw] [bias] [no_bn] "
        "[eps=E] [act=relu|none|leaky_relu(SLOPE)|...]"
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
        "same": ("padding", "same"),
    }
    not_imported = (
        "made by the importer, not read: a Conv2d at X.conv, a BatchNorm at X.bn and an activation reading "
        "nothing else become one `conv` at X (archspec/importer/convert.py, fuse_composites)"
    )

    def expand(self, p: ConvParams) -> list[tuple[str, str, dict[str, Any]]]:
        conv = {k: getattr(p, k) for k in Conv2dParams.model_fields}
        chain: list[tuple[str, str, dict[str, Any]]] = [("conv", "conv2d", conv)]
        if p.bn:
            chain.append(("bn", "bn", {"eps": p.eps, "momentum": p.momentum}))
        if p.act != "none":
            chain.append(("act", *act_op(p.act)))
        return chain

    def infer(self, p: ConvParams, inputs: list[Shape]) -> Shape:  # used only for documentation
        return conv_shape(p, inputs[0])

    def label(self, p: ConvParams) -> str:
        return conv_label(p, _same(p))


class ConvTransposeParams(OpParams):
    out: Channels
    kernel: PosPair = (1, 1)
    stride: PosPair = (1, 1)
    padding: NonNegPair = Field((0, 0), description="torch's padding: d·(k − 1) − padding zeros added on each side")
    output_padding: NonNegPair = Field(
        (0, 0), description="pixels added to one side of the output (torch's output_padding; below stride or dilation)"
    )
    dilation: PosPair = (1, 1)
    groups: Channels = 1
    bias: bool = True

    @model_validator(mode="after")
    def _output_padding(self) -> ConvTransposeParams:
        for i in (0, 1):
            if self.output_padding[i] >= max(self.stride[i], self.dilation[i]):
                raise ValueError("output_padding must be smaller than either stride or dilation (as torch requires)")
        return self


# the op's pair fields and the nn.ConvTranspose2d attributes they are read from
_TRANSPOSED = {
    "kernel": "kernel_size",
    "stride": "stride",
    "padding": "padding",
    "output_padding": "output_padding",
    "dilation": "dilation",
}


def _transposed_weights(p: ConvTransposeParams, cin: int) -> int:
    return cin * (p.out // p.groups) * p.kernel[0] * p.kernel[1]


@register
class ConvTranspose(Op):
    name = "conv_transpose"
    channels = "out"
    kind = "conv"
    doc = (
        "torch.nn.ConvTranspose2d (an up-convolution): output (X − 1)·s − 2p + d·(k − 1) + output_padding + 1 on "
        "each axis; U-Net's 2×2 up-convolution is `conv_transpose C 2x2 s2` (2·X). Input channels are inferred; "
        "MACs are fvcore's (input pixels × the weights). Short form: conv_transpose OUT KxK [sS] [pP|pH,W] [dD] "
        "[gG] [output_padding=P] [no_bias]"
    )
    Params = ConvTransposeParams
    positional = ("out",)
    grid = "kernel"
    flags = {"bias": ("bias", True), "no_bias": ("bias", False)}
    stateful = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    readers = (Reader("torch.nn.ConvTranspose2d"),)

    def read(self, call: Call) -> dict[str, Any]:
        if call.get("padding_mode", "zeros") != "zeros":
            raise Unreadable(f"ConvTranspose2d with padding_mode={call.get('padding_mode')!r}; archspec pads with zeros")
        return {
            "out": int(call.get("out_channels")),
            **{k: pair(call.get(attr)) for k, attr in _TRANSPOSED.items()},
            "groups": int(call.get("groups", 1)),
            "bias": call.get("bias") is not None,
        }

    def infer(self, p: ConvTransposeParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        height, width = map_size(x)
        if x.channels % p.groups or p.out % p.groups:
            raise OpShapeError(f"groups={p.groups} must divide both input channels ({x.channels}) and out ({p.out})")
        dims = []
        for i, d in enumerate((height, width)):
            offset = -p.stride[i] - 2 * p.padding[i] + p.dilation[i] * (p.kernel[i] - 1) + p.output_padding[i] + 1
            dims.append(d.stretched(p.stride[i], offset))
        return Shape(p.out, dims[0], dims[1])

    def param_count(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape) -> int:
        return _transposed_weights(p, inputs[0].channels) + (p.out if p.bias else 0)

    def macs(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape, h: int, w: int) -> int:
        x = inputs[0]
        assert x.height is not None and x.width is not None
        return _transposed_weights(p, x.channels) * x.height(h) * x.width(w)

    def macs_formula(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape) -> str:
        x = inputs[0]
        assert x.height is not None and x.width is not None
        return f"{_transposed_weights(p, x.channels)}·{factor(x.height.formula())}·{factor(x.width.formula())}"

    def module(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        cin = inputs[0].channels
        return nn.ConvTranspose2d(
            cin, p.out, p.kernel, p.stride, p.padding, p.output_padding, p.groups, p.bias, p.dilation, device=device
        )

    def label(self, p: ConvTransposeParams) -> str:
        extra = [str(p.out)] + ([f"stride {fmt_pair(p.stride)}"] if p.stride != (1, 1) else [])
        return f"{p.kernel[0]}×{p.kernel[1]} up-conv ({', '.join(extra)})"
