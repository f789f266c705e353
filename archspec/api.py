"""The public pipeline: check (no weights, no torch) and build (a torch module).

spec ──resolve──▶ Resolved ──expand──▶ OpGraph ──infer_shapes──▶ Report / compile ──▶ nn.Module
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archspec.errors import SpecError
from archspec.graph import expand
from archspec.ir import OpGraph
from archspec.report import (
    MAX_ACTIVATIONS,
    REPORT_ATTRIBUTE,
    Report,
    Row,
    activation_count,
    attach_report,
    check_activations,
    report_from,
    report_of,
)
from archspec.shapes import MAX_PARAMS, ShapeInfo, infer_shapes
from archspec.spec.load import Source
from archspec.spec.model import top_level_name_problem
from archspec.spec.resolve import Resolved, resolve

SpecLike = str | Path | Source | Mapping[str, Any]


def _check_arguments(spec: Any, overrides: Any, max_params: Any, max_activations: Any = MAX_ACTIVATIONS) -> None:
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
    if isinstance(max_activations, bool) or not isinstance(max_activations, int):
        raise TypeError(f"max_activations must be an int, not {type(max_activations).__name__}")


def _check_value_names(graph: OpGraph) -> None:
    """A node whose path has one segment names a value of the compiled forward: refuse its own names."""
    for _, record in graph.records():
        path = record.path
        problem = top_level_name_problem(path) if "." not in path else None
        if problem:
            raise SpecError(problem, record.loc, code="name", hint=f"rename it, e.g. {path}_1")


def shaped_graph(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, max_params: int = MAX_PARAMS
) -> tuple[Resolved, OpGraph, ShapeInfo]:
    """The front half of the pipeline, in one place: resolve → expand → shapes (what check, render and
    summary all start from)."""
    _check_arguments(spec, overrides, max_params)
    resolved = resolve(spec, overrides)
    graph = expand(resolved)
    _check_value_names(graph)
    return resolved, graph, infer_shapes(graph, max_params=max_params)


def analyze(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, max_params: int = MAX_PARAMS, strict: bool = False
) -> tuple[OpGraph, Report]:
    """The graph with shapes and the report; ``strict`` raises the first warning as a SpecError."""
    resolved, graph, _ = shaped_graph(spec, overrides, max_params)
    report = report_from(graph, resolved.digest)
    if strict and report.warnings:
        raise report.warnings[0].error()
    return graph, report


def check(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS, strict: bool = False
) -> Report:
    """Validate a spec (a path or YAML text) and return its shape report. Allocates no weights.

    Warnings (``report.warnings``) are raised as a SpecError instead when ``strict``. A mistake in the
    spec raises SpecError; arguments of the wrong type (``check(None)``, overrides that are not a
    mapping, a ``max_params`` that is not an int) raise TypeError naming the argument.
    """
    return analyze(spec, overrides, max_params, strict)[1]


def build(
    spec: SpecLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    optimize: bool = False,
    max_params: int = MAX_PARAMS,
    max_activations: int = MAX_ACTIVATIONS,
    strict: bool = False,
) -> Any:
    """Compile a spec (a path or YAML text) into a torch.nn.Module with generated straight-line forward.

    Refuses (a ``limit`` SpecError, before any weight is allocated) a network with more than
    ``max_params`` parameters, or whose forward pass of one image at the spec's input size computes
    more than ``max_activations`` values (every op's output summed).
    """
    _check_arguments(spec, overrides, max_params, max_activations)
    graph, report = analyze(spec, overrides, max_params, strict)
    check_activations(report, max_activations)
    from archspec.compile import compile_graph

    model = compile_graph(graph)
    attach_report(model, report)
    if optimize:
        from archspec.inference import optimize as _optimize

        model = _optimize(model)
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
