"""Give every call of a shared module (a spec's ``share:``) its own copy, before the passes run.

The passes rewrite a module for the call they look at: BatchNorm folded into a conv's weights, an
activation fused into it, its weights repacked. A module called twice (CBAM's channel MLP on the
average- and the max-pooled vector) would take a rewrite meant for one call into the other. So the
inference module, which is never trained, holds one copy per call: the first call keeps the module,
each later call gets a deep copy beside it (``fc1_2``), and a tensor read twice (a shared layer scale) is
copied the same way. No pass then needs to know about sharing.
"""

from __future__ import annotations

import copy

import torch.fx as fx
import torch.nn as nn

from archspec.passes.common import PassResult, free_target, set_module


def unshare(gm: fx.GraphModule) -> PassResult:
    seen: set[str] = set()
    rewrites = 0
    for node in gm.graph.nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        target = str(node.target)
        if target not in seen:
            seen.add(target)
            continue
        new = free_target(gm, target)
        if node.op == "call_module":
            set_module(gm, new, copy.deepcopy(gm.get_submodule(target)))
        else:
            parent, _, leaf = new.rpartition(".")
            owner = gm.get_submodule(parent) if parent else gm
            tensor = gm.get_parameter(target)
            owner.register_parameter(leaf, nn.Parameter(tensor.detach().clone(), requires_grad=tensor.requires_grad))
        node.target = new
        rewrites += 1
    if rewrites:
        gm.graph.lint()
        gm.recompile()
    return PassResult("unshare", rewrites)
