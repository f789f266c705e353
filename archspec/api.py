"""The public pipeline: check (no weights, no torch) and build (a torch module).

spec ──resolve──▶ Resolved ──expand──▶ OpGraph ──infer_shapes──▶ Report / compile ──▶ nn.Module
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.errors import SpecError
from archspec.pipeline import SpecLike, analyze
from archspec.report import (
    MAX_ACTIVATIONS,
    REPORT_ATTRIBUTE,
    Report,
    Row,
    activation_count,
    attach_report,
    check_activations,
    report_of,
)
from archspec.shapes import MAX_PARAMS


def check(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS, strict: bool = False
) -> Report:
    """Validate a spec (a path or YAML text) and return its shape report. Allocates no weights.

    Warnings (``report.warnings``) are raised as a SpecError instead when ``strict``. A mistake in the
    spec raises SpecError; arguments of the wrong type (``check(None)``, overrides that are not a
    mapping, a ``max_params`` that is not an int) raise TypeError naming the argument.
    """
    return analyze(spec, overrides, max_params=max_params, strict=strict)


def build(
    spec: SpecLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    optimize: bool = False,
    max_params: int = MAX_PARAMS,
    max_activations: int = MAX_ACTIVATIONS,
    strict: bool = False,
    **timm_args: Any,
) -> Any:
    """Compile a spec (a path or YAML text) into a torch.nn.Module with generated straight-line forward.

    Refuses (a ``limit`` SpecError, before any weight is allocated) a network with more than
    ``max_params`` parameters, or whose forward pass of one image at the spec's input size computes
    more than ``max_activations`` values (every op's output summed).

    timm's model arguments, with timm's meanings (archspec/create.py): ``pretrained``,
    ``num_classes``, ``in_chans``, ``drop_rate``, ``drop_path_rate``, ``features_only``,
    ``out_indices``, ``pretrained_cfg_overlay``.
    """
    if timm_args:
        from archspec.create import create

        limits: dict[str, Any] = {"max_params": max_params, "max_activations": max_activations, "strict": strict}
        return create(spec, overrides, optimize=optimize, **limits, **timm_args)
    from archspec.building import build_model
    from archspec.hub import attach_save_pretrained

    model = build_model(spec, overrides, optimize=optimize, max_params=max_params, max_activations=max_activations, strict=strict)
    attach_save_pretrained(model, spec, overrides, optimized=optimize)
    return model


__all__ = [
    "check",
    "build",
    "analyze",
    "Report",
    "Row",
    "SpecError",
    "MAX_ACTIVATIONS",
    "REPORT_ATTRIBUTE",
    "activation_count",
    "attach_report",
    "check_activations",
    "report_of",
]
