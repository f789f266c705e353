"""``archspec sweep --compare A B``: two sweeps' EDFs in one plot, and a line of statistics for each."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from archspec.errors import Loc, SpecError
from archspec.sweep.analysis import plot_edf


def _results(folder: Path) -> list[dict[str, Any]]:
    path = folder / "results.json" if folder.is_dir() else folder
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SpecError(
            f"cannot read the results of a sweep: {e}",
            Loc(str(path), 0, 0),
            code="io",
            hint="name a sweep's --out folder (it holds results.json)",
        ) from None
    if not isinstance(rows, list):
        raise SpecError("not the results of a sweep", Loc(str(path), 1, 1), code="io")
    return [r for r in rows if isinstance(r, dict) and r.get("status") == "accepted"]


def _values(rows: list[dict[str, Any]], metric: str) -> list[float]:
    return [float(r[metric]) for r in rows if r.get(metric) is not None]


def compare(a: Path, b: Path, out: Path) -> str:
    """Plot the EDFs of ``a`` and ``b`` (the error if both have it, else the latency, else the MACs)
    into OUT/compare_edf.png and .svg; returns the lines to print."""
    ra, rb = _results(a), _results(b)
    metric = next(
        (m for m in ("error", "latency_ms", "macs") if all(any(r.get(m) is not None for r in rs) for rs in (ra, rb))), "macs"
    )
    groups = {str(a): _values(ra, metric), str(b): _values(rb, metric)}
    out.mkdir(parents=True, exist_ok=True)
    paths = plot_edf(groups, metric, out / "compare_edf")
    lines = [f"{metric}: n, min, median"]
    for label, values in groups.items():
        if values:
            lines.append(f"{label}: {len(values)}, {min(values):.4g}, {statistics.median(values):.4g}")
        else:
            lines.append(f"{label}: no accepted variant")
    lines += [f"wrote {p}" for p in paths]
    return "\n".join(lines)
