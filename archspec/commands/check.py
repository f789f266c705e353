"""Validate a spec and print its shapes per block, as numbers and as formulas in H and W.

Prints the output C×H×W of every top-level block at the spec's input size and as a formula of
the input's H and W, and the minimum input size. Exit 0 when the spec is valid.
"""

from __future__ import annotations

import argparse
import json
import sys

from archspec.commands.args import common, overrides_of


def add_parser(p: argparse.ArgumentParser) -> None:
    common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when the spec is valid")
    p.add_argument("--strict", action="store_true", help="treat warnings (e.g. partial-merge) as errors")


def run(args: argparse.Namespace) -> int:
    from archspec.api import check
    from archspec.errors import printable

    report = check(args.spec, overrides_of(args), max_params=args.max_params, strict=args.strict)
    for warning in report.warnings:
        print(warning.format(), file=sys.stderr)
    if args.quiet:
        return 0
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    h, w = report.input_size
    rows = [("block", "path", f"output at {h}×{w}", "output (formula)")]
    for r in report.rows:
        rows.append((printable(r.label), printable(r.path), r.shape.text(h, w), r.shape.formula()))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row[:3])) + "  " + row[3])
        if i == 0:
            print("  ".join("-" * wd for wd in widths) + "  " + "-" * 16)
    mh, mw = report.min_input_size
    print()
    if report.main == ("logits",):
        out = "output " + "×".join(map(str, report.output_shape))
    else:  # outputs: several named values
        out = "outputs " + ", ".join(f"{printable(k)} {'×'.join(map(str, report.outputs[k].at(h, w)))}" for k in report.main)
    print(f"{report.name}: valid. input {report.input_channels}×{h}×{w}, {out}, {report.params:,} parameters")
    print(f"minimum input size: {mh}×{mw}")
    if report.accepted.max_size or report.accepted.conditions:
        print(f"accepted input sizes: {report.accepted.describe()}")
    if report.train_accepted != report.accepted:
        print(f"accepted input sizes in training mode (aux heads): {report.train_accepted.describe()}")
    return 0
