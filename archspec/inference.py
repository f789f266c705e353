"""The optimize stage: a compiled model → an inference-only model that runs faster.

    compiled GraphModule ──copy, eval──▶ remove_noops ─▶ fold_bn ─▶ fuse_parallel_convs
        ─▶ avoid_onednn_faults ─▶ fuse_conv_add ─▶ fuse_conv_act ─▶ to_layout (channels_last, optional bf16) ─▶ GraphModule

Each step is a pass in :mod:`archspec.passes` rewriting the torch.fx graph. The result computes
the same logits (within float rounding) but cannot be trained: BatchNorm is folded away,
parameters do not require gradients, and auxiliary heads are dropped.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes import (
    PassResult,
    avoid_onednn_faults,
    fold_bn,
    fuse_conv_act,
    fuse_conv_add,
    fuse_parallel_convs,
    remove_noops,
    to_layout,
)
from archspec.report import REPORT_ATTRIBUTE, attach_report


def optimize(
    model: nn.Module,
    dtype: torch.dtype | None = None,
    *,
    channels_last: bool = True,
    fuse_parallel: bool = True,
    fuse_act: bool = True,
    fuse_add: bool = False,
) -> fx.GraphModule:
    """An inference-only copy of ``model`` (an ``archspec.build`` result); ``model`` is left as it is.

    ``fuse_add`` (conv + residual add + ReLU in one oneDNN kernel) is off by default: side by side it
    showed no gain beyond the A/A noise (docs/performance.md), and it calls torch's private API.

    ``dtype=torch.bfloat16`` runs in bfloat16 (worth it where the CPU has bf16 instructions); the
    input and the logits stay float32. The steps taken are in ``result.archspec_passes``.
    """
    source = getattr(model, "_eval_gm", model)  # AuxModel: the eval-mode graph, without aux heads
    if not isinstance(source, fx.GraphModule):
        raise TypeError(f"optimize expects a model built by archspec.build, got {type(model).__name__}")
    gm = fx.GraphModule(copy.deepcopy(model), copy.deepcopy(source.graph), class_name=type(source).__name__)
    gm.delete_all_unused_submodules()
    gm.eval()
    results: list[PassResult] = [remove_noops(gm), fold_bn(gm)]
    if fuse_parallel:
        results.append(fuse_parallel_convs(gm))
    results.append(avoid_onednn_faults(gm))  # before fusing and the layout: oneDNN's faults (seed 808906)
    if fuse_add:
        results.append(fuse_conv_add(gm))
    if fuse_act:
        results.append(fuse_conv_act(gm))
    results.append(to_layout(gm, torch.channels_last if channels_last else None, dtype))
    gm.requires_grad_(False)
    setattr(gm, "archspec_passes", results)  # noqa: B010 - an attribute nn.Module does not declare
    report = getattr(model, REPORT_ATTRIBUTE, None)
    if report is not None:
        attach_report(gm, report)
    return gm
