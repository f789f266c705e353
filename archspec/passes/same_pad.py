"""A ``same``-padded conv (TensorFlow's padding, timm's Conv2dSame) as its padding, then a plain conv.

Where TensorFlow's ``same`` padding depends on the input's size (a stride above 1, or an even span),
the conv is a ``Conv2dSame`` that pads and convolves in its own forward, so no pass recognised it:
its BatchNorm stayed unfolded, its activation unfused, and its weights were reordered for oneDNN on
every call (tf_efficientnet_b0's stem and its four strided depthwise convs). Here the padding becomes
its own step in the graph (:class:`SamePad`, the module's own ``pad_same``) and the conv an ``nn.Conv2d``
without padding, which the later passes fold, fuse and prepack like any other. Public torch only.

After ``fuse_conv_act``, :func:`shift_same_padding` takes the padding back into the fused conv where the
stride is at least 2 on both axes (and at least the kernel), with dilation 1: TensorFlow pads the odd
pixel on the bottom and right, which oneDNN's symmetric padding cannot say, so the padding step writes
the whole map again before each of these convs (tf_efficientnet_b0: 8×96×113×113 at batch 8). The
kernel one larger along each axis, its first row and column zero, with symmetric padding ``top + 1``
computes the same windows without the copy: the zero tap reads one pixel before the window, always
padding, and ``((X + 2·top + 2 − (k + 1)) // s) + 1`` is TensorFlow's ceil(X / s) both when the
padding splits evenly and when the odd pixel is at the end (s ≥ 2). Exact (the extra products are
zeros); the padding is worked out per call, so every input size (even or odd) gets its own.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.passes import onednn
from archspec.passes.common import PassResult, called_module, finish, free_target, only_user, set_module
from archspec.passes.fuse_act import ConvAct
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


def shifted_padding(x: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, int]:
    """Per axis, TensorFlow's padding before the window plus one: the symmetric padding of the kernel one
    larger with a zero first row and column (:class:`SameConvAct`). Floor divisions only, as ``pad_same``."""
    (h, sh), (w, sw) = zip(x.shape[-2:], stride, strict=True)
    kh, kw = kernel_size
    return (((h + sh - 1) // sh - 1) * sh + kh - h) // 2 + 1, (((w + sw - 1) // sw - 1) * sw + kw - w) // 2 + 1


class SameConvAct(ConvAct):
    """A conv with TensorFlow's ``same`` padding at a stride ≥ 2, then its activation, in one oneDNN kernel and
    without a padded copy of the map: ``weight`` is the conv's own with a zero row and column put before it,
    padded symmetrically by :func:`shifted_padding` (``same_kernel`` is the conv's own kernel size)."""

    same_kernel: tuple[int, int] = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = shifted_padding(x, self.same_kernel, self.stride)
        p = self.post_op
        if self.onednn(x):
            return onednn.conv_pointwise(self, x, p.name, p.scalars, p.algorithm, padding)
        return p.public(F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", TensorFlow's same padding for {self.same_kernel[0]}x{self.same_kernel[1]}"


def _shiftable(pad: nn.Module | None, conv: nn.Module | None) -> bool:
    """A :class:`SamePad` and the fused conv reading it, where the shifted kernel computes the same windows."""
    if not isinstance(pad, SamePad) or type(conv) is not ConvAct:
        return False
    same = (pad.kernel_size, pad.stride, pad.dilation) == (conv.kernel_size, conv.stride, conv.dilation)
    strided = all(k >= s >= 2 for k, s in zip(conv.kernel_size, conv.stride, strict=True))
    return same and strided and conv.dilation == (1, 1) and conv.padding == (0, 0) and len(conv.kernel_size) == 2


def _shifted(conv: ConvAct) -> SameConvAct:
    shifted = SameConvAct.from_conv(conv)
    kh, kw = conv.kernel_size
    with torch.no_grad():
        weight = conv.weight.new_zeros(*conv.weight.shape[:2], kh + 1, kw + 1)
        weight[..., 1:, 1:] = conv.weight
    shifted.weight = nn.Parameter(weight, requires_grad=conv.weight.requires_grad)
    shifted.same_kernel, shifted.kernel_size = (kh, kw), (kh + 1, kw + 1)
    shifted._packed = None
    return shifted


def shift_same_padding(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        conv_node = only_user(node) if node.op == "call_module" else None
        if conv_node is None or conv_node.args != (node,) or conv_node.kwargs:
            continue
        conv = called_module(gm, conv_node)
        if not _shiftable(called_module(gm, node), conv):
            continue
        assert isinstance(conv, ConvAct)
        set_module(gm, str(conv_node.target), _shifted(conv))
        conv_node.args = node.args
        gm.graph.erase_node(node)
        rewrites += 1
    return finish(gm, "shift_same_padding", rewrites)
