"""Compare two specs block by block, then op by op: added, removed and changed blocks, the block
parameters that changed (``reduction_a: k 192 → 200``) and every op that changed
(``features.6.branch1.1: conv 96 3x3 p1 → conv 128 3x3 p1``, or one whose input grew), each with
its params and MACs deltas.

B defaults to A, so a variant can be described by overrides alone:
``archspec diff specs/inception_v4.yaml --set-b scale.width=1.5``. --set applies to both sides,
--set-a to A only, --set-b to B only. Deltas are B − A, per block and in total. Never imports torch.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from archspec.commands.args import common, spec_path

if TYPE_CHECKING:
    from archspec.diff import Diff


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", type=spec_path, help="path to the first spec")
    p.add_argument("b", metavar="B", nargs="?", type=spec_path, help="path to the second spec (default: A again)")
    p.set_defaults(_late_positionals=(("b", spec_path),))
    common(p, spec=False)
    for side in ("a", "b"):
        p.add_argument(
            f"--set-{side}",
            dest=f"overrides_{side}",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"override a value in {side.upper()} only (repeatable)",
        )
    p.add_argument("--all", action="store_true", help="list unchanged blocks too")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _percent(new: int, old: int) -> str:
    return f"{(new - old) / old * 100:+.1f}%" if old else "n/a"


def _details(d: Diff, sa: tuple[int, int], sb: tuple[int, int]) -> list[str]:
    """Per changed, added or removed block: its parameters and every op that differs, with deltas."""
    rows: list[tuple[str, str, str, str]] = [("", "change", "Δparams", "ΔMACs")]
    for r in d.rows:
        if r.status == "same":
            continue
        row = r.b or r.a
        assert row is not None
        if r.status != "changed":
            mark = "+" if r.status == "added" else "-"
            params = ", ".join(f"{k}={v}" for k, v in row.block_params.items())
            what = f"{row.path}: {row.label}" + (f" ({params})" if params else "")
            rows.append((mark, what, _signed(r.params_delta), _signed(r.macs_delta)))
            continue
        if r.params:
            rows.append(("~", f"{row.block}: " + ", ".join(f"{k} {x} → {y}" for k, x, y in r.params), "", ""))
        for o in r.ops:
            mark = {"added": "+", "removed": "-", "changed": "~"}[o.status]
            rows.append((mark, o.describe(), _signed(o.params_delta), _signed(o.macs_delta)))
    if len(rows) == 1:
        return []
    widths = [max(len(cells[i]) for cells in rows) for i in range(4)]
    lines = ["what changed, op by op:"]
    for n, (mark, what, params, macs) in enumerate(rows):
        lines.append(f"{mark:<{widths[0]}}  {what:<{widths[1]}}  {params:>{widths[2]}}  {macs:>{widths[3]}}".rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def run(args: argparse.Namespace) -> int:
    from archspec.commands.summary import table
    from archspec.diff import diff
    from archspec.overrides import parse_assignment
    from archspec.summary import summarize

    both = dict(parse_assignment(x) for x in args.overrides)
    side_a = {**both, **dict(parse_assignment(x) for x in args.overrides_a)}
    side_b = {**both, **dict(parse_assignment(x) for x in args.overrides_b)}
    a = summarize(args.a, side_a, max_params=args.max_params)
    b = summarize(args.b or args.a, side_b, max_params=args.max_params)
    d = diff(a, b)
    if args.json:
        print(json.dumps(d.as_dict(everything=args.all), indent=2))
        return 0
    sa, sb = a.report.input_size, b.report.input_size
    rows: list[tuple[str, ...]] = [("", "block", "path", "output", "Δparams", "ΔMACs", "what changed")]
    marks = {"added": "+", "removed": "-", "changed": "~", "same": " "}
    for r in d.rows:
        if r.status == "same" and not args.all:
            continue
        x, y = r.a, r.b
        either = x or y
        assert either is not None  # a row pairs a block of A with one of B, or stands for one of them
        label = f"{x.label} → {y.label}" if x and y and x.label != y.label else either.label
        if x and y:
            path = x.path if x.path == y.path else f"{x.path} → {y.path}"
            ta, tb = x.shape.text(*sa), y.shape.text(*sb)
            shape = ta if ta == tb else f"{ta} → {tb}"
        else:
            row = x or y
            assert row is not None
            path, shape = row.path, row.shape.text(*(sa if x else sb))
        rows.append((marks[r.status], label, path, shape, _signed(r.params_delta), _signed(r.macs_delta), "; ".join(r.notes)))
    if len(rows) > 1:
        for line in table(rows, right={4, 5}):
            print(line)
        print()
    details = _details(d, sa, sb)
    if details:
        for line in details:
            print(line)
        print()
    print(f"{d.count('added')} added, {d.count('removed')} removed, {d.count('changed')} changed, {d.count('same')} unchanged")
    print(f"params: {a.params:,} → {b.params:,} ({_signed(d.params_delta)}, {_percent(b.params, a.params)})")
    print(
        f"MACs:   {a.macs:,} → {b.macs:,} ({_signed(d.macs_delta)}, {_percent(b.macs, a.macs)}) "
        f"at {sa[0]}×{sa[1]} → {sb[0]}×{sb[1]}"
    )
    ra, rb = a.report, b.report
    if ra.output_shape != rb.output_shape:
        print(f"output: {'×'.join(map(str, ra.output_shape))} → {'×'.join(map(str, rb.output_shape))}")
    if ra.min_input_size != rb.min_input_size:
        print(
            f"minimum input size: {ra.min_input_size[0]}×{ra.min_input_size[1]} → {rb.min_input_size[0]}×{rb.min_input_size[1]}"
        )
    return 0
