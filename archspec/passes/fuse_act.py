"""Conv + ReLU in one kernel: the activation runs as a oneDNN post-op on the conv's output tile.

A separate ``relu_`` reads and writes the whole feature map once more; fused, it is applied while
the output is still in cache. Uses oneDNN's fused kernel (see :mod:`archspec.passes.onednn`)
when it takes the tensors; otherwise ``conv2d`` followed by an in-place ReLU, with the same result.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes import onednn
from archspec.passes.common import PassResult, called_module, finish, is_relu, only_user, set_module
from archspec.passes.onednn import OneDNNConv


class ConvReLU(OneDNNConv):
    """``relu(conv(x))``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn(x):
            return onednn.conv_pointwise(self, x, "relu")
        return torch.relu_(self._conv_forward(x, self.weight, self.bias))


def fuse_conv_act(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        conv = called_module(gm, node)
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            continue
        act = only_user(node)
        if not is_relu(act):
            continue
        set_module(gm, str(node.target), ConvReLU.from_conv(conv))
        act.replace_all_uses_with(node)
        gm.graph.erase_node(act)
        rewrites += 1
    return finish(gm, "fuse_conv_act", rewrites)
