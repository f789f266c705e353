"""A ``same``-padded conv (TensorFlow's padding, timm's Conv2dSame) as its padding, then a plain conv.

Where TensorFlow's ``same`` padding depends on the input's size (a stride above 1, or an even span),
the conv is a ``Conv2dSame`` that pads and convolves in its own forward, so no pass recognised it:
its BatchNorm stayed unfolded, its activation unfused, and its weights were reordered for oneDNN on
every call (tf_efficientnet_b0's stem and its four strided depthwise convs). Here the padding becomes
its own step in the graph (:class:`SamePad`, the module's own ``pad_same``) and the conv an ``nn.Conv2d``
without padding, which the later passes fold, fuse and prepack like any other. Public torch only.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes.common import PassResult, called_module, finish, free_target, set_module
from archspec.runtime import Conv2dSame, pad_same


class SamePad(nn.Module):
    """``x`` padded as TensorFlow's ``same`` padding for a conv's window (runtime's ``pad_same``). A module,
    not a function in the graph: a pickled model's graph is traced again on load, modules as leaves."""

    def __init__(self, kernel_size: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad_same(x, self.kernel_size, self.stride, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, dilation={self.dilation}"


def pad_before(gm: fx.GraphModule, node: fx.Node, conv: nn.Conv2d) -> None:
    """A :class:`SamePad` step for ``conv`` (called at ``node``) put before it in the graph."""
    target = free_target(gm, f"{node.target}_pad")
    set_module(gm, target, SamePad(conv.kernel_size, conv.stride, conv.dilation))
    with gm.graph.inserting_before(node):
        padded = gm.graph.call_module(target, (node.args[0],))
    node.args = (padded,)


def _plain(conv: nn.Conv2d) -> nn.Conv2d:
    plain = nn.Conv2d.__new__(nn.Conv2d)
    plain.__dict__.update(conv.__dict__)
    plain._parameters = dict(conv._parameters)
    plain.padding = (0, 0)
    return plain


def split_same_padding(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        conv = called_module(gm, node)
        if type(conv) is not Conv2dSame or len(node.args) != 1 or node.kwargs or conv.padding_mode != "zeros":
            continue
        pad_before(gm, node, conv)
        set_module(gm, str(node.target), _plain(conv))
        rewrites += 1
    return finish(gm, "split_same_padding", rewrites)
