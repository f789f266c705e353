"""List the networks of archspec's zoo: name, parameters, minimum input and reference.

Each can be used anywhere a spec is expected as ``zoo:NAME`` (``archspec check zoo:resnet50``,
``archspec.build("zoo:resnet50")``), and its block libraries as ``use: [zoo:blocks/resnet.yaml]``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def describe(name: str) -> dict[str, object]:
    """What a spec says of itself: the first line of its header comment (the network and its paper),
    the reference its module names follow, and what check reports."""
    from archspec.api import check
    from archspec.library import ZOO

    lines = (ZOO / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    header = [ln[1:].strip() for ln in lines if ln.startswith("#") and "yaml-language-server" not in ln]
    reference = next((h for h in header if "follow" in h or "loads with" in h), "")
    report = check(f"zoo:{name}")
    return {
        "name": f"zoo:{name}",
        "network": header[0] if header else name,
        "params": report.params,
        "min_input_size": list(report.min_input_size),
        "input_size": list(report.input_size),
        "reference": reference,
    }


def run(args: argparse.Namespace) -> int:
    from archspec.library import names

    rows: list[dict[str, Any]] = [describe(n) for n in names()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(str(r["name"])) for r in rows)
    for r in rows:
        mh, mw = r["min_input_size"]
        print(f"{str(r['name']).ljust(width)}  {r['params']:>12,} params  min {mh}×{mw}  {r['network']}")
    return 0
