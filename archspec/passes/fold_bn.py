"""Fold an eval-mode BatchNorm into the convolution (or linear layer) that feeds it.

``bn(conv(x)) = conv'(x)`` with ``W' = W·γ/σ`` and ``b' = (b − μ)·γ/σ + β``, computed by
torch's own ``fuse_conv_bn_eval`` / ``fuse_linear_bn_eval``. A BatchNorm whose producer is
not a conv or linear layer, or whose producer's output is also read elsewhere, stays.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch.fx as fx
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval

from archspec.passes.common import PassResult, called_module, finish, set_module
from archspec.runtime import FrozenBatchNorm2d


def _fuse_conv_frozen_bn(conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> nn.Conv2d:
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    return fused


# (producer type, BatchNorm type) → the torch function that folds them
_FOLDERS: dict[tuple[type[nn.Module], type[nn.Module]], Callable[[Any, Any], nn.Module]] = {
    (nn.Conv2d, nn.BatchNorm2d): fuse_conv_bn_eval,
    (nn.Linear, nn.BatchNorm1d): fuse_linear_bn_eval,
    (nn.Conv2d, FrozenBatchNorm2d): _fuse_conv_frozen_bn,
}


def fold_bn(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        bn = called_module(gm, node)
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm | FrozenBatchNorm2d) or not node.args:
            continue
        src = node.args[0]
        producer = called_module(gm, src) if isinstance(src, fx.Node) else None
        folder = _FOLDERS.get((type(producer), type(bn))) if producer is not None else None
        # torch's folding needs the running statistics and the affine γ, β (linear, FrozenBatchNorm2d: always)
        usable = bn.running_mean is not None and getattr(bn, "affine", True)
        if folder is None or producer is None or len(src.users) != 1 or not usable:
            continue
        set_module(gm, str(src.target), folder(producer.eval(), bn.eval()))
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        rewrites += 1
    return finish(gm, "fold_bn", rewrites)
