"""List the networks of archspec's zoo: name, parameters, minimum input and reference.

Each can be used anywhere a spec is expected as ``zoo:NAME`` (``archspec check zoo:resnet50``,
``archspec.build("zoo:resnet50")``), and its block libraries as ``use: [zoo:blocks/resnet.yaml]``.
The members of a spec's family follow it, one row each, by their own zoo names (``zoo:efficientnet_b1``
under ``zoo:efficientnet_b0``: its ``--variant b1``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Mapping
from typing import Any


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def describe(name: str, variant: str | None = None) -> dict[str, object]:
    """What a spec says of itself: the first line of its header comment (the network and its paper),
    the reference its module names follow, and what check reports; for a member of its family
    (``variant``), what check reports of that member, and the member's network name."""
    from archspec.api import check
    from archspec.library import ZOO

    lines = (ZOO / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    header = [ln[1:].strip() for ln in lines if ln.startswith("#") and "yaml-language-server" not in ln]
    reference = next((h for h in header if "follow" in h or "loads with" in h), "")
    report = check(f"zoo:{name}", overrides={"variant": variant} if variant is not None else None)
    row: dict[str, object] = {"name": f"zoo:{name}"}
    if variant is not None:  # a member: a zoo name of its own (archspec/library.py, family_of)
        row = {"name": f"zoo:{report.name}", "family": f"zoo:{name}", "variant": variant}
    return row | {
        "network": _first_paragraph(header) or name if variant is None else f"--variant {variant} of zoo:{name}",
        "params": report.params,
        "min_input_size": list(report.min_input_size),
        "input_size": list(report.input_size),
        "reference": reference,
    }


def run(args: argparse.Namespace) -> int:
    from archspec.library import members

    rows: list[dict[str, Any]] = [describe(spec, variant) for spec, variant in _in_order(members())]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    labels = [("  " if "variant" in r else "") + str(r["name"]) for r in rows]  # a member: under its family's spec
    minimums = ["{}×{}".format(*r["min_input_size"]) for r in rows]
    name_width, min_width = max(map(len, labels)), max(map(len, minimums))
    columns = shutil.get_terminal_size((100, 24)).columns
    for name, minimum, r in zip(labels, minimums, rows, strict=True):
        row = f"{name.ljust(name_width)}  {r['params'] / 1e6:6.1f} M params  min {minimum.ljust(min_width)}  "
        print(row + _fit(_label(str(r["network"])), max(columns - len(row) - 1, 12)))
    return 0


def _in_order(found: Mapping[str, tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The zoo's specs by name, each followed by the members of its family as its ``variants:`` lists them."""
    family: dict[str, list[tuple[str, str | None]]] = {}
    for spec, variant in found.values():
        family.setdefault(spec, []).append((spec, variant))
    return [entry for spec in sorted(family) for entry in sorted(family[spec], key=lambda e: e[1] is not None)]


def _label(network: str) -> str:
    """A short label for one row: the network's name as its header gives it, then the paper's title."""
    title = network.split(" — ")[0] if " — " in network else network.split(": ")[0]
    paper = re.search(r'"([^"]+)"', network)
    return f"{title} — {paper.group(1)}" if paper and paper.group(1) not in title else title


def _first_paragraph(header: list[str]) -> str:
    """The header's opening paragraph (the network and its paper), joined across its wrapped lines."""
    paragraph: list[str] = []
    for line in header:
        if not line:
            if paragraph:
                break
            continue
        paragraph.append(line)
    return " ".join(paragraph)


def _fit(text: str, width: int) -> str:
    """The text cut at a space or hyphen to fit the width, with an ellipsis when cut (never mid-word)."""
    if len(text) <= width:
        return text
    head = text[: width - 1]
    breaks = [i for i, c in enumerate(head) if c in " -" and text[i + 1 : i + 2] != " "]
    cut = (head[: breaks[-1]] if breaks else head).rstrip(" ,;:—-")
    return cut + "…"
