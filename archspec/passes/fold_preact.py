"""A pre-activation BatchNorm → ReLU → 1×1 conv (DenseNet's layers and transitions): BN into the conv.

BatchNorm at inference is ``s·x + t`` per channel (``s = γ/√(var + ε)``, ``t = β − μ·s``), and
``relu(s·x + t) = s·max(x, m) + t`` with ``m = −t/s`` where ``s > 0`` (``s·min(x, m) + t`` where
``s < 0``; the constant ``relu(t)`` where ``s = 0``). A 1×1 conv without padding is linear in each
pixel, so ``conv(s ⊙ z + t) = conv'(z)`` with ``W' = W·diag(s)`` and ``b' = b + W·t``. The two
passes of BatchNorm and ReLU over the map become one ``clamp_min`` (``clamp`` where some ``s ≤ 0``),
which also reads a strided view without copying it first (see ``dense_concat``). Public torch only.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes.common import PassResult, called_module, finish, free_target, is_relu, only_user


class ChannelClamp(nn.Module):
    """``x`` clamped per channel to ``[low, high]`` (``high`` absent: no upper bound)."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    low: torch.Tensor
    high: torch.Tensor | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.high is None:
            return torch.clamp_min(x, self.low)
        return torch.clamp(x, self.low, self.high)


def _pointwise(conv: nn.Module | None) -> bool:
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (1, 1)
        and conv.padding == (0, 0)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def _fold(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> ChannelClamp:
    """Change ``conv`` to read the clamped map; the clamp that makes it."""
    assert bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        t = bn.bias - bn.running_mean * s
        m = torch.where(s == 0, torch.zeros_like(t), -t / torch.where(s == 0, torch.ones_like(s), s))
        inf = torch.full_like(m, float("inf"))
        low = torch.where(s > 0, m, torch.where(s < 0, -inf, torch.zeros_like(m)))
        high = None if bool((s > 0).all()) else torch.where(s < 0, m, torch.where(s > 0, inf, torch.zeros_like(m)))
        offset = torch.where(s == 0, torch.relu(t), t)
        w = conv.weight[:, :, 0, 0]
        bias = (conv.bias if conv.bias is not None else torch.zeros_like(w[:, 0])) + w @ offset
        conv.weight = nn.Parameter(conv.weight * s[None, :, None, None], requires_grad=False)
        conv.bias = nn.Parameter(bias, requires_grad=False)
    shape = (-1, 1, 1)
    return ChannelClamp(low.reshape(shape).clone(), None if high is None else high.reshape(shape).clone())


def fold_preact(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        bn = called_module(gm, node)
        if type(bn) is not nn.BatchNorm2d or not bn.affine or bn.running_mean is None or len(node.args) != 1:
            continue
        relu = only_user(node)
        conv_node = only_user(relu) if is_relu(relu) else None
        conv = called_module(gm, conv_node) if conv_node is not None else None
        if relu is None or conv_node is None or not isinstance(conv, nn.Conv2d) or not _pointwise(conv):
            continue
        target = free_target(gm, f"{node.target}_clamp")
        gm.add_submodule(target, _fold(bn, conv))
        with gm.graph.inserting_before(node):
            clamp = gm.graph.call_module(target, node.args)
        conv_node.replace_input_with(relu, clamp)
        gm.graph.erase_node(relu)
        gm.graph.erase_node(node)
        rewrites += 1
    return finish(gm, "fold_preact", rewrites)
