"""Normalisation: BatchNorm (2d over maps, 1d over vectors) and local response normalisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from archspec.ops._types import Eps
from archspec.ops.registry import Op, OpParams, OpShapeError, register
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
    fresh_output = True
    saved_for_backward = ("in", "stats")

    def infer(self, p: BNParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def param_count(self, p: BNParams, inputs: list[Shape], out: Shape) -> int:
        return 2 * out.channels if p.affine else 0

    def module(self, p: BNParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        import torch.nn as nn

        cls = nn.BatchNorm2d if out.is_map else nn.BatchNorm1d
        return cls(out.channels, eps=p.eps, momentum=p.momentum, affine=p.affine, device=device)

    def short(self, p: BNParams) -> str:
        return "bn" + (f" eps={p.eps:g}" if p.eps != 1e-5 else "")

    def label(self, p: BNParams) -> str:
        return "BatchNorm"


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

    def infer(self, p: LRNParams, inputs: list[Shape]) -> Shape:
        if not inputs[0].is_map:
            raise OpShapeError("needs a C×H×W feature map")
        return inputs[0]

    def function(self, p: LRNParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.local_response_norm, {"size": p.size, "alpha": p.alpha, "beta": p.beta, "k": p.k}

    def short(self, p: LRNParams) -> str:
        return f"lrn {p.size}"

    def label(self, p: LRNParams) -> str:
        return "LocalRespNorm"
