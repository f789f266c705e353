"""The optimize stage: a compiled model → an inference-only model that runs faster.

    compiled GraphModule ──copy, eval, unshare──▶ remove_noops ─▶ split_same_padding ─▶ standardize_convs ─▶ fold_bn
        ─▶ fold_preact ─▶ fuse_parallel_convs
        ─▶ avoid_onednn_faults ─▶ fuse_conv_add ─▶ fuse_conv_act ─▶ shift_same_padding ─▶ fuse_linear
        ─▶ fuse_gate ─▶ gate_into_conv ─▶ fuse_shuffle
        ─▶ dense_concat ─▶ concat_in_place ─▶ group_norm_channels_last
        ─▶ to_layout (channels_last, optional bf16) ─▶ GraphModule [─▶ torch.compile]

Each step is a pass in :mod:`archspec.passes` rewriting the torch.fx graph. The result computes
the same logits (within float rounding) but cannot be trained: BatchNorm is folded away,
parameters do not require gradients, and auxiliary heads are dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.passes import (
    PassResult,
    avoid_onednn_faults,
    concat_in_place,
    dense_concat,
    fold_bn,
    fold_preact,
    fuse_conv_act,
    fuse_conv_add,
    fuse_gate,
    fuse_linear,
    fuse_parallel_convs,
    fuse_shuffle,
    gate_into_conv,
    group_norm_channels_last,
    remove_noops,
    shift_same_padding,
    split_same_padding,
    standardize_convs,
    to_layout,
)
from archspec.passes.unshare import unshare
from archspec.report import REPORT_ATTRIBUTE, attach_report


def optimize(
    model: nn.Module,
    dtype: torch.dtype | None = None,
    *,
    channels_last: bool = True,
    fuse_parallel: bool = True,
    fuse_act: bool = True,
    fuse_add: bool = True,
    skip: Collection[str] = (),
    compile: bool = False,  # noqa: A002 - the switch's name in the issue and in torch
) -> fx.GraphModule:
    """An inference-only copy of ``model`` (an ``archspec.build`` result); ``model`` is left as it is.

    ``fuse_add=False`` leaves the residual sums (and the ReLU after them) out of the convs; by default
    the last conv of a residual body adds the shortcut and applies the ReLU as oneDNN post-ops, writing
    into the shortcut's memory where nothing reads it later (docs/performance.md: 9-10 % of ResNet-50's
    and ResNeXt-50's forward at batch 8).
    ``skip`` names passes not to run (``"fuse_shuffle"``, ``"dense_concat"``, ...; see
    :data:`PASSES`).

    ``dtype=torch.bfloat16`` runs in bfloat16 (worth it where the CPU has bf16 instructions); the
    input and the logits stay float32. The steps taken are in ``result.archspec_passes``.

    ``compile=True`` also hands the optimized graph to ``torch.compile`` (inductor, with its
    ``freezing`` option: needs a C++ compiler), leaving the conv/linear + activation fusions to
    inductor (``fuse_conv_act``, ``fuse_linear`` and ``fuse_conv_add`` do not run), and compiles it
    at once, on a batch of 2 at the spec's input size; the seconds that took are in
    ``result.archspec_compile_s``. The result then is a wrapper module whose ``_orig_mod`` is the
    optimized GraphModule.
    """
    unknown = set(skip) - set(PASSES)
    if unknown:
        raise ValueError(f"skip: no pass named {', '.join(sorted(unknown))} (passes: {', '.join(PASSES)})")
    source = getattr(model, "_eval_gm", model)  # AuxModel: the eval-mode graph, without aux heads
    if not isinstance(source, fx.GraphModule):
        raise TypeError(f"optimize expects a model built by archspec.build, got {type(model).__name__}")
    gm = fx.GraphModule(copy.deepcopy(model), copy.deepcopy(source.graph), class_name=type(source).__name__)
    gm.delete_all_unused_submodules()
    gm.eval()
    shared = unshare(gm)  # one copy per call of a shared module: no pass below may rewrite one for two calls
    # Under compile=True inductor fuses convs and linears with their activations itself (and cannot
    # lower oneDNN's fused calls on weights that are module parameters): those passes are left out.
    wanted = {
        "fuse_parallel_convs": fuse_parallel,
        "fuse_conv_add": fuse_add and not compile,
        "fuse_conv_act": fuse_act and not compile,
        "fuse_linear": fuse_act and not compile,
        "to_layout": True,
    }
    results: list[PassResult] = [shared] if shared.rewrites else []
    for name, run in PASSES.items():
        if wanted.get(name, True) and name not in skip:
            results.append(
                run(gm) if name != "to_layout" else to_layout(gm, torch.channels_last if channels_last else None, dtype)
            )
    gm.requires_grad_(False)
    setattr(gm, "archspec_passes", results)  # noqa: B010 - an attribute nn.Module does not declare
    report = getattr(model, REPORT_ATTRIBUTE, None)
    if report is not None:
        attach_report(gm, report)
    return _compiled(gm, report) if compile else gm


def _compiled(gm: fx.GraphModule, report: object) -> Any:
    """``torch.compile(gm)``, compiled now on a batch of 2 at the spec's input size (timed)."""
    import time

    size = getattr(report, "input_size", None)
    channels = getattr(report, "input_channels", 3)
    # freezing: the weights are constants of the compiled graph, so inductor prepacks them for oneDNN
    # and fuses the activations into the convs and linears (what fuse_conv_act/fuse_linear do here)
    compiled = torch.compile(gm, options={"freezing": True})
    if size is not None:
        x = torch.randn(2, channels, *size, dtype=torch.float32, device=next(iter(gm.parameters())).device)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(x)
        setattr(compiled, "archspec_compile_s", time.perf_counter() - start)  # noqa: B010
    setattr(compiled, "archspec_passes", gm.archspec_passes)  # noqa: B010
    return compiled


# Every pass, in the order optimize runs them (``skip`` takes these names).
PASSES: dict[str, Callable[[fx.GraphModule], PassResult]] = {
    "remove_noops": remove_noops,
    "split_same_padding": split_same_padding,
    "standardize_convs": standardize_convs,
    "fold_bn": fold_bn,
    "fold_preact": fold_preact,
    "fuse_parallel_convs": fuse_parallel_convs,
    "avoid_onednn_faults": avoid_onednn_faults,  # before fusing and the layout: oneDNN's faults (seed 808906)
    "fuse_conv_add": fuse_conv_add,
    "fuse_conv_act": fuse_conv_act,
    "shift_same_padding": shift_same_padding,  # the same padding back into the fused conv, as a shifted kernel
    "fuse_linear": fuse_linear,
    "fuse_gate": fuse_gate,
    "gate_into_conv": gate_into_conv,  # after fuse_gate (a gate before a sum) and the conv fusions
    "fuse_shuffle": fuse_shuffle,
    "dense_concat": dense_concat,
    "concat_in_place": concat_in_place,
    "group_norm_channels_last": group_norm_channels_last,
    "to_layout": to_layout,
}
