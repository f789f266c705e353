"""Element-wise activations, one registry entry each (those without parameters declared in a table;
leaky_relu and elu, which take a parameter, after it)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from archspec.ops.registry import Call, Op, OpParams, Reader, Unreadable, register
from archspec.symbolic import Shape


class _Activation(Op):
    kind = "act"
    keeps_shape = True
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

    def read(self, call: Call) -> dict[str, Any]:
        if call.get("approximate", "none") != "none":
            raise Unreadable(f"{self.name} with approximate={call.get('approximate')!r}; archspec's {self.name} is exact")
        return {}


# op name: (torch function, what it computes, the torch.nn layer the standalone file may write,
#           the torch forms `archspec import` reads it from: modules, functions, Tensor methods)
_ACTIVATIONS: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "relu": (
        "torch.relu",
        "max(x, 0)",
        None,
        ("torch.nn.ReLU", "torch.relu", "torch.relu_", "torch.nn.functional.relu", "torch.nn.functional.relu_")
        + ("Tensor.relu", "Tensor.relu_"),
    ),
    "relu6": ("torch.nn.functional.relu6", "min(max(x, 0), 6)", None, ("torch.nn.ReLU6", "torch.nn.functional.relu6")),
    "gelu": ("torch.nn.functional.gelu", "Gaussian error linear unit", None, ("torch.nn.GELU", "torch.nn.functional.gelu")),
    "silu": ("torch.nn.functional.silu", "x * sigmoid(x) (swish)", None, ("torch.nn.SiLU", "torch.nn.functional.silu")),
    "sigmoid": (
        "torch.sigmoid",
        "logistic sigmoid",
        "Sigmoid",
        ("torch.nn.Sigmoid", "torch.sigmoid", "torch.nn.functional.sigmoid", "Tensor.sigmoid", "Tensor.sigmoid_"),
    ),
    "tanh": (
        "torch.tanh",
        "hyperbolic tangent",
        "Tanh",
        ("torch.nn.Tanh", "torch.tanh", "torch.nn.functional.tanh", "Tensor.tanh", "Tensor.tanh_"),
    ),
    "hardswish": (
        "torch.nn.functional.hardswish",
        "x * relu6(x + 3) / 6 (MobileNetV3)",
        "Hardswish",
        ("torch.nn.Hardswish", "torch.nn.functional.hardswish"),
    ),
    "hardsigmoid": (
        "torch.nn.functional.hardsigmoid",
        "relu6(x + 3) / 6 (MobileNetV3's gates)",
        "Hardsigmoid",
        ("torch.nn.Hardsigmoid", "torch.nn.functional.hardsigmoid"),
    ),
    "mish": (
        "torch.nn.functional.mish",
        "x * tanh(softplus(x)) (CSPDarknet, YOLOv4)",
        "Mish",
        ("torch.nn.Mish", "torch.nn.functional.mish"),
    ),
}

for _name, (_function, _doc, _layer, _reads) in _ACTIVATIONS.items():
    # sigmoid, tanh and ReLU keep their output for backward; the others their input
    saves = ("out",) if _name in ("relu", "sigmoid", "tanh") else ("in",)
    register(
        type(
            _name.capitalize(),
            (_Activation,),
            {
                "name": _name,
                "torch_function": _function,
                "doc": _doc,
                "saved_for_backward": saves,
                "layer": _layer,
                # F.gelu(x, approximate=...): the one argument an activation reads
                "readers": tuple(Reader(t, args=("approximate",) if _name == "gelu" else ()) for t in _reads),
            },
        )
    )


class _OneNumber(Op):
    """An activation with one number (leaky_relu's slope, elu's alpha: :attr:`Op.number`), computed by torch's
    ``F.<name>`` with it as ``torch_arg``. Read back, the default is left out, so the op stands for ``$act`` in a
    block like any other; a composite `conv` gives it as ``act=<name>(<number>)``."""

    kind = "act"
    keeps_shape = True
    number: ClassVar[str]  # the op's parameter
    torch_arg: ClassVar[str]  # torch's name for it

    def default(self) -> float:
        return float(self.Params.model_fields[self.number].default)

    def read(self, call: Call) -> dict[str, Any]:
        value = float(call.get(self.torch_arg, self.default()))
        return {} if value == self.default() else {self.number: value}

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return getattr(F, self.name), {self.torch_arg: getattr(p, self.number)}


class LeakyReLUParams(OpParams):
    slope: float = Field(0.01, ge=0.0, le=1.0, description="the slope for negative inputs (torch's negative_slope)")


@register
class LeakyReLU(_OneNumber):
    name = "leaky_relu"
    layer = "LeakyReLU"
    doc = (
        "max(x, 0) + slope · min(x, 0) (torch leaky_relu; CSPNet uses slope 0.01, Darknet and YOLO 0.1; "
        "`act=leaky_relu(0.1)` on a `conv`). Short form: leaky_relu [SLOPE]"
    )
    Params = LeakyReLUParams
    positional = ("slope",)
    number, torch_arg = "slope", "negative_slope"
    readers = (
        Reader("torch.nn.LeakyReLU"),
        Reader("torch.nn.functional.leaky_relu", args=("negative_slope", "inplace")),
        Reader("torch.nn.functional.leaky_relu_", args=("negative_slope",)),  # in place: a network archspec built
    )

    def in_place(self, p: OpParams) -> Callable[..., Any] | None:
        import torch.nn.functional as F

        return F.leaky_relu_  # called with function()'s slope; timm's BatchNormAct2d runs it in place too

    def in_place_input(self, p: OpParams) -> int | None:
        return 0  # its backward reads only its output (a slope ≥ 0 keeps the sign), as relu's does

    def label(self, p: LeakyReLUParams) -> str:
        return f"LeakyReLU ({p.slope:g})"


class EluParams(OpParams):
    alpha: float = Field(1.0, ge=0.0, le=1e6, description="the value approached for very negative inputs is -alpha")


@register
class Elu(_OneNumber):
    name = "elu"
    layer = "ELU"
    doc = "x for x > 0, alpha · (exp(x) - 1) otherwise (torch elu; `act=elu(0.5)` on a `conv`). Short form: elu [ALPHA]"
    Params = EluParams
    positional = ("alpha",)
    number = torch_arg = "alpha"
    readers = (Reader("torch.nn.ELU"), Reader("torch.nn.functional.elu", args=("alpha", "inplace")))

    def label(self, p: EluParams) -> str:
        return "ELU" if p.alpha == self.default() else f"ELU ({p.alpha:g})"
