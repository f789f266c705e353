"""A ``same``-padded conv (TensorFlow's padding, timm's Conv2dSame) as its padding, then a plain conv.

Where TensorFlow's ``same`` padding depends on the input's size (a stride above 1, or an even span),
the conv is a ``Conv2dSame`` that pads and convolves in its own forward, so no pass recognised it:
its BatchNorm stayed unfolded, its activation unfused, and its weights were reordered for oneDNN on
every call (tf_efficientnet_b0's stem and its four strided depthwise convs). Here the padding becomes
its own step in the graph (``pad_same``, the module's own function) and the conv an ``nn.Conv2d``
without padding, which the later passes fold, fuse and prepack like any other. Public torch only.
"""

from __future__ import annotations

import torch.fx as fx
import torch.nn as nn

from archspec.passes.common import PassResult, called_module, finish, set_module
from archspec.runtime import Conv2dSame, pad_same


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
        with gm.graph.inserting_before(node):
            padded = gm.graph.call_function(pad_same, (node.args[0], conv.kernel_size, conv.stride, conv.dilation))
        node.args = (padded,)
        set_module(gm, str(node.target), _plain(conv))
        rewrites += 1
    return finish(gm, "split_same_padding", rewrites)
