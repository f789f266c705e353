"""Per-pixel linear layers (ConvNeXt's MLP) with their activation, layer scale and residual sum fused.

A ConvNeXt block runs ``x + γ · permute(linear₂(gelu(linear₁(LN(permute(dwconv(x)))))))``, the linears
on each pixel's channels (the map seen channels-last, a view). Unfused, the GELU, the scale γ and the
sum each pass over the 4C- or C-channel map once more, and GELU sits between two permutes. Here:

- an element-wise activation between a permute and its inverse runs on the permute's input (the
  two permutes cancel: the activation does not care about axis order);
- ``act(linear(x))`` becomes one oneDNN matmul with an eltwise post-op (:class:`LinearAct`; any
  linear, the classifiers' too);
- a per-channel scale after a linear (ConvNeXt's layer scale, the tensor C×1×1 after the permute
  back) goes into the linear's weight and bias: ``γ · (W x + b) = (γ W) x + γ b``;
- ``shortcut + permute(linear(x))`` becomes one oneDNN matmul with a binary add post-op reading the
  shortcut channels-last (:class:`LinearAdd`), then the permute back (a view).

Where oneDNN cannot run a call, ``F.linear`` and the public activation or ``add``, same result.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.passes import onednn
from archspec.passes.common import TO_FIRST, TO_LAST, PassResult, called_module, finish, only_user, permute_of, set_module
from archspec.passes.fuse_act import NO_POST_OP, PostOp, post_op

_ADDS = {torch.add, operator.add}
_LINEAR_POST_OPS = {"relu", "gelu", "swish", "sigmoid", "hardswish"}  # oneDNN matmul eltwise post-ops tested here


def _from_linear(cls: type[nn.Linear], linear: nn.Linear) -> nn.Linear:
    fused = cls.__new__(cls)
    fused.__dict__.update(linear.__dict__)
    fused._parameters = dict(linear._parameters)
    return fused


class LinearAct(nn.Linear):
    """``activation(linear(x))``."""

    post_op: PostOp = NO_POST_OP

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.post_op
        if onednn.usable(x, self.weight):
            return onednn.linear_pointwise(x, self.weight, self.bias, p.name, p.algorithm or "none")
        return p.public(F.linear(x, self.weight, self.bias))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", then {self.post_op.name}"


class LinearAdd(nn.Linear):
    """``linear(x) + other``."""

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # the sum as oneDNN's post-op only where ``other`` has the product's own shape (a body of fewer
        # channels than its shortcut, or more, is broadcast: torch's add)
        if onednn.usable(x, self.weight, other) and other.is_contiguous() and other.shape == (*x.shape[:-1], self.out_features):
            return onednn.linear_add(x, other, self.weight, self.bias)
        return torch.add(F.linear(x, self.weight, self.bias), other)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", then add"


def _cancel_permutes(gm: fx.GraphModule) -> int:
    """``permute(act(permute(x, TO_FIRST)), TO_LAST)`` → ``act(x)``."""
    rewrites = 0
    for first in list(gm.graph.nodes):
        source = permute_of(first, TO_FIRST)
        act = only_user(first) if source is not None else None
        back = only_user(act) if act is not None and post_op(act) is not None else None
        if source is None or act is None or back is None or permute_of(back, TO_LAST) is not act:
            continue
        act.replace_input_with(first, source)
        back.replace_all_uses_with(act)
        gm.graph.erase_node(back)
        gm.graph.erase_node(first)
        rewrites += 1
    return rewrites


def _fuse_act(gm: fx.GraphModule) -> int:
    rewrites = 0
    for node in list(gm.graph.nodes):
        linear = called_module(gm, node)
        act = only_user(node) if type(linear) is nn.Linear else None
        op = post_op(act)
        if not isinstance(linear, nn.Linear) or act is None or op is None or op.name not in _LINEAR_POST_OPS:
            continue
        fused = _from_linear(LinearAct, linear)
        assert isinstance(fused, LinearAct)
        fused.post_op = op
        set_module(gm, str(node.target), fused)
        act.replace_all_uses_with(node)
        gm.graph.erase_node(act)
        rewrites += 1
    return rewrites


def _back_to_channels_first(node: fx.Node) -> fx.Node | None:
    """The node after a channels-last linear's permute back (and the ``.contiguous()`` after it, if any)."""
    back = only_user(node)
    if permute_of(back, TO_FIRST) is not node:
        return None
    assert back is not None
    after = only_user(back)
    is_copy = after is not None and after.op == "call_method" and after.target == "contiguous" and len(after.args) == 1
    return after if is_copy and not after.kwargs else back  # type: ignore[union-attr]


def _parameter(gm: fx.GraphModule, node: object) -> torch.Tensor | None:
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    try:
        return gm.get_parameter(str(node.target))
    except AttributeError:  # a buffer or a plain attribute
        return None


def _fold_scales(gm: fx.GraphModule) -> int:
    rewrites = 0
    for node in list(gm.graph.nodes):
        linear = called_module(gm, node)
        last = _back_to_channels_first(node) if isinstance(linear, nn.Linear) else None
        mul = only_user(last) if last is not None else None
        if linear is None or mul is None or mul.op != "call_function" or mul.target not in (torch.mul, operator.mul):
            continue
        scale = next((a for a in mul.args if a is not last), None) if len(mul.args) == 2 and not mul.kwargs else None
        gamma = _parameter(gm, scale)
        if (
            not isinstance(linear, nn.Linear)
            or last is None
            or gamma is None
            or tuple(gamma.shape) != (linear.out_features, 1, 1)
        ):
            continue
        with torch.no_grad():
            g = gamma.detach().reshape(-1)
            linear.weight = nn.Parameter(linear.weight * g[:, None], requires_grad=False)
            if linear.bias is not None:
                linear.bias = nn.Parameter(linear.bias * g, requires_grad=False)
        mul.replace_all_uses_with(last)
        gm.graph.erase_node(mul)
        rewrites += 1
    return rewrites


def _fuse_add(gm: fx.GraphModule) -> int:
    rewrites = 0
    for node in list(gm.graph.nodes):
        linear = called_module(gm, node)
        last = _back_to_channels_first(node) if type(linear) is nn.Linear else None
        add = only_user(last) if last is not None else None
        if (
            not isinstance(linear, nn.Linear)
            or last is None
            or add is None
            or add.op != "call_function"
            or add.target not in _ADDS
        ):
            continue
        if len(add.args) != 2 or add.kwargs or len(node.args) != 1 or node.kwargs:
            continue
        shortcut = add.args[1] if add.args[0] is last else add.args[0]
        if not isinstance(shortcut, fx.Node):
            continue
        set_module(gm, str(node.target), _from_linear(LinearAdd, linear))
        with gm.graph.inserting_before(add):
            other = gm.graph.call_method("permute", (shortcut, TO_LAST))
            fused = gm.graph.call_module(str(node.target), (node.args[0], other))
            result = gm.graph.call_method("permute", (fused, TO_FIRST))
        add.replace_all_uses_with(result)
        gm.graph.erase_node(add)
        while last is not node:  # the permute back and the copy after it, now unread
            previous = last.args[0]
            gm.graph.erase_node(last)
            last = previous  # type: ignore[assignment]
        gm.graph.erase_node(node)
        rewrites += 1
    return rewrites


def fuse_linear(gm: fx.GraphModule) -> PassResult:
    rewrites = _cancel_permutes(gm) + _fold_scales(gm) + _fuse_add(gm) + _fuse_act(gm)
    return finish(gm, "fuse_linear", rewrites)
