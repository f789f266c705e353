"""A sweep's results, read back from the study: the table (results.csv, results.json), one standalone
spec per accepted variant (specs/trial-N.yaml), the EDF and Pareto plots, and index.html."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from archspec.fileio import write_atomic
from archspec.sweep.analysis import pareto_front, plot_edf, plot_pareto
from archspec.sweep.space import METRICS, LoadedSpace

COLUMNS = ["trial", "status", "reason", *METRICS, "epochs", "spec", "worker", "seconds", "values", "overrides"]


def rows_of(study: Any) -> list[dict[str, Any]]:
    """One row per trial, in trial order; a trial still running or failed says so."""
    from optuna.trial import TrialState

    from archspec.sweep.study import ATTR

    rows = []
    for t in study.get_trials(deepcopy=False):
        record = t.user_attrs.get(ATTR) or {}
        status = record.get("status", "")
        if t.state == TrialState.FAIL:
            status = "failed"  # its reason, when it has one, is in the record
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            status = "running"
        metrics = record.get("metrics") or {}
        worker = record.get("worker") or {}
        row: dict[str, Any] = {
            "trial": t.number,
            "status": status,
            "reason": record.get("reason") or ("its worker stopped while measuring it" if status == "failed" else ""),
            **{m: metrics.get(m) for m in METRICS},
            "epochs": record.get("epochs"),
            "spec": f"specs/trial-{t.number:04d}.yaml" if status in ("accepted", "pruned") else "",
            "worker": f"{worker.get('host', '')}:{worker.get('pid', '')}" if worker else "",
            "seconds": record.get("seconds"),
            "values": record.get("values") or {},
            "overrides": record.get("overrides") or {},
        }
        rows.append(row)
    return rows


def write_table(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(row[k], sort_keys=True) if k in ("values", "overrides") else _cell(row[k]) for k in COLUMNS}
        )
    write_atomic(out / "results.csv", buffer.getvalue())
    write_atomic(out / "results.json", json.dumps(list(rows), indent=1, default=str) + "\n")


def _cell(value: Any) -> Any:
    return "" if value is None else value


def write_specs(space: LoadedSpace, rows: Sequence[Mapping[str, Any]], out: Path) -> int:
    """specs/trial-N.yaml for every accepted row not yet written (a restart writes only the new ones)."""
    from archspec.sweep.standalone import standalone_yaml

    folder = out / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for row in rows:
        if not row["spec"] or (out / row["spec"]).exists():
            continue
        sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in row["overrides"].items())
        header = f"trial {row['trial']} of the space {space.name} ({space.source.file}): {space.spec} {sets}"
        write_atomic(out / row["spec"], standalone_yaml(space.spec, row["overrides"], header))
        written += 1
    return written


def write_best(rows: Sequence[Mapping[str, Any]], study: Any, out: Path) -> Mapping[str, Any] | None:
    """best.yaml: the standalone spec of the accepted variant best in the study's first objective."""
    goals = study.user_attrs.get("objectives") or []
    accepted = [r for r in rows if r["status"] == "accepted" and goals and r.get(goals[0]) is not None]
    if not accepted:
        return None
    sign = -1 if study.directions[0].name == "MAXIMIZE" else 1
    best = min(accepted, key=lambda r: (sign * float(r[goals[0]]), r["trial"]))
    text = (out / best["spec"]).read_text(encoding="utf-8")
    write_atomic(out / "best.yaml", f"# the best accepted variant by {goals[0]}: {best[goals[0]]}\n{text}")
    return best


def _y_metric(rows: Sequence[Mapping[str, Any]]) -> str | None:
    for name in ("error", "latency_ms"):
        if any(r.get(name) is not None for r in rows):
            return name
    return None


def write_plots(rows: Sequence[Mapping[str, Any]], out: Path, label: str) -> list[Path]:
    """The EDF of the first measured metric (error, else latency, else MACs), and the Pareto fronts of
    it against MACs, parameters and latency."""
    accepted = [r for r in rows if r["status"] == "accepted"]
    y = _y_metric(accepted)
    paths = []
    metric = y or "macs"
    values = [float(r[metric]) for r in accepted if r.get(metric) is not None]
    if values:
        paths += plot_edf({label: values}, metric, out / f"edf_{metric}")
    if y is not None:
        for x in ("macs", "params", "latency_ms"):
            if x != y and any(r.get(x) is not None for r in accepted):
                paths += plot_pareto(accepted, x, y, out / f"pareto_{y}_{x}")
    return paths


def write_diagrams(rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """diagrams/trial-N.svg, the network diagram of each Pareto-optimal variant (error or latency
    against MACs), drawn from its standalone spec; none without Graphviz's dot."""
    import shutil

    y = _y_metric(rows)
    if y is None or shutil.which("dot") is None:
        return []
    from archspec.api import analyze
    from archspec.render import render

    folder = out / "diagrams"
    folder.mkdir(exist_ok=True)
    by_trial = {r["trial"]: r for r in rows}
    written = []
    for trial in front_trials(rows, "macs", y):
        path = folder / f"trial-{trial:04d}.svg"
        if not path.exists():
            svg = render(analyze(out / by_trial[trial]["spec"]).graph).pipe(format="svg")
            write_atomic(path, svg)
        written.append(path)
    return written


def front_trials(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> list[int]:
    usable = [r for r in rows if r["status"] == "accepted" and r.get(x) is not None and r.get(y) is not None]
    return [usable[i]["trial"] for i in pareto_front([(float(r[x]), float(r[y])) for r in usable])]


def write_html(space: LoadedSpace, rows: Sequence[Mapping[str, Any]], counts: Mapping[str, int], out: Path) -> None:
    """index.html: one file holding the counts, the plots (inline SVG, each point a link to its row)
    and the table; each row links to its standalone spec and, when drawn, its network diagram."""
    parts = [f"<h1>Sweep of {html.escape(space.name)}</h1>", "<p>" + ", ".join(f"{v} {k}" for k, v in counts.items()) + "</p>"]
    for svg in sorted(out.glob("*.svg")):
        text = svg.read_text(encoding="utf-8")
        parts.append(f"<figure>{text[text.find('<svg') :]}<figcaption>{html.escape(svg.stem)}</figcaption></figure>")
    y = _y_metric(rows)
    front = set(front_trials(rows, "macs", y)) if y else set()
    header = "".join(f"<th>{html.escape(c)}</th>" for c in ["trial", "status", *METRICS, "values", "reason"])
    body = []
    for r in rows:
        links = ""
        if r["spec"]:
            links = f' <a href="{html.escape(r["spec"])}">spec</a>'
            diagram = f"diagrams/trial-{r['trial']:04d}.svg"
            if (out / diagram).exists():
                links += f' <a href="{diagram}">diagram</a>'
        cells = [f"{r['trial']}{links}", r["status"], *(_fmt(r.get(m)) for m in METRICS)]
        cells += [json.dumps(r["values"], sort_keys=True), r["reason"]]
        mark = ' class="front"' if r["trial"] in front else ""
        body.append(
            f'<tr id="trial-{r["trial"]}"{mark}>'
            + "".join(f"<td>{html.escape(str(c)) if i else c}</td>" for i, c in enumerate(cells))
            + "</tr>"
        )
    parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    head = f"<meta charset='utf-8'><title>{html.escape(space.name)}</title><style>{_CSS}</style>"
    page = f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>\n"
    write_atomic(out / "index.html", page)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


_CSS = (
    "body{font:14px sans-serif;margin:1em}figure{display:inline-block;margin:0 1em 1em 0}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "tr.front{background:#fde}tr:target{outline:2px solid #c00}"
)
