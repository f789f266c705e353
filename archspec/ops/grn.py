"""``grn``: global response normalisation (ConvNeXt-V2, Woo et al., arXiv 2301.00808, Algorithm 1): each
channel's L2 norm over the map, divided by the mean of those norms over the channels, scales the map
through a learned weight and bias of C, added to the input."""

from __future__ import annotations

from typing import Any

from archspec.ops._types import Eps
from archspec.ops.registry import Op, OpParams, OpShapeError, register
from archspec.symbolic import Shape


class GrnParams(OpParams):
    eps: Eps = 1e-6


@register
class Grn(Op):
    name = "grn"
    doc = (
        "Global response normalisation (ConvNeXt-V2, arXiv 2301.00808, Algorithm 1) on a C×H×W map: g_c = ‖x_c‖₂ "
        "over H×W for each channel c, n_c = g_c / (mean of g over the C channels + eps), and the output is "
        "x + β + γ · (x · n), γ and β a learned weight and bias of C, both starting at 0 (so the op starts as "
        "the identity). Its tensors are `weight` and `bias` of shape [C] at its path, as timm's "
        "GlobalResponseNorm names them (`mlp.grn.weight`). Counts no MACs (as the norms). Short form: grn [eps=E]"
    )
    kind = "norm"
    Params = GrnParams
    stateful = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    not_imported = (
        "timm's GlobalResponseNorm decides its axes by its channels_last flag, which the importer does not read "
        "yet (docs/import.md, Not yet)"
    )

    def infer(self, p: GrnParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if not x.is_map:
            raise OpShapeError(
                f"needs a C×H×W map (it normalises each channel's norm over H×W), got a vector of {x.formula()}",
                hint="apply it before the global pool",
            )
        return x

    def param_count(self, p: GrnParams, inputs: list[Shape], out: Shape) -> int:
        return 2 * out.channels

    def module(self, p: GrnParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        from archspec.runtime import GlobalResponseNorm

        return GlobalResponseNorm(out.channels, eps=p.eps, device=device)

    def label(self, p: GrnParams) -> str:
        return "GRN"
