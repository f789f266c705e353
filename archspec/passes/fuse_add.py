"""Conv + residual add (+ ReLU) in one kernel: the sum and the activation run as oneDNN post-ops.

Every residual block ends in ``act(shortcut + scale · conv(z))``. Unfused, the conv writes its
output, the add reads it and the shortcut and writes a third tensor, and the ReLU passes over
that once more; fused, the shortcut is added and the ReLU applied while each output tile is
still in cache. The residual scale is folded into the conv's weights and bias first
(``scale · conv(z) = conv'(z)`` with ``W' = scale · W``, ``b' = scale · b``). Uses oneDNN's
fused kernel with a binary post-op (see :mod:`archspec.passes.onednn`) where it takes the tensors;
otherwise ``conv2d``, ``add`` and ``relu_``, with the same result.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes import onednn
from archspec.passes.common import PassResult, called_module, finish, is_relu, only_user, set_module
from archspec.passes.onednn import OneDNNConv

_ADDS = {torch.add, operator.add}


class ConvAdd(OneDNNConv):
    """``act(conv(x) + other)``; ``activation`` is ``"relu"`` or None."""

    activation: str | None = None

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.onednn(x, other):
            return onednn.conv_add_pointwise(self, x, other, self.activation)
        out = torch.add(other, self._conv_forward(x, self.weight, self.bias))
        return torch.relu_(out) if self.activation == "relu" else out

    @classmethod
    def scaled(cls, conv: nn.Conv2d, scale: float, activation: str | None) -> ConvAdd:
        """The fused conv for ``act(other + scale · conv(x))``: the scale goes into the weights."""
        fused = cls.from_conv(conv)
        if scale != 1:
            with torch.no_grad():
                fused.weight = nn.Parameter(conv.weight * scale, requires_grad=False)
                if conv.bias is not None:
                    fused.bias = nn.Parameter(conv.bias * scale, requires_grad=False)
        fused.activation = activation
        return fused

    def extra_repr(self) -> str:
        return super().extra_repr() + f", then add{', ' + self.activation if self.activation else ''}"


def _body_and_scale(gm: fx.GraphModule, add: fx.Node) -> tuple[fx.Node, fx.Node, float] | None:
    """For ``a + scale·b`` where a conv computes b (or, unscaled, a) for this add alone:
    (the conv's node, the other operand, scale)."""
    in_place = add.op == "call_method" and add.target == "add_"  # body.add_(shortcut), in the plain model
    if not (in_place or add.op == "call_function" and add.target in _ADDS) or len(add.args) != 2:
        return None
    a, b = add.args
    if in_place:
        a, b = b, a
    scale = add.kwargs.get("alpha", 1)
    if set(add.kwargs) - {"alpha"} or not isinstance(scale, (int, float)):
        return None
    candidates = [(b, a)] if scale != 1 else [(b, a), (a, b)]  # alpha scales the second operand only
    for body, other in candidates:
        if not isinstance(body, fx.Node) or not isinstance(other, fx.Node) or only_user(body) is not add:
            continue
        conv = called_module(gm, body)
        if (
            type(conv) is nn.Conv2d
            and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)
            and len(body.args) == 1
            and not body.kwargs
            and sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == body.target) == 1
        ):
            return body, other, float(scale)
    return None


def fuse_conv_add(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for add in list(gm.graph.nodes):
        found = _body_and_scale(gm, add)
        if found is None:
            continue
        body, other, scale = found
        act = only_user(add)
        fuse_act = is_relu(act)
        conv = called_module(gm, body)
        assert isinstance(conv, nn.Conv2d)
        set_module(gm, str(body.target), ConvAdd.scaled(conv, scale, "relu" if fuse_act else None))
        with gm.graph.inserting_before(add):
            fused = gm.graph.call_module(str(body.target), (body.args[0], other))
        fused.meta.update(add.meta)
        last = act if fuse_act else add
        assert last is not None
        last.replace_all_uses_with(fused)
        for node in ([act] if fuse_act else []) + [add, body]:
            gm.graph.erase_node(node)
        rewrites += 1
    return finish(gm, "fuse_conv_add", rewrites)
