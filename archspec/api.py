"""The public pipeline: check (no weights, no torch) and build (a torch module).

spec ──resolve──▶ Resolved ──expand──▶ OpGraph ──infer_shapes──▶ Report / compile ──▶ nn.Module
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archspec.errors import Loc, SpecError, SpecWarning, printable
from archspec.graph import expand
from archspec.init_patterns import check_init_patterns
from archspec.ir import OpGraph
from archspec.shapes import MAX_PARAMS, ShapeInfo, infer_shapes, shaped_ops
from archspec.sizes import Accepted, accepted
from archspec.spec.load import Source
from archspec.spec.model import top_level_name_problem
from archspec.spec.resolve import Resolved, resolve
from archspec.suspicious import gate_warnings
from archspec.symbolic import Shape

SpecLike = str | Path | Source | Mapping[str, Any]

# A network without many parameters can still compute huge tensors (a wide map at a large input
# size). ``build`` bounds one forward pass at the spec's input size, as ``max_params`` bounds the
# weights: every op's output summed (an upper bound of what is alive at once), for one image;
# 2**30 values are 4 GiB in float32. ``archspec export`` applies it to its example batch.
MAX_ACTIVATIONS = 1 << 30


@dataclass
class Row:
    """One line of a report: a top-level block or op."""

    path: str
    label: str
    kind: str
    shape: Shape
    params: int
    macs: int
    line: int

    def as_dict(self, h: int, w: int) -> dict[str, Any]:
        return {
            "path": self.path,
            "block": self.label,
            "kind": self.kind,
            "output_shape": list(self.shape.at(h, w)),
            "output_formula": self.shape.formula(),
            "params": self.params,
            "macs": self.macs,
            "line": self.line,
        }


@dataclass
class Report:
    """What `check` knows about a spec without allocating a single weight."""

    name: str
    file: str
    input_channels: int
    input_size: tuple[int, int]
    min_input_size: tuple[int, int]
    outputs: dict[str, Shape]
    rows: list[Row] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    graph: OpGraph | None = field(default=None, repr=False)
    accepted: Accepted = field(default_factory=Accepted)  # input sizes eval mode accepts (the main output)
    train_accepted: Accepted = field(default_factory=Accepted)  # ... and training mode (every output)
    warnings: list[SpecWarning] = field(default_factory=list)  # legal but likely unintended (partial merges)
    digest: str = ""  # SHA-256 of the resolved spec (Resolved.digest): which design this is, whatever its file

    @property
    def max_input_size(self) -> tuple[int, int] | None:
        """Set when a flatten fixes the size of a map that grows with the input (NEVER: unbounded axis)."""
        return self.accepted.max_size

    @property
    def train_min_input_size(self) -> tuple[int, int]:
        """Smallest input training mode accepts: the aux heads may need more than the main output."""
        return self.train_accepted.min_size

    @property
    def output_shape(self) -> tuple[int, ...]:
        h, w = self.input_size
        return self.outputs["logits"].at(h, w)

    def _repr_html_(self) -> str:  # Jupyter: the table of blocks and the network diagram
        from archspec.view.notebook import report_html

        return report_html(self)

    def __repr__(self) -> str:  # one line: <Report resnet18: 11,689,512 params, 1.82 GMACs, min 1×1>
        from archspec.view.notebook import report_line

        return report_line(self)

    def __str__(self) -> str:  # the summary table, as `archspec summary` prints it
        from archspec.view.notebook import report_text

        return report_text(self)

    def as_dict(self) -> dict[str, Any]:
        h, w = self.input_size
        return {
            "name": self.name,
            "file": self.file,
            "input_channels": self.input_channels,
            "input_size": [h, w],
            "min_input_size": list(self.min_input_size),
            "max_input_size": list(self.max_input_size) if self.max_input_size else None,
            "accepted_input_sizes": self.accepted.describe(),
            "train_min_input_size": list(self.train_min_input_size),
            "output_shape": list(self.output_shape),
            "outputs": {k: list(v.at(h, w)) for k, v in self.outputs.items()},
            "params": self.params,
            "macs": self.macs,
            "blocks": [r.as_dict(h, w) for r in self.rows],
            "warnings": [
                {"message": x.message, "file": x.loc.file, "line": x.loc.line, "column": x.loc.column, "code": x.code}
                for x in self.warnings
            ],
        }


REPORT_ATTRIBUTE = "archspec_report"  # where a built model keeps what check found


def attach_report(model: Any, report: Report) -> None:
    """Keep ``report`` on the model ``build`` made (or a model derived from it, e.g. by optimize)."""
    setattr(model, REPORT_ATTRIBUTE, report)


def report_of(model: Any) -> Report:
    """The report of a model archspec built; a TypeError naming the problem for any other model."""
    report = getattr(model, REPORT_ATTRIBUTE, None)
    if not isinstance(report, Report):
        raise TypeError(
            f"{type(model).__name__} was not built by archspec (it has no {REPORT_ATTRIBUTE}); build it with archspec.build"
        )
    return report


def activation_count(report: Report, batch: int = 1) -> int:
    """Values a forward pass of ``batch`` images at the spec's input size computes: every op's output."""
    assert report.graph is not None
    h, w = report.input_size
    total = 0
    for _, record in report.graph.records():
        shape = record.shape
        if shape is not None:
            total += math.prod(shape.at(h, w))
    return total * batch


def check_activations(
    report: Report, max_activations: int = MAX_ACTIVATIONS, batch: int = 1, doing: str = "running the network"
) -> None:
    """Refuse, before any weight or tensor is made, a network whose forward pass exceeds the budget."""
    count = activation_count(report, batch)
    if count > max_activations:
        h, w = report.input_size
        images = "one image" if batch == 1 else f"a batch of {batch}"
        raise SpecError(
            f"{doing} at the input size {h}×{w} computes {count:,} activation values ({images}), "
            f"more than the budget of {max_activations:,}",
            Loc(printable(report.file), 0, 0),
            code="limit",
            hint="lower input.size (--set input.size=[H,W]) or raise the budget "
            "(--max-activations N; max_activations=N in Python)",
        )


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
    check_init_patterns(resolved, graph)
    info = infer_shapes(graph, max_params=max_params)
    graph.net.warnings += gate_warnings(graph)
    return resolved, graph, info


def analyze(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, max_params: int = MAX_PARAMS, strict: bool = False
) -> tuple[OpGraph, Report]:
    """The graph with shapes and the report; ``strict`` raises the first warning as a SpecError."""
    resolved, graph, info = shaped_graph(spec, overrides, max_params)
    report = _report(graph, info.min_size, info.outputs)
    report.accepted = info.accepted["logits"]
    report.train_accepted = accepted(graph, graph.net.outputs.values())
    report.warnings = list(graph.net.warnings)
    report.digest = resolved.digest
    if strict and report.warnings:
        raise report.warnings[0].error()
    return graph, report


def _report(graph: OpGraph, min_size: tuple[int, int], outputs: dict[str, Shape]) -> Report:
    net = graph.net
    h, w = net.input.size
    per_unit_params: dict[str, int] = {}
    per_unit_macs: dict[str, int] = {}
    total_params = total_macs = 0
    for record, op, shapes in shaped_ops(graph):
        p = op.param_count(record.params, shapes, record.out)
        m = op.macs(record.params, shapes, record.out, h, w)
        record.param_count, record.mac_count = p, m
        per_unit_params[record.unit] = per_unit_params.get(record.unit, 0) + p
        per_unit_macs[record.unit] = per_unit_macs.get(record.unit, 0) + m
        total_params += p
        if not record.unit or record.unit not in net.aux_weights:
            total_macs += m
    rows = []
    for u in net.units:
        rows.append(
            Row(
                u.path,
                u.label,
                u.kind,
                graph.at(u.output).out,
                per_unit_params.get(u.path, 0),
                per_unit_macs.get(u.path, 0),
                u.loc.line,
            )
        )
    return Report(
        net.name, net.file, net.input.channels, net.input.size, min_size, outputs, rows, total_params, total_macs, graph
    )


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
    _check_arguments(spec, overrides, max_params, max_activations)
    graph, report = analyze(spec, overrides, max_params, strict)
    check_activations(report, max_activations)
    from archspec.compile import compile_graph

    model = compile_graph(graph)
    attach_report(model, report)
    if optimize:
        from archspec.inference import optimize as _optimize

        model = _optimize(model)
    from archspec.hub import attach_save_pretrained

    attach_save_pretrained(model, spec, overrides)
    return model


__all__ = ["check", "build", "analyze", "Report", "Row", "SpecError", "MAX_ACTIVATIONS"]
