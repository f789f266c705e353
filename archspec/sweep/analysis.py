"""Comparing variants and spaces: empirical distribution functions and Pareto fronts (pure Python),
and their plots (matplotlib, imported only to draw).

The EDF of a space's errors is the RegNet paper's tool for comparing design spaces
(Radosavovic et al. 2020, section 3.1): F(e) is the fraction of its models with error at most e; a
space whose curve lies higher and to the left holds more good models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MARKERS = "os^Dv"


def edf(values: Sequence[float]) -> list[tuple[float, float]]:
    """The steps of the empirical distribution function: (x, fraction of values ≤ x) at each distinct x."""
    xs = sorted(values)
    n = len(xs)
    steps: list[tuple[float, float]] = []
    for i, x in enumerate(xs, 1):
        if steps and steps[-1][0] == x:
            steps[-1] = (x, i / n)
        else:
            steps.append((x, i / n))
    return steps


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, both coordinates minimised, ordered by x.

    A point dominates another when it is no worse in both coordinates and better in one; equal points
    do not dominate each other, so both stay on the front."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best_y = float("inf")
    for i in order:
        x, y = points[i]
        if y < best_y or (front and points[front[-1]] == (x, y)):
            front.append(i)
            best_y = min(best_y, y)
    return front


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_edf(groups: Mapping[str, Sequence[float]], xlabel: str, stem: Path) -> list[Path]:
    """One EDF curve per group (a space), written as STEM.png and STEM.svg; [] without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, values in groups.items():
        steps = edf(values)
        if steps:
            xs = [x for x, _ in steps]
            ys = [y for _, y in steps]
            ax.step([xs[0]] + xs, [0.0] + ys, where="post", label=f"{label} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cumulative prob.")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(plt, fig, stem)


def _save(plt: Any, fig: Any, stem: Path) -> list[Path]:
    """The figure as ``stem``.png and .svg, closed."""
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def plot_pareto(rows: Sequence[Mapping[str, Any]], x: str, y: str, stem: Path, link: str = "#trial-{trial}") -> list[Path]:
    """Every row as a point of (x, y), the Pareto front drawn over them; in the SVG each point links to
    ``link`` (formatted with the row), so the HTML page's points open their rows."""
    plt = _pyplot()
    if plt is None:
        return []
    usable = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    points = [(float(r[x]), float(r[y])) for r in usable]
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    dots = ax.scatter([p[0] for p in points], [p[1] for p in points], s=14, alpha=0.6, label="variants")
    dots.set_urls([link.format(**r) for r in usable])
    fx = [points[i][0] for i in front]
    fy = [points[i][1] for i in front]
    ax.step(fx, fy, where="post", color="C3", label="Pareto front")
    best = ax.scatter(fx, fy, s=30, color="C3", zorder=3)
    best.set_urls([link.format(**usable[i]) for i in front])
    if x in ("macs", "params", "activations"):
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, stem)
