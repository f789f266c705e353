"""Remove ops that do nothing at inference: dropout and drop-path (eval mode) and identity modules."""

from __future__ import annotations

import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.passes.common import PassResult, called_module, finish
from archspec.runtime import DropPath

_NOOP_MODULES = (nn.Dropout, nn.Dropout2d, nn.Identity, DropPath)


def remove_noops(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for node in list(gm.graph.nodes):
        noop = isinstance(called_module(gm, node), _NOOP_MODULES) or (
            node.op == "call_function" and node.target in (F.dropout, F.dropout2d) and not node.kwargs.get("training", False)
        )
        if noop:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            rewrites += 1
    return finish(gm, "remove_noops", rewrites)
