"""Normalisation: BatchNorm (2d over maps, 1d over vectors), LayerNorm over channels, GroupNorm, local response
normalisation, ConvNeXt V2's global response normalisation; and the learned per-channel layer scale of ConvNeXt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field, model_validator

from archspec.ops._types import Eps, TensorFloat
from archspec.ops.registry import Call, Op, OpParams, OpShapeError, Reader, Unreadable, map_size, register
from archspec.symbolic import Shape


class BNParams(OpParams):
    eps: Eps = 1e-5
    momentum: float = Field(0.1, ge=0.0, le=1.0)
    affine: bool = True


@register
class BatchNorm(Op):
    name = "bn"
    doc = "BatchNorm over channels: BatchNorm2d on maps, BatchNorm1d on vectors. Short form: bn [eps=E] [momentum=M]"
    kind = "norm"
    Params = BNParams
    flags = {"no_affine": ("affine", False)}
    stateful = True
    constant_init = True
    fresh_output = True
    saved_for_backward = ("in", "stats")
    readers = (
        Reader("torch.nn.BatchNorm2d"),
        Reader("torch.nn.BatchNorm1d"),
        Reader("timm.layers.norm_act.BatchNormAct2d", structural="norm_act"),  # BatchNorm then its own activation
    )

    def read(self, call: Call) -> dict[str, Any]:
        if not call.get("track_running_stats", True) or call.get("momentum", 0.1) is None:
            raise Unreadable("BatchNorm without running statistics (or with cumulative momentum)")
        return {
            "eps": float(call.get("eps", 1e-5)),
            "momentum": float(call.get("momentum", 0.1)),
            "affine": bool(call.get("affine", True)),
        }

    def infer(self, p: BNParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def param_count(self, p: BNParams, inputs: list[Shape], out: Shape) -> int:
        return 2 * out.channels if p.affine else 0

    def module(self, p: BNParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        cls = nn.BatchNorm2d if out.is_map else nn.BatchNorm1d
        return cls(out.channels, eps=p.eps, momentum=p.momentum, affine=p.affine, device=device)

    def label(self, p: BNParams) -> str:
        return "BatchNorm"


class FrozenBNParams(OpParams):
    eps: Eps = 1e-5


@register
class FrozenBatchNorm(Op):
    name = "frozen_bn"
    doc = (
        "BatchNorm with fixed statistics and affine, in training mode too (torchvision's FrozenBatchNorm2d, "
        "the norm of its detection backbones: `resnet_fpn_backbone`): γ, β, mean and variance are buffers, "
        "so it has no parameters and no `num_batches_tracked`. Maps only. Short form: frozen_bn [eps=E]"
    )
    kind = "norm"
    Params = FrozenBNParams
    stateful = True
    fresh_output = True
    saved_for_backward = ()  # x · scale + shift with constant buffers: autograd keeps the scale only
    readers = (Reader("torchvision.ops.misc.FrozenBatchNorm2d"), Reader("archspec.runtime.FrozenBatchNorm2d"))

    def read(self, call: Call) -> dict[str, Any]:
        return {"eps": float(call.get("eps", 1e-5))}

    def infer(self, p: FrozenBNParams, inputs: list[Shape]) -> Shape:
        map_size(inputs[0])
        return inputs[0]

    def param_count(self, p: FrozenBNParams, inputs: list[Shape], out: Shape) -> int:
        return 0  # four buffers, no parameters

    def module(self, p: FrozenBNParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        from archspec.runtime import FrozenBatchNorm2d

        return FrozenBatchNorm2d(out.channels, eps=p.eps, device=device)

    def label(self, p: FrozenBNParams) -> str:
        return "FrozenBatchNorm"


class GRNParams(OpParams):
    eps: Eps = 1e-6


@register
class GlobalResponseNorm(Op):
    name = "grn"
    doc = (
        "Global response normalisation (ConvNeXt V2, arXiv 2301.00808): each channel's L2 norm over H×W, "
        "divided by the mean of those norms over the channels plus EPS, scales the map, and the result is "
        "x + β + γ · (x · that), with a learned γ and β of C each (`weight` and `bias` at the op's path, "
        "as timm's `GlobalResponseNorm` names them) starting at zero. Maps only. Short form: grn [eps=E]"
    )
    kind = "norm"
    Params = GRNParams
    stateful = True
    constant_init = True
    fresh_output = True
    saved_for_backward = ("in", "w")  # x and γ (autograd also keeps x · the scale: not counted)
    readers = (Reader("timm.layers.grn.GlobalResponseNorm"), Reader("archspec.runtime.GlobalResponseNorm"))

    def read(self, call: Call) -> dict[str, Any]:
        if call.get("channel_dim", 1) != 1:
            raise Unreadable("GlobalResponseNorm over channels-last (N×H×W×C) tensors; archspec's reads N×C×H×W maps")
        return {"eps": float(call.get("eps", 1e-6))}

    def infer(self, p: GRNParams, inputs: list[Shape]) -> Shape:
        map_size(inputs[0])
        return inputs[0]

    def param_count(self, p: GRNParams, inputs: list[Shape], out: Shape) -> int:
        return 2 * out.channels

    def module(self, p: GRNParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        from archspec.runtime import GlobalResponseNorm as Layer

        return Layer(out.channels, eps=p.eps, device=device)

    def label(self, p: GRNParams) -> str:
        return "GRN"


class LRNParams(OpParams):
    size: int = Field(5, ge=1, le=64)
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@register
class LRN(Op):
    name = "lrn"
    layer = "LocalResponseNorm"
    doc = (
        "Local response normalisation across channels (torch local_response_norm). "
        "Short form: lrn [SIZE] [alpha=A] [beta=B] [k=K]"
    )
    kind = "norm"
    saved_for_backward = ("in", "lrn")
    Params = LRNParams
    positional = ("size",)
    readers = (
        Reader("torch.nn.LocalResponseNorm"),
        Reader("torch.nn.functional.local_response_norm", args=("size", "alpha", "beta", "k")),
    )

    def read(self, call: Call) -> dict[str, Any]:
        return {
            "size": int(call.get("size")),
            "alpha": float(call.get("alpha", 1e-4)),
            "beta": float(call.get("beta", 0.75)),
            "k": float(call.get("k", 1.0)),
        }

    def infer(self, p: LRNParams, inputs: list[Shape]) -> Shape:
        map_size(inputs[0])
        return inputs[0]

    def function(self, p: LRNParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.local_response_norm, {"size": p.size, "alpha": p.alpha, "beta": p.beta, "k": p.k}

    def label(self, p: LRNParams) -> str:
        return "LocalRespNorm"


class LayerNormParams(OpParams):
    eps: Eps = 1e-5
    affine: bool = True


@register
class LayerNorm(Op):
    name = "layer_norm"
    doc = (
        "LayerNorm over channels: each pixel of a C×H×W map (ConvNeXt's LayerNorm2d), or a vector, "
        "normalised over its C values, then scaled and shifted by a learned weight and bias of C "
        "(`nn.LayerNorm(C)`; `no_affine`: none). Short form: layer_norm [eps=E] [no_affine]"
    )
    kind = "norm"
    Params = LayerNormParams
    flags = {"no_affine": ("affine", False)}
    stateful = True
    constant_init = True
    fresh_output = True
    channels_last_on_maps = True
    saved_for_backward = ("in", "ln")
    readers = (
        # over the last axis: a vector's, or a map's channels between x.permute(0, 2, 3, 1) and back (the
        # converter follows the permutes; over a map's width it is refused)
        Reader("torch.nn.LayerNorm", structural="last_axis"),
        Reader("timm.layers.norm.LayerNorm", structural="last_axis"),  # nn.LayerNorm calling F.layer_norm itself
        Reader("torchvision.models.convnext.LayerNorm2d"),  # over a map's channels: permute, layer_norm, permute
        Reader("timm.layers.norm.LayerNorm2d"),
    )

    def read(self, call: Call) -> dict[str, Any]:
        shape = call.get("normalized_shape")
        if not isinstance(shape, (tuple, list)) or len(shape) != 1:
            raise Unreadable(f"LayerNorm over {shape!r}; archspec's normalises one axis, the channels")
        return {"eps": float(call.get("eps", 1e-5)), "affine": bool(call.get("elementwise_affine", True))}

    def infer(self, p: LayerNormParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def param_count(self, p: LayerNormParams, inputs: list[Shape], out: Shape) -> int:
        return 2 * out.channels if p.affine else 0

    def module(self, p: LayerNormParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        return nn.LayerNorm(out.channels, eps=p.eps, elementwise_affine=p.affine, device=device)

    def label(self, p: LayerNormParams) -> str:
        return "LayerNorm"


class LayerScaleParams(OpParams):
    init: TensorFloat = Field(1e-6, description="the value every channel's scale starts at (ConvNeXt: 1e-6)")
    flat: bool = Field(
        False, description="store γ as a vector of C on a map too (timm's ConvNeXt `gamma`), not C×1×1 (torchvision's)"
    )
    scalar: bool = Field(
        False, description="one γ for every channel, a 0-dimensional tensor (timm's NF-Net `skipinit_gain`, shape [])"
    )

    @model_validator(mode="after")
    def _one_shape(self) -> LayerScaleParams:
        if self.flat and self.scalar:
            raise ValueError("flat and scalar are two shapes of γ: write one")
        return self


@register
class LayerScale(Op):
    name = "layer_scale"
    doc = (
        "Learned per-channel scale (ConvNeXt's layer scale, arXiv 2201.03545): x · γ, γ one value per channel "
        "starting at INIT. γ is one tensor at the op's path, of shape C×1×1 on a map (C on a vector), an "
        "`nn.Parameter` of the enclosing module and not a module of its own, so `layer_scale: layer_scale 1e-6` "
        "inside torchvision's CNBlock makes its state_dict key `features.1.0.layer_scale`; `flat` stores it as a "
        "vector of C on a map too, as timm's ConvNeXt stores `gamma`; `scalar` makes γ one number for every "
        "channel, a 0-dimensional tensor (timm's NF-Net `skipinit_gain`: `layer_scale 0 scalar`). Counts no MACs "
        "(as the residual sum). Short form: layer_scale [INIT] [flat|scalar]"
    )
    kind = "misc"
    Params = LayerScaleParams
    positional = ("init",)
    stateful = True
    parameter_only = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    # a tensor attribute times a map (torchvision's `self.layer_scale * x`, timm's `x.mul(gamma.reshape(1, -1, 1, 1))`)
    # is read by the multiply's reader (merge.py's mul, importer/forms.py's read_mul) as this op at the attribute's
    # path; archspec's own `flat` form, scale_channels(x, gamma), by this reader
    readers = (Reader("archspec.runtime.scale_channels", structural="scale_channels"),)

    def infer(self, p: LayerScaleParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def param_count(self, p: LayerScaleParams, inputs: list[Shape], out: Shape) -> int:
        return 1 if p.scalar else out.channels

    def parameter(self, p: LayerScaleParams, inputs: list[Shape], out: Shape) -> tuple[tuple[int, ...], float]:
        if p.scalar:
            return (), p.init
        return ((out.channels, 1, 1) if out.is_map and not p.flat else (out.channels,)), p.init

    def function(self, p: LayerScaleParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        if p.flat:
            from archspec.runtime import scale_channels

            return scale_channels, {}
        import torch

        return torch.mul, {}

    def label(self, p: LayerScaleParams) -> str:
        return f"Layer scale ({p.init:g})"


class GroupNormParams(OpParams):
    groups: int = Field(ge=1, le=1 << 16, strict=True, description="channel groups normalised together; must divide C")
    eps: Eps = 1e-5
    affine: bool = True


@register
class GroupNorm(Op):
    name = "group_norm"
    doc = (
        "Group normalisation (Wu & He, arXiv 1803.08494): the C channels in GROUPS groups, each group of each "
        "sample normalised over its channels and pixels, then scaled and shifted per channel by a learned weight "
        "and bias of C (`nn.GroupNorm(GROUPS, C)`; BiT's ResNetV2 uses 32 groups). Short form: group_norm GROUPS "
        "[eps=E] [no_affine]"
    )
    kind = "norm"
    Params = GroupNormParams
    positional = ("groups",)
    readers = (
        Reader("torch.nn.GroupNorm"),
        # timm's nn.GroupNorm subclasses, whose forward reads their own weight and bias: GroupNorm (ResNet-GN),
        # GroupNorm1 (one group: PoolFormer's norm over channels and pixels)
        Reader("timm.layers.norm.GroupNorm"),
        Reader("timm.layers.norm.GroupNorm1"),
        Reader("timm.layers.norm_act.GroupNormAct", structural="norm_act"),  # GroupNorm then its own activation
    )
    flags = {"no_affine": ("affine", False)}
    stateful = True
    constant_init = True
    fresh_output = True
    channels_first_input = True
    saved_for_backward = ("in", "ln")

    def infer(self, p: GroupNormParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if x.channels % p.groups:
            raise OpShapeError(
                f"group_norm {p.groups} needs channels divisible by {p.groups}, got {x.channels}",
                hint="pick a number of groups that divides the channels",
            )
        return x

    def param_count(self, p: GroupNormParams, inputs: list[Shape], out: Shape) -> int:
        return 2 * out.channels if p.affine else 0

    def read(self, call: Call) -> dict[str, Any]:
        return {
            "groups": int(call.get("num_groups")),
            "eps": float(call.get("eps", 1e-5)),
            "affine": bool(call.get("affine", True)),
        }

    def module(self, p: GroupNormParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        return nn.GroupNorm(p.groups, out.channels, eps=p.eps, affine=p.affine, device=device)

    def label(self, p: GroupNormParams) -> str:
        return f"GroupNorm ({p.groups})"
