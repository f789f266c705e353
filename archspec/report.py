"""What ``check`` knows about a spec, as data: :class:`Report` and its rows, read off a shaped OpGraph.

Also where a built model keeps its report (``attach_report``, ``report_of``), the activation
budget every stage that runs the network applies (``check_activations``), and what a Report shows:
one line as its repr (:func:`report_line`), a table as its str (:func:`report_text`), and in Jupyter
the per-block table and the network diagram (stages and repeats folded) as HTML
(:func:`report_html`; a compiled model carries its Report as ``model.archspec_report``). All spec
text in them is escaped; without Graphviz's ``dot`` the table is shown with a note instead of the
diagram. This module imports nothing of the pipeline but the IR, so that any stage may read a
report; only the diagram, when Jupyter asks for it, is drawn by archspec/render.py. Nothing here
imports torch.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from archspec.errors import Loc, SpecError, SpecWarning, printable
from archspec.ir import OpGraph
from archspec.sizes import Accepted
from archspec.symbolic import Shape

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
    graph: OpGraph = field(default_factory=OpGraph, repr=False)  # the shaped graph it reports on
    accepted: Accepted = field(default_factory=Accepted)  # input sizes eval mode accepts (the main output)
    train_accepted: Accepted = field(default_factory=Accepted)  # ... and training mode (every output)
    warnings: list[SpecWarning] = field(default_factory=list)  # legal but likely unintended (partial merges)
    main: tuple[str, ...] = ("logits",)  # the outputs eval mode returns (the spec's ``outputs:``, else logits)
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
        return self.outputs[self.main[0]].at(h, w)

    def _repr_html_(self) -> str:  # Jupyter: the table of blocks and the network diagram
        return report_html(self)

    def __repr__(self) -> str:  # one line: <Report resnet18: 11,689,512 params, 1.81 GMACs, min 1×1>
        return report_line(self)

    def __str__(self) -> str:  # the block table: output at the input size, params, MACs, and the totals
        return report_text(self)

    def totals_dict(self) -> dict[str, Any]:
        """The network's own numbers, as JSON (the head of ``check --json`` and ``summary --json``)."""
        h, w = self.input_size
        return {
            "name": self.name,
            "file": self.file,
            "input_channels": self.input_channels,
            "input_size": [h, w],
            "min_input_size": list(self.min_input_size),
            "output_shape": list(self.output_shape),
            "outputs": {k: list(v.at(h, w)) for k, v in self.outputs.items()},
            "params": self.params,
            "macs": self.macs,
        }

    def as_dict(self) -> dict[str, Any]:
        h, w = self.input_size
        return {
            **self.totals_dict(),
            "max_input_size": list(self.max_input_size) if self.max_input_size else None,
            "accepted_input_sizes": self.accepted.describe(),
            "train_min_input_size": list(self.train_min_input_size),
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


def report_from(graph: OpGraph, digest: str = "") -> Report:
    """The report of a graph shape inference has run over: one row per top-level block or op, the
    counts and accepted sizes archspec/shapes.py wrote on the IR (nothing is computed again)."""
    net = graph.net
    per_unit_params: dict[str, int] = {}
    per_unit_macs: dict[str, int] = {}
    for _, record in graph.records():
        per_unit_params[record.unit] = per_unit_params.get(record.unit, 0) + record.param_count
        per_unit_macs[record.unit] = per_unit_macs.get(record.unit, 0) + record.mac_count
    rows = [
        Row(
            u.path,
            u.label,
            u.kind,
            graph.at(u.output).out,
            per_unit_params.get(u.path, 0),
            per_unit_macs.get(u.path, 0),
            u.loc.line,
        )
        for u in net.units
    ]
    assert net.min_size is not None, "shapes.py has not run"
    return Report(
        net.name,
        net.file,
        net.input.channels,
        net.input.size,
        net.min_size,
        {name: graph.at(n).out for name, n in net.outputs.items()},
        rows,
        net.params,
        net.macs,
        graph,
        accepted=net.accepted,
        train_accepted=net.train_accepted,
        warnings=list(net.warnings),
        main=net.main,
        digest=digest,
    )


# ---- what a report shows ------------------------------------------------------------------------
STYLE = (
    "<style>.archspec-report table{border-collapse:collapse;font-size:12px}"
    ".archspec-report td,.archspec-report th{padding:1px 8px;text-align:left}"
    ".archspec-report td.n{text-align:right;font-variant-numeric:tabular-nums}</style>"
)


def macs_text(macs: int) -> str:
    """``1.82 GMACs``, ``56.3 MMACs``, ``920 MACs``."""
    for scale, unit in ((1e9, "GMACs"), (1e6, "MMACs"), (1e3, "KMACs")):
        if macs >= scale:
            return f"{macs / scale:.3g} {unit}" if macs < 100 * scale else f"{macs / scale:,.0f} {unit}"
    return f"{macs} MACs"


def report_line(report: Report) -> str:
    mh, mw = report.min_input_size
    return f"<Report {printable(report.name)}: {report.params:,} params, {macs_text(report.macs)}, min {mh}×{mw}>"


def report_text(report: Report) -> str:
    """The blocks' table (output at the input size, params, MACs) and the totals, in plain text."""
    h, w = report.input_size
    rows = [("block", "path", f"output at {h}×{w}", "params", "MACs")]
    rows += [(printable(r.label), printable(r.path), r.shape.text(h, w), f"{r.params:,}", f"{r.macs:,}") for r in report.rows]
    rows.append(("total", "", "×".join(map(str, report.output_shape)), f"{report.params:,}", f"{report.macs:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[i].ljust(widths[i]) if i < 3 else row[i].rjust(widths[i]) for i in range(5)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * wd for wd in widths)
    mh, mw = report.min_input_size
    head = f"{printable(report.name)} ({printable(report.file)}): input {report.input_channels}×{h}×{w}, minimum {mh}×{mw}"
    return "\n".join([head, line(rows[0]), rule, *map(line, rows[1:-1]), rule, line(rows[-1])])


def report_table(report: Report) -> str:
    h, w = report.input_size
    head = f"<tr><th>block</th><th>path</th><th>output at {h}×{w}</th><th>output in H, W</th><th>params</th><th>MACs</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(r.label)}</td><td>{html.escape(r.path)}</td><td>{r.shape.text(h, w)}</td>"
        f'<td>{html.escape(r.shape.formula())}</td><td class="n">{r.params:,}</td><td class="n">{r.macs:,}</td></tr>'
        for r in report.rows
    )
    out = "×".join(map(str, report.output_shape))
    total = (
        f'<tr><th>total</th><td></td><td>{out}</td><td></td><td class="n">{report.params:,}</td>'
        f'<td class="n">{report.macs:,}</td></tr>'
    )
    return f"<table>{head}{rows}{total}</table>"


def report_svg(report: Report) -> str | None:
    """The network view as inline SVG, or None without Graphviz's ``dot``."""
    import graphviz

    from archspec.render import render

    if report.graph is None:
        return None
    try:
        svg: str = render(report.graph).pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound:
        return None
    return svg[svg.index("<svg") :]


def report_html(report: Report) -> str:
    h, w = report.input_size
    mh, mw = report.min_input_size
    facts = (
        f"<p><b>{html.escape(report.name)}</b> ({html.escape(report.file)}): input "
        f"{report.input_channels}×{h}×{w}, {report.params:,} parameters, {report.macs / 1e9:.3f} GMACs, "
        f"minimum input size {mh}×{mw}</p>"
    )
    svg = report_svg(report)
    drawing = (
        f"<details open><summary>network</summary>{svg}</details>"
        if svg is not None
        else "<p><i>install Graphviz (apt-get install graphviz) to see the diagram here</i></p>"
    )
    return f'<div class="archspec-report">{STYLE}{facts}{report_table(report)}{drawing}</div>'
