"""Element-wise activations, one registry entry each (those without parameters declared in a table;
leaky_relu, which takes its slope, after it)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pydantic import Field

from archspec.ops.registry import Op, OpParams, register
from archspec.symbolic import Shape


class _Activation(Op):
    kind = "act"
    torch_function: str = ""  # "module.function", imported only when a model is built

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        module, _, name = self.torch_function.rpartition(".")
        return getattr(importlib.import_module(module), name), {}

    def label(self, p: OpParams) -> str:
        return {"relu": "ReLU", "gelu": "GELU"}.get(self.name, self.name.capitalize())

    def in_place(self, p: OpParams) -> Callable[..., Any] | None:
        if self.in_place_input(p) is None:
            return None
        import torch

        return torch.relu_

    def in_place_input(self, p: OpParams) -> int | None:
        return 0 if self.name == "relu" else None  # the one activation whose in-place form the references use


_ACTIVATIONS = {  # op name: (torch function, what it computes, the torch.nn layer the standalone file may write)
    "relu": ("torch.relu", "max(x, 0)", None),
    "relu6": ("torch.nn.functional.relu6", "min(max(x, 0), 6)", None),
    "gelu": ("torch.nn.functional.gelu", "Gaussian error linear unit", None),
    "silu": ("torch.nn.functional.silu", "x * sigmoid(x) (swish)", None),
    "sigmoid": ("torch.sigmoid", "logistic sigmoid", "Sigmoid"),
    "tanh": ("torch.tanh", "hyperbolic tangent", "Tanh"),
    "hardswish": ("torch.nn.functional.hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)", "Hardswish"),
    "hardsigmoid": ("torch.nn.functional.hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3's gates)", "Hardsigmoid"),
}

for _name, (_function, _doc, _layer) in _ACTIVATIONS.items():
    # sigmoid, tanh and ReLU keep their output for backward; the others their input
    saves = ("out",) if _name in ("relu", "sigmoid", "tanh") else ("in",)
    register(
        type(
            _name.capitalize(),
            (_Activation,),
            {"name": _name, "torch_function": _function, "doc": _doc, "saved_for_backward": saves, "layer": _layer},
        )
    )


class LeakyReLUParams(OpParams):
    slope: float = Field(0.01, ge=0.0, le=1.0, description="the slope for negative inputs (torch's negative_slope)")


@register
class LeakyReLU(Op):
    name = "leaky_relu"
    kind = "act"
    layer = "LeakyReLU"
    doc = (
        "max(x, 0) + slope · min(x, 0) (torch leaky_relu; CSPNet and Darknet use slope 0.01, YOLO's 0.1). "
        "Short form: leaky_relu [SLOPE]"
    )
    Params = LeakyReLUParams
    positional = ("slope",)

    def infer(self, p: LeakyReLUParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def function(self, p: LeakyReLUParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.leaky_relu, {"negative_slope": p.slope}

    def short(self, p: LeakyReLUParams) -> str:
        return "leaky_relu" + (f" {p.slope:g}" if p.slope != 0.01 else "")

    def label(self, p: LeakyReLUParams) -> str:
        return f"LeakyReLU ({p.slope:g})"
