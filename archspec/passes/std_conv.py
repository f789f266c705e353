"""A weight-standardised conv (BiT's StdConv2d) becomes a plain conv on its standardised weights.

``StdConv2d`` normalises each filter to mean 0 and variance 1 before every call: at inference the
weights do not change, so that normalisation is the same every time. Computed once here, with the
module's own formula (so the same rounding), the conv is an ``nn.Conv2d`` the later passes prepack
for oneDNN and fuse with what follows, as any other. A ``same``-padded one (padding that depends on
the input's size) gets its padding as a step of its own before it (``SamePad``, the module's own
``pad_same``; see ``same_pad``). Public torch only.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes.common import PassResult, called_module, finish, set_module
from archspec.passes.same_pad import pad_before
from archspec.runtime import StdConv2d


def _standardized(conv: StdConv2d) -> torch.Tensor:
    """The weights ``StdConv2d.forward`` convolves with (its own method, runtime.py: the same rounding; a
    scaled one's gain and gamma / sqrt(fan_in) included)."""
    return conv.standardized()


def _plain(conv: StdConv2d) -> nn.Conv2d:
    plain = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type] # nn.Conv2d keeps tuple[int, ...], takes tuple[int, int]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        conv.dilation,  # type: ignore[arg-type]
        conv.groups,
        conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        plain.weight.copy_(_standardized(conv))
        if conv.bias is not None and plain.bias is not None:
            plain.bias.copy_(conv.bias)
    return plain.eval()


def standardize_convs(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        conv = called_module(gm, node)
        if type(conv) is not StdConv2d or conv.padding_mode != "zeros" or len(node.args) != 1 or node.kwargs:
            continue
        if conv.same:
            pad_before(gm, node, conv)
        set_module(gm, str(node.target), _plain(conv))
        rewrites += 1
    return finish(gm, "standardize_convs", rewrites)
