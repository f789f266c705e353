"""Keep convolutions away from two faults of oneDNN that ``optimize``'s rewrites would run into.

The differential tester found them (seed 808906, docs/testing.md); both are in torch 2.14's oneDNN,
not in archspec, and a plain ``nn.Conv2d`` shows them once it runs channels_last:

- **wrong values**: a conv with one input channel (``groups=1``), stride 1 along the height and more
  than 1 along the width gives wrong values when its output is one column wide — in channels_last
  (``optimize``'s default), and in the fused kernel of ``fuse_conv_act`` / ``fuse_conv_add`` in either
  layout. The contiguous ``conv2d`` with a contiguous weight is right. Such a conv becomes a
  :class:`ContiguousConv`, which always computes that way (its weight, of one input channel, is small)
  and which the fusion passes leave alone; the output is put back in the layout the rest of the
  network runs in.
- **a crash** (segmentation fault): a kernel one wide with a dilation above 1 along the width, in
  channels_last. A dilation along an axis where the kernel is 1 changes nothing, so it is set to 1:
  an exact rewrite.

Run after the passes that make convs (``fold_bn``, ``fuse_parallel_convs``) and before the ones that
fuse them or change the layout. ``tests/test_optimize.py`` pins both with the smallest specs found.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.passes.common import PassResult, called_module, finish, set_module


class ContiguousConv(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state_dict keys) computed by ``conv2d`` on contiguous
    tensors: the weight as well, which a channels_last ``.to()`` restrides (for one input channel,
    ``.contiguous()`` leaves those strides as they are, so it is copied)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, restrided = self.weight, False
        if weight.stride() != _contiguous_strides(weight):
            weight, restrided = weight.clone(memory_format=torch.contiguous_format), True
        if x.stride() != _contiguous_strides(x):
            x = x.clone(memory_format=torch.contiguous_format)
        y = F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y.contiguous(memory_format=torch.channels_last) if restrided else y


def _contiguous_strides(t: torch.Tensor) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(t.shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def wrong_in_onednn(conv: nn.Conv2d) -> bool:
    """A conv of the first kind above: oneDNN can give wrong values (at a one-column output)."""
    stride = tuple(conv.stride)
    kernel = tuple(conv.kernel_size)
    return conv.in_channels == 1 and conv.groups == 1 and stride[0] == 1 and stride[1] > 1 and kernel[1] > 1


def avoid_onednn_faults(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        conv = called_module(gm, node)
        if type(conv) is not nn.Conv2d:
            continue
        dilation = tuple(d if k > 1 else 1 for d, k in zip(conv.dilation, conv.kernel_size, strict=True))
        if dilation != tuple(conv.dilation):
            conv.dilation = dilation
            rewrites += 1
        if wrong_in_onednn(conv) and conv.padding_mode == "zeros":
            safe = ContiguousConv.__new__(ContiguousConv)
            safe.__dict__.update(conv.__dict__)
            safe._parameters = dict(conv._parameters)
            set_module(gm, str(node.target), safe)
            rewrites += 1
    return finish(gm, "avoid_onednn_faults", rewrites)
