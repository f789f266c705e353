"""GroupNorm on a channels_last map without the two layout copies (BiT's pre-activation ResNetV2).

torch's CPU GroupNorm kernel for a channels_last map sums x and x² in one pass, so its variance loses
digits as a group's mean grows against its spread (mean 30, spread 0.5: errors of 1e-2; differential
tester, seed 3000286). ``to_layout`` therefore runs each GroupNorm on a channels-first copy and copies
the result back: two transpositions of the map per norm, a third of ResNetV2's optimized forward.

:class:`ChannelsLastGroupNorm` runs torch's channels_last kernel (``torch.native_group_norm``, which
also returns each group's mean and 1/σ) and keeps its result where every group's (mean/σ)² is at most
:data:`SAFE_RATIO`: there the lost digits are few (measured: ≤ 2e-5 of the output's scale on
64 channels × 112×112, against float64). A call where some group's is larger is computed again the
old way, on a channels-first copy. Public torch only.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes.common import PassResult, called_module, finish, set_module

# (mean/σ)² of a group up to which the channels_last kernel's one-pass variance is kept. Its error grows
# like (1 + (mean/σ)²) times the rounding of the sums: about 2e-5 of the outputs' scale at 4 on a
# 64-channel 112×112 map in 32 groups (ResNetV2's first stage), 1.5e-4 at 10.
SAFE_RATIO = 4.0


class ChannelsLastGroupNorm(nn.GroupNorm):
    """An ``nn.GroupNorm`` (same parameters and state_dict keys) run on a channels_last map where that is exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.is_contiguous():
            return super().forward(x)  # channels-first: torch's kernel is exact there
        if not x.is_contiguous(memory_format=torch.channels_last):  # a strided view (a channel slice)
            if x.stride(1) != 1:
                return super().forward(x.contiguous())
            x = x.contiguous(memory_format=torch.channels_last)
        n, c, h, w = x.shape
        out, mean, rstd = torch.native_group_norm(x, self.weight, self.bias, n, c, h * w, self.num_groups, self.eps)
        if bool((mean * rstd).square().amax() <= SAFE_RATIO):
            return out
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)


def group_norm_channels_last(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in gm.graph.nodes:
        norm = called_module(gm, node)
        if type(norm) is nn.GroupNorm:
            fast = ChannelsLastGroupNorm.__new__(ChannelsLastGroupNorm)
            fast.__dict__.update(norm.__dict__)
            set_module(gm, str(node.target), fast)
            rewrites += 1
    return finish(gm, "group_norm_channels_last", rewrites)
