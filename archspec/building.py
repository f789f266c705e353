"""A model from a spec: the shaped graph compiled into a torch module that carries its report; with
``optimize``, the inference module. ``archspec.build`` (api.py) adds ``save_pretrained`` and timm's
arguments (create.py) around it; this module stands below both, so neither imports the other back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.collector import paused
from archspec.memo import analyze_kept
from archspec.pipeline import SpecLike, check_arguments
from archspec.report import MAX_ACTIVATIONS, attach_report, check_activations
from archspec.shapes import MAX_PARAMS


@paused
def build_model(
    spec: SpecLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    optimize: bool = False,
    max_params: int = MAX_PARAMS,
    max_activations: int = MAX_ACTIVATIONS,
    strict: bool = False,
) -> Any:
    """The compiled module of ``spec`` (the budgets checked before any weight is allocated)."""
    check_arguments(spec, overrides, max_params, max_activations)
    report = analyze_kept(spec, overrides, max_params=max_params, strict=strict)  # kept from an equal build
    check_activations(report, max_activations)
    from archspec.compile import compile_graph

    model = compile_graph(report.graph)
    attach_report(model, report)
    if optimize:
        from archspec.inference import optimize as _optimize

        model = _optimize(model)
    return model
