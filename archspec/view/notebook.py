"""What a Report shows: one line as its repr, a table as its str, and in Jupyter the per-block table
and the network diagram (stages and repeats folded), as HTML.

``repr(report)`` is :func:`report_line`, ``str(report)`` :func:`report_text`, and
``Report._repr_html_`` calls :func:`report_html`; a compiled model carries its Report as
``model.archspec_report``. The diagrams ``render`` returns are ``graphviz.Digraph`` objects, which
Jupyter already shows as SVG. All spec text is escaped; without Graphviz's ``dot`` the table is
shown with a note instead of the diagram. Nothing here imports torch.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from archspec.errors import printable

if TYPE_CHECKING:
    from archspec.report import Report

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
