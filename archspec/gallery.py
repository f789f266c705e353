"""Regenerate docs/gallery/: the network view and every block view of every zoo spec.

    python -m archspec.gallery [--specs specs] [--out docs/gallery]

Iterates over ``SPECS/*.yaml``, so a new zoo spec appears without editing anything. Writes an
SVG per view, a PNG of each network view and of each block used more than once (the papers'
main figures: Inception-A, Inception-ResNet-A, ...), the interactive HTML page of each network
(``archspec render … -o NAME.html``), and an index ``README.md``. Files of
these kinds that the run did not produce are removed, so the folder always mirrors the zoo.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import graphviz

from archspec.errors import SpecError
from archspec.fileio import write_atomic

GENERATED = ("*.svg", "*.png", "*.html")


@dataclass
class Entry:
    spec: Path
    name: str
    network: list[str] = field(default_factory=list)  # files of the network view (the .html page last)
    blocks: list[tuple[str, str, int, list[str]]] = field(default_factory=list)  # (block, label, instances, files)


def _draw(dot: graphviz.Digraph, out: Path, stem: str, png: bool) -> list[str]:
    files = [f"{stem}.svg"] + ([f"{stem}.png"] if png else [])
    for f in files:
        write_atomic(out / f, dot.pipe(format=f.rsplit(".", 1)[1]))
    return files


def render_spec_views(spec: Path, out: Path) -> Entry:
    from archspec.api import analyze
    from archspec.render import block_instances, render
    from archspec.view import page

    report = analyze(spec)

    graph = report.graph
    name = graph.net.name
    entry = Entry(spec, name)
    entry.network = _draw(render(graph), out, name, png=True)
    write_atomic(out / f"{name}.html", page(graph, report).encode("utf-8"))
    entry.network.append(f"{name}.html")
    used: dict[str, None] = {}
    for node in graph.ordered():
        for block, _ in graph.at(node).blocks:
            used.setdefault(block, None)
    labels = graph.net.block_labels
    for block in used:
        count = len(block_instances(graph, block))
        files = _draw(render(graph, block=block), out, f"{name}.{block}", png=count > 1)
        entry.blocks.append((block, labels.get(block, block), count, files))
    return entry


def index(entries: list[Entry]) -> str:
    lines = [
        "# Gallery",
        "",
        "Diagrams of every spec in the zoo, drawn by `archspec render`. Regenerate them all with",
        "`python -m archspec.gallery` (from the repository root; it needs Graphviz's `dot`).",
        "Edges carry tensor shapes C×H×W at each spec's input size; colours follow the op kind.",
        "",
    ]
    for e in entries:
        spec = e.spec.as_posix()
        lines += [
            f"## {e.name}",
            "",
            f"`{spec}`: `archspec render {spec} -o {e.name}.svg`; "
            f"[interactive page]({e.name}.html) (`-o {e.name}.html`: download it and open it in a browser)",
            "",
            f"![{e.name}: network]({e.network[0]})",
            "",
        ]
        for block, label, count, files in e.blocks:
            png = f" ([PNG]({files[1]}))" if len(files) > 1 else ""
            lines += [
                f"### {label}",
                "",
                f"`archspec render {spec} --block {block} -o {block}.svg`, "
                f"{count} instance{'s' if count > 1 else ''} in the network{png}",
                "",
                f"![{e.name}: {label}]({files[0]})",
                "",
            ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m archspec.gallery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=Path, default=Path("specs"), help="folder of zoo specs (*.yaml)")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"), help="folder to write the gallery to")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    try:
        for spec in sorted(args.specs.glob("*.yaml")):
            entries.append(render_spec_views(spec, args.out))
            print(f"{spec}: {len(entries[-1].network) + sum(len(b[3]) for b in entries[-1].blocks)} files")
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        return 2
    written = {f for e in entries for f in e.network + [x for b in e.blocks for x in b[3]]}
    for pattern in GENERATED:
        for stale in sorted(args.out.glob(pattern)):
            if stale.name not in written:
                stale.unlink()
    write_atomic(args.out / "README.md", index(entries) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
