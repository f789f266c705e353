"""The front half of the pipeline, in one place: spec ──resolve──▶ Resolved ──expand──▶ OpGraph
──infer_shapes──▶ a shaped OpGraph (what check, render, summary and build all start from).

Below the public API (archspec/api.py) and the views (render, view): they import this module,
never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archspec.collector import paused
from archspec.frozen import check_frozen
from archspec.graph import expand
from archspec.init_patterns import check_init_patterns
from archspec.ir import OpGraph
from archspec.language.load import Source
from archspec.language.resolve import Resolved, resolve
from archspec.report import Report, report_from
from archspec.shapes import MAX_PARAMS, ShapeInfo, infer_shapes
from archspec.suspicious import gate_warnings

SpecLike = str | Path | Source | Mapping[str, Any]


def check_arguments(spec: Any, overrides: Any, max_params: Any, max_activations: Any = None) -> None:
    """Misuse of the API is a TypeError naming the argument, as in Python's own functions."""
    if not isinstance(spec, (str, Path, Source, Mapping)):
        raise TypeError(
            "spec must be a path (str or pathlib.Path), YAML text (str) or a mapping (as yaml.safe_load "
            f"gives), not {type(spec).__name__}"
        )
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(
            "overrides must be a mapping of dotted keys to values, e.g. {'input.size': [331, 331]}, "
            f"not {type(overrides).__name__}"
        )
    if overrides is not None and not all(isinstance(k, str) for k in overrides):
        raise TypeError("overrides must be a mapping with str keys (dotted paths such as 'input.size')")
    if isinstance(max_params, bool) or not isinstance(max_params, int):
        raise TypeError(f"max_params must be an int, not {type(max_params).__name__}")
    if max_activations is not None and (isinstance(max_activations, bool) or not isinstance(max_activations, int)):
        raise TypeError(f"max_activations must be an int, not {type(max_activations).__name__}")


def shaped_graph(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, max_params: int = MAX_PARAMS
) -> tuple[Resolved, OpGraph, ShapeInfo]:
    """The front half of the pipeline, in one place: resolve → expand → shapes (what check, render and
    summary all start from)."""
    check_arguments(spec, overrides, max_params)
    resolved = resolve(spec, overrides)
    graph, info = shaped_resolved(resolved, max_params)
    return resolved, graph, info


def shaped_resolved(resolved: Resolved, max_params: int = MAX_PARAMS) -> tuple[OpGraph, ShapeInfo]:
    """:func:`shaped_graph` after ``resolve``: expand → shapes, with the checks between."""
    graph = expand(resolved)
    check_init_patterns(resolved, graph)
    info = infer_shapes(graph, max_params=max_params)
    check_frozen(resolved, graph)
    graph.net.warnings += gate_warnings(graph)
    return graph, info


@paused
def analyze(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS, strict: bool = False
) -> Report:
    """The report, its shaped graph (``report.graph``) for the stages after it; ``strict`` raises the
    first warning as a SpecError. ``check`` is the same after checking its arguments' types."""
    resolved, graph, _ = shaped_graph(spec, overrides, max_params)
    report = report_from(graph, resolved.digest)
    if strict and report.warnings:
        raise report.warnings[0].error()
    return report
