"""Classifier-head and regularisation ops: linear, dropout, drop_path, flatten, identity, scale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from archspec.ops._types import Channels, Probability, TensorFloat
from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, Unreadable, register
from archspec.symbolic import Shape, factor


class LinearParams(OpParams):
    out: Channels
    bias: bool = True
    per_pixel: bool = Field(
        False,
        description="on a C×H×W map, apply the layer to each pixel's channels (ConvNeXt's MLP); without it a map is an error",
    )


def _features(x: Shape, p: LinearParams) -> int:
    if x.is_map and not p.per_pixel:
        raise OpShapeError(
            f"needs a vector, got a C×H×W feature map ({x.formula()})",
            hint="put global_avgpool, or flatten after a fixed-size pool, before it; or write per_pixel to apply "
            "it to each pixel's channels",
        )
    return x.channels


@register
class Linear(Op):
    name = "linear"
    channels = "out"
    doc = (
        "torch.nn.Linear on a vector; input features are inferred. With `per_pixel`, on a C×H×W map it "
        "acts on each pixel's C channels (torchvision's ConvNeXt block: its weight is [OUT, C], not a "
        "1×1 conv's [OUT, C, 1, 1]), giving OUT×H×W. Short form: linear OUT [no_bias] [per_pixel]"
    )
    kind = "linear"
    Params = LinearParams
    positional = ("out",)
    flags = {"bias": ("bias", True), "no_bias": ("bias", False)}
    stateful = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    channels_last_on_maps = True
    # on a vector, or on a map's channels between x.permute(0, 2, 3, 1) and back: per_pixel (the converter)
    readers = (
        Reader("torch.nn.Linear", structural="last_axis"),
        Reader("timm.layers.linear.Linear", structural="last_axis"),  # nn.Linear whose forward reads its own weight
    )

    def read(self, call: Call) -> dict[str, Any]:
        return {"out": int(call.get("out_features")), "bias": call.get("bias") is not None}

    def infer(self, p: LinearParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        _features(x, p)
        return Shape(p.out, x.height, x.width) if x.is_map else Shape(p.out)

    def param_count(self, p: LinearParams, inputs: list[Shape], out: Shape) -> int:
        return inputs[0].channels * p.out + (p.out if p.bias else 0)

    def macs(self, p: LinearParams, inputs: list[Shape], out: Shape, h: int, w: int) -> int:
        per_pixel = inputs[0].channels * p.out
        if out.height is None or out.width is None:
            return per_pixel
        return per_pixel * out.height(h) * out.width(w)

    def macs_formula(self, p: LinearParams, inputs: list[Shape], out: Shape) -> str:
        per_pixel = str(inputs[0].channels * p.out)
        if out.height is None or out.width is None:
            return per_pixel
        return f"{per_pixel}·{factor(out.height.formula())}·{factor(out.width.formula())}"

    def module(self, p: LinearParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        return nn.Linear(inputs[0].channels, p.out, bias=p.bias, device=device)

    def label(self, p: LinearParams) -> str:
        return f"FC {p.out}" + (" per pixel" if p.per_pixel else "")


class DropoutParams(OpParams):
    p: Probability = Field(0.5, description="probability of zeroing an element (not the keep probability)")
    channelwise: bool = Field(
        False,
        description="the flag channelwise: zero whole channels of a C×H×W map, each sample's own (torch's nn.Dropout2d, "
        "Tompson et al.'s SpatialDropout); P is then the probability of zeroing a channel",
    )


@register
class Dropout(Op):
    name = "dropout"
    doc = (
        "Dropout with drop probability P (keep probability 0.8 is `dropout 0.2`), active in training mode "
        "only: each element zeroed with probability P, the others scaled by 1/(1 − P); with `channelwise`, "
        "each channel of each sample's C×H×W map zeroed whole instead (torch's `nn.Dropout2d`; a vector is an error). "
        "Always an `nn.Dropout` (`nn.Dropout2d`) module, so it follows `train()`/`eval()`; it holds no state, and where "
        "another module (a layer, a dropout, an `interpolate`) already has its path it takes a free one (`0_2`). "
        "Short form: dropout P [channelwise]"
    )
    kind = "misc"
    Params = DropoutParams
    keeps_shape = True
    positional = ("p",)
    train_module = True
    saved_for_backward = ("mask",)
    readers = (
        Reader("torch.nn.Dropout"),
        Reader("torch.nn.functional.dropout", args=("p", "training", "inplace")),
        Reader("torch.nn.Dropout2d", sets=(("channelwise", True),)),
        Reader("torch.nn.functional.dropout2d", args=("p", "training", "inplace"), sets=(("channelwise", True),)),
    )

    def read(self, call: Call) -> dict[str, Any] | None:
        p = float(call.get("p", 0.5))
        # nn.Dropout(0.0) (timm's head.drop at drop_rate=0) is the identity in training mode too: no op,
        # as a spec written by hand leaves it out
        return None if p == 0.0 else {"p": p}

    def infer(self, p: DropoutParams, inputs: list[Shape]) -> Shape:
        if p.channelwise and not inputs[0].is_map:
            raise OpShapeError(
                f"channelwise dropout zeroes whole channels of a C×H×W map, got a vector of {inputs[0].channels}",
                hint="write it before the pooling, or drop single values of a vector with dropout P",
            )
        return inputs[0]

    def train_module_of(self, p: DropoutParams) -> Any:
        import torch.nn as nn

        return nn.Dropout2d(p.p) if p.channelwise else nn.Dropout(p.p)

    def label(self, p: DropoutParams) -> str:
        return f"{'Dropout2d' if p.channelwise else 'Dropout'} ({p.p:g})"


class DropPathParams(OpParams):
    p: Probability = Field(description="probability of dropping a sample's branch (not the survival probability)")


@register
class DropPath(Op):
    name = "drop_path"
    doc = (
        "Stochastic depth (Huang et al., arXiv 1603.09382), per sample: in training mode each sample's "
        "input is zeroed with probability P, and kept, scaled by 1/(1 − P), otherwise; the identity in eval "
        "mode. Written as the last op of a residual's body, it drops that sample's whole branch (EfficientNet, "
        'ConvNeXt). It draws its random numbers as torchvision\'s `StochasticDepth(P, "row")` does: one '
        "N×1×1×1 Bernoulli draw per call, none when P is 0 or in eval mode. A module that follows "
        "`train()`/`eval()`, named by its path like dropout (a standalone file defines its small `DropPath` "
        "class); it holds no state. Zero MACs. "
        "Short form: drop_path P"
    )
    kind = "misc"
    Params = DropPathParams
    keeps_shape = True
    positional = ("p",)
    train_module = True
    # not fresh_output: in eval mode its output is its input (the residual sum must not overwrite it)
    saved_for_backward = ()  # autograd keeps the N×1×1×1 mask only
    readers = (Reader("archspec.runtime.DropPath"), Reader("torchvision.ops.StochasticDepth"))

    def read(self, call: Call) -> dict[str, Any]:
        if call.get("mode", "row") != "row":  # torchvision's "batch" mode draws once for the whole batch
            raise Unreadable(f"stochastic depth in {call.get('mode')!r} mode; archspec's drop_path draws per sample")
        return {"p": float(call.get("p"))}

    def infer(self, p: DropPathParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def train_module_of(self, p: DropPathParams) -> Any:
        from archspec.runtime import DropPath

        return DropPath(p.p)

    def label(self, p: DropPathParams) -> str:
        return f"DropPath ({p.p:g})"


@register
class Flatten(Op):
    name = "flatten"
    layer = "Flatten"
    doc = (
        "Flatten a C×H×W map into a vector of C·H·W. When H and W depend on the input size, the length "
        "is fixed at the spec's input size and the network accepts only input sizes that give the same H×W "
        "(a range reported by check, e.g. the paper's GoogLeNet head: avgpool 7x7, flatten, linear)."
    )
    kind = "misc"
    view = True
    saved_for_backward = ()
    readers = (
        Reader("torch.nn.Flatten", structural="flatten"),
        Reader("torch.flatten", args=("start_dim", "end_dim"), structural="flatten"),
        Reader("Tensor.flatten", args=("start_dim", "end_dim"), structural="flatten"),
        Reader("Tensor.view", structural="view"),  # x.view(x.size(0), -1)
        Reader("Tensor.reshape", structural="view"),
    )

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if not x.is_map or x.height is None or x.width is None:
            return x
        if x.height.is_const and x.width.is_const:
            return Shape(x.channels * x.height(0) * x.width(0))
        rh, rw = x.height.ref, x.width.ref
        if rh is None or rw is None:
            raise OpShapeError(
                f"flatten of a map whose size depends on the input ({x.formula()}) with no input size to fix it at",
                hint="pool to a fixed size first (global_avgpool, or adaptive_avgpool HxW)",
            )
        h, w = x.height(rh), x.width(rw)
        if h < 1 or w < 1:
            raise OpShapeError(
                f"flatten of an empty map ({x.channels}×{h}×{w}) at input size {rh}×{rw}",
                code="input-too-small",
                hint="raise input.size",
            )
        return Shape(x.channels * h * w, flat=(x.height, x.width))

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.flatten, {"start_dim": 1}


@register
class Identity(Op):
    name = "identity"
    doc = "Passes its input through unchanged (a no-op placeholder)."
    passthrough = True
    view = True
    saved_for_backward = ()
    readers = (
        Reader("torch.nn.Identity", structural="passthrough"),
        Reader("Tensor.contiguous", structural="passthrough"),
        Reader("archspec.runtime.check_input", structural="passthrough"),  # the input guard of a network archspec built
        # a map's channels moved last and back (ConvNeXt, around its per-pixel LayerNorm and MLP): the
        # converter follows the layout, and reads the ops between as acting on the channels
        Reader("torch.permute", args=("dims",), structural="permute"),
        Reader("Tensor.permute", args=("dims",), structural="permute"),
        Reader("torchvision.ops.misc.Permute", structural="permute"),
    )

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        return inputs[0]


class ScaleParams(OpParams):
    factor: TensorFloat = Field(description="the constant every value is multiplied by")


@register
class Scale(Op):
    name = "scale"
    doc = (
        "Multiplies its input by a constant (`x * C`): NF-ResNets' β before a block and α on its residual branch "
        "(arXiv 2101.08692), a fixed rescaling. No weights, no MACs (fvcore counts none for a product with a "
        "number). Short form: scale C"
    )
    Params = ScaleParams
    positional = ("factor",)
    fresh_output = True
    saved_for_backward = ()
    not_imported = (
        "torch's `x * number` is read by the importer's structural `mul` form: a residual's scale where it is one, "
        "else this op (importer/structure.py)"
    )

    def infer(self, p: ScaleParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def function(self, p: ScaleParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return torch.mul, {"other": p.factor}

    def label(self, p: ScaleParams) -> str:
        return f"× {p.factor:g}"
