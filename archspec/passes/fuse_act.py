"""Every conv as a oneDNN conv with prepacked weights, and the activation after it as a post-op.

A separate activation (ReLU, leaky ReLU, hardswish, SiLU, GELU, sigmoid, hard sigmoid, ReLU6) reads and writes
the whole feature map once more; fused, it is applied while the conv's output tile is still in
cache. A conv with no activation after it gets the same kernel with no post-op, for its weights
kept in oneDNN's blocked layout (see :mod:`archspec.passes.onednn`) rather than reordered on every
call. Where oneDNN cannot run the call, ``conv2d`` followed by the public activation, same result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.passes import onednn
from archspec.passes.common import REDUCED, RELUS, PassResult, called_module, finish, only_user, set_module
from archspec.passes.onednn import OneDNNConv


@dataclass(frozen=True)
class PostOp:
    """An activation as oneDNN names it, and the public torch function computing the same."""

    name: str
    public: Callable[[torch.Tensor], torch.Tensor]
    scalars: tuple[float, ...] = ()
    algorithm: str = ""


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _gelu_tanh(t: torch.Tensor) -> torch.Tensor:
    return F.gelu(t, approximate="tanh")


# module-level functions, not lambdas: an optimized model pickles
NO_POST_OP = PostOp("none", _identity)
_GELU = {"none": PostOp("gelu", F.gelu, (), "none"), "tanh": PostOp("gelu", _gelu_tanh, (), "tanh")}
_BY_FUNCTION: dict[Any, PostOp] = {
    **dict.fromkeys(RELUS, PostOp("relu", torch.relu_)),
    F.hardswish: PostOp("hardswish", F.hardswish),
    F.silu: PostOp("swish", F.silu),
    torch.sigmoid: PostOp("sigmoid", torch.sigmoid),
    F.hardsigmoid: PostOp("hardsigmoid", F.hardsigmoid),
    F.relu6: PostOp("hardtanh", F.relu6, (0.0, 6.0)),
}


_LEAKY = frozenset({F.leaky_relu, F.leaky_relu_})


def _leaky_relu(node: fx.Node) -> PostOp | None:
    """``leaky_relu(x, slope)`` (also in place; the slope by position or by name), else None."""
    if len(node.args) > 2 or not set(node.kwargs) <= {"negative_slope", "inplace"}:
        return None
    slope = node.args[1] if len(node.args) == 2 else node.kwargs.get("negative_slope", 0.01)
    if not isinstance(slope, int | float) or isinstance(slope, bool):
        return None
    # a partial of the function, not a lambda: an optimized model pickles
    return PostOp("leaky_relu", partial(F.leaky_relu, negative_slope=float(slope)), (float(slope),))


def post_op(node: fx.Node | None) -> PostOp | None:
    """The post-op computing the activation ``node`` calls on its one tensor argument, else None."""
    if node is None or node.op != "call_function" or not node.args:
        return None
    if node.target in _LEAKY:
        return _leaky_relu(node)
    if len(node.args) != 1:
        return None
    if node.target in (F.gelu, torch._C._nn.gelu):
        approximate = node.kwargs.get("approximate", "none")
        return _GELU.get(approximate) if set(node.kwargs) <= {"approximate"} and isinstance(approximate, str) else None
    if node.kwargs and node.kwargs != {"inplace": False}:
        return None
    return _BY_FUNCTION.get(node.target)


def _pixel_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, act: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """``act(conv(x))`` of a 1×1 conv (its weight as out × in) on an N×C×1×1 map, as ``x @ Wᵀ + b``."""
    n = x.shape[0]
    return act(F.linear(x.reshape(n, -1), weight, bias)).view(n, -1, 1, 1)


def _pixel_linear_float32(
    weight: torch.Tensor, bias: torch.Tensor | None, act: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """:func:`_pixel_linear` of a bf16 (or float16) map with the float32 weight and bias given."""
    return _pixel_linear(weight, bias, act, x.float()).to(x.dtype)


class ConvAct(OneDNNConv):
    """``activation(conv(x))`` (``post_op`` ``none``: the conv alone)."""

    post_op: PostOp = NO_POST_OP

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.again(x)  # the last call's arguments, where they hold: most calls
        if y is not None:
            return y
        p = self.post_op
        if self.onednn(x):
            return onednn.conv_pointwise(self, x, p.name, p.scalars, p.algorithm)
        if self.pointwise and onednn.one_pixel(x) and type(x.shape[0]) is int:  # an SE gate's conv: a matrix
            # product (conv2d reorders the weight on every call: batch 8, 100-140 µs against 13-35; batch 1, 10-15 against 7-12)
            weight, bias = self.weight.reshape(self.out_channels, -1), self.bias
            if x.dtype in REDUCED:  # bf16 matrix products this small take 30-50 µs, float32's 4-30 (K = 6…1152)
                run = partial(_pixel_linear_float32, weight.float(), None if bias is None else bias.float(), p.public)
            else:
                run = partial(_pixel_linear, weight, bias, p.public)
            if onednn.usable(x, self.weight):
                self.remember(x, run)
            return run(x)
        return p.public(self._conv_forward(x, self.weight, self.bias))

    @property
    def pointwise(self) -> bool:
        """A 1×1 conv without padding or groups: on a one-pixel map, ``x @ Wᵀ + b``."""
        return self.kernel_size == (1, 1) and self.padding == (0, 0) and self.groups == 1

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.post_op.name == "none" else f", then {self.post_op.name}")


def fuse_conv_act(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        conv = called_module(gm, node)
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            continue
        act = only_user(node)
        op = post_op(act)
        fused = ConvAct.from_conv(conv)
        fused.post_op = op or NO_POST_OP
        set_module(gm, str(node.target), fused)
        if op is not None and act is not None:
            act.replace_all_uses_with(node)
            gm.graph.erase_node(act)
        rewrites += 1
    return finish(gm, "fuse_conv_act", rewrites)
