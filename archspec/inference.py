"""The optimize stage: a compiled model → an inference-only model that runs faster.

    compiled GraphModule ──copy, eval, unshare──▶ remove_noops ─▶ split_same_padding ─▶ standardize_convs ─▶ fold_bn
        ─▶ fold_preact ─▶ fuse_parallel_convs
        ─▶ avoid_onednn_faults ─▶ fuse_conv_add ─▶ fuse_conv_act ─▶ shift_same_padding ─▶ fuse_linear
        ─▶ fuse_gate ─▶ gate_into_conv ─▶ gate_before_conv ─▶ fuse_shuffle
        ─▶ dense_concat ─▶ concat_in_place ─▶ group_norm_channels_last
        ─▶ to_layout (channels_last, optional bf16) ─▶ GraphModule [─▶ torch.compile]

Each step is a pass in :mod:`archspec.passes` rewriting the torch.fx graph. The result computes
the same logits (within float rounding) but cannot be trained: BatchNorm is folded away,
parameters do not require gradients, and auxiliary heads are dropped.
"""

from __future__ import annotations

import copy
import ctypes
import os
import sys
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
    gate_before_conv,
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
    keep_memory: bool = True,
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

    ``keep_memory=True`` (the default) asks the C library's allocator, where it is glibc's, to keep freed
    memory for reuse instead of handing it back to the system (:func:`keep_freed_memory`): the
    process's setting, made once. ``keep_memory=False`` leaves the allocator as it is.

    ``compile=True`` also hands the optimized graph to ``torch.compile`` (inductor, with its
    ``freezing`` option: needs a C++ compiler), leaving the conv/linear + activation fusions to
    inductor (``fuse_conv_act``, ``fuse_linear`` and ``fuse_conv_add`` do not run), and compiles it
    at once, on a batch of 2 at the spec's input size; the seconds that took are in
    ``result.archspec_compile_s``. The result then is a wrapper module whose ``_orig_mod`` is the
    optimized GraphModule.
    """
    if keep_memory:
        keep_freed_memory()
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
    if not compile:
        direct_lookups(gm)
    setattr(gm, "archspec_passes", results)  # noqa: B010 - an attribute nn.Module does not declare
    report = getattr(model, REPORT_ATTRIBUTE, None)
    if report is not None:
        attach_report(gm, report)
    return _compiled(gm, report) if compile else gm


def direct_lookups(gm: nn.Module) -> int:
    """Let the generated forward reach each submodule without ``nn.Module.__getattr__``; how many were aliased.

    fx's code calls a module at ``features.1.0.block.0.0`` as ``getattr(getattr(self.features, "1"),
    "0").block...``; each step is a Python-level ``__getattr__`` looking in ``_modules`` (about 0.8 µs;
    500 a forward on EfficientNet-B0, 3-4 % of it at batch 1). Each child is also put in its parent's
    instance ``__dict__``, where attribute lookup finds it first. ``_modules`` stays the one registry
    (state_dict, ``named_modules``, ``.to()``, printing), and ``nn.Module.__setattr__`` replaces the
    alias with the registered child when a child is set again. Names the class has (a method
    ``float``, a property) are left alone: the alias would hide them."""
    aliased = 0
    for module in gm.modules():
        cls = type(module)
        for name, child in module._modules.items():
            if child is not None and not hasattr(cls, name):
                module.__dict__[name] = child
                aliased += 1
    return aliased


# glibc's mallopt parameters (malloc.h) and the values optimize sets: allocations under 1 GiB come from
# the heap rather than a fresh mapping each, and up to 1 GiB of free heap is kept rather than trimmed
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30
_kept: bool | None = None  # the answer of the one call per process


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory in the process for the next allocations; whether it took.

    A forward at batch 8 allocates feature maps of several to tens of MB and frees them before the
    next forward. glibc hands blocks that large back to the system (``munmap``, or trimming the top
    of the heap), so every forward maps them anew and the kernel zeroes every page on first touch:
    SE-ResNet-50 at batch 8 took 29,000 page faults per forward after ``optimize``, about 10 % of
    its time (docs/performance.md). torch.compile's generated code reuses its buffers and pays
    none; oneDNN's fused kernels allocate their outputs, so the freed memory is kept instead
    (``mallopt``: ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` at 1 GiB). The cost: the process keeps
    up to that much freed memory instead of returning it. Other C libraries (musl, macOS, Windows)
    are left as they are. Done once per process."""
    global _kept
    if _kept is None:
        _kept = _mallopt_keep()
    return _kept


def _mallopt_keep() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):  # type: ignore[union-attr]
            return False
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (AttributeError, OSError, ValueError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


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
    "gate_before_conv": gate_before_conv,  # after fuse_gate (its addcmul) and the conv fusions
    "fuse_shuffle": fuse_shuffle,
    "dense_concat": dense_concat,
    "concat_in_place": concat_in_place,
    "group_norm_channels_last": group_norm_channels_last,
    "to_layout": to_layout,
}
