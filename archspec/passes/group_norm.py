"""GroupNorm on a channels_last map without the two layout copies (BiT's pre-activation ResNetV2).

torch's CPU GroupNorm kernel for a channels_last map sums x and x² in one pass and loses the variance
when a group's mean dwarfs its spread, so ``to_layout`` runs each GroupNorm on a channels-first copy
and copies the result back: two transpositions of the map per norm, a third of ResNetV2's optimized
forward. :class:`ChannelsLastGroupNorm` computes the same on the channels_last map itself: each
sample's group statistics by ``torch.var_mean`` (Welford's update: stable whatever the mean), then
the whole normalisation and affine as one ``addcmul`` with a per-sample, per-channel scale and shift
over the map seen as N×H×W×C. A channels-first map goes to torch's kernel (exact there); a channels_last
one not in float32, the old way.
Public torch only.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes.common import PassResult, called_module, finish, set_module


class ChannelsLastGroupNorm(nn.GroupNorm):
    """An ``nn.GroupNorm`` (same parameters and state_dict keys) computed on a channels_last map in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.is_contiguous():
            return super().forward(x)  # channels-first: torch's kernel is exact there
        if x.dtype != torch.float32:
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)  # a strided view (a channel slice): one copy
        n, c, h, w = x.shape
        g = self.num_groups
        pixels = x.permute(0, 2, 3, 1)  # N×H×W×C, a contiguous view
        var, mean = torch.var_mean(pixels.reshape(n, h * w, g, c // g), dim=(1, 3), unbiased=False)  # N×G
        scale = (var + self.eps).rsqrt().repeat_interleave(c // g, dim=1)  # N×C
        shift = -mean.repeat_interleave(c // g, dim=1) * scale
        if self.affine:
            shift = shift * self.weight + self.bias
            scale = scale * self.weight
        out = torch.addcmul(shift.view(n, 1, 1, c), pixels, scale.view(n, 1, 1, c))
        return out.permute(0, 3, 1, 2)  # channels_last again


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
