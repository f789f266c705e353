"""Element-wise activations, one registry entry each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archspec.ops.registry import Op, OpParams, register
from archspec.symbolic import Shape


class _Activation(Op):
    kind = "act"
    torch_name: str = ""

    def infer(self, p: OpParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch

        return getattr(torch, self.torch_name), {}

    def label(self, p: OpParams) -> str:
        return self.name.capitalize() if self.name != "relu" else "ReLU"


def _activation(op_name: str, torch_name: str, text: str) -> None:
    cls = type(op_name.capitalize(), (_Activation,), {"name": op_name, "torch_name": torch_name, "doc": text})
    register(cls)


_activation("relu", "relu", "max(x, 0)")
_activation("sigmoid", "sigmoid", "logistic sigmoid")
_activation("tanh", "tanh", "hyperbolic tangent")


@register
class Relu6(_Activation):
    name = "relu6"
    doc = "min(max(x, 0), 6)"

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.relu6, {}


@register
class Gelu(_Activation):
    name = "gelu"
    doc = "Gaussian error linear unit"

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.gelu, {}


@register
class Silu(_Activation):
    name = "silu"
    doc = "x * sigmoid(x) (swish)"

    def function(self, p: OpParams) -> tuple[Callable[..., Any], dict[str, Any]]:
        import torch.nn.functional as F

        return F.silu, {}
