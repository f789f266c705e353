"""Conv + ReLU in one kernel: the activation runs as a oneDNN post-op on the conv's output tile.

A separate ``relu_`` reads and writes the whole feature map once more; fused, it is applied while
the output is still in cache. Uses ``torch.ops.mkldnn._convolution_pointwise`` (the kernel that
``torch.compile``'s CPU backend emits for the same pattern) when oneDNN is available and the
tensors are on the CPU; otherwise ``conv2d`` followed by an in-place ReLU, so results are the same.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.passes.common import PassResult, called_module, finish, only_user, set_module

_RELUS = {torch.relu, torch.relu_, F.relu}


def _mkldnn_dtypes() -> frozenset[torch.dtype]:
    """The dtypes oneDNN's fused conv accepts on this CPU (bf16 needs AVX512-BW/VL/DQ or AVX-NE-CONVERT)."""
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return frozenset()
    try:  # a private op (the one inductor emits): fall back to conv2d + relu_ where a torch lacks it
        torch.ops.mkldnn._convolution_pointwise.default  # noqa: B018
    except (AttributeError, RuntimeError):
        return frozenset()
    dtypes = {torch.float32}
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        dtypes.add(torch.bfloat16)
    return frozenset(dtypes)


class ConvReLU(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters, same state_dict keys) whose output goes through ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype in _MKLDNN_DTYPES and not torch.is_grad_enabled():
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, "relu", [], "")
        return torch.relu_(self._conv_forward(x, self.weight, self.bias))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> ConvReLU:
        fused = cls.__new__(cls)
        fused.__dict__.update(conv.__dict__)
        return fused


_MKLDNN_DTYPES = _mkldnn_dtypes()


def fuse_conv_act(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        conv = called_module(gm, node)
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            continue
        act = only_user(node)
        if act is None or act.op != "call_function" or act.target not in _RELUS or len(act.args) != 1 or act.kwargs:
            continue
        set_module(gm, str(node.target), ConvReLU.from_conv(conv))
        act.replace_all_uses_with(node)
        gm.graph.erase_node(act)
        rewrites += 1
    return finish(gm, "fuse_conv_act", rewrites)
