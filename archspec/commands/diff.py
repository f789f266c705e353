"""Compare two specs block by block: added, removed and changed blocks, params and MACs deltas.

B defaults to A, so a variant can be described by overrides alone:
``archspec diff specs/inception_v4.yaml --set-b scale.width=1.5``. --set applies to both sides,
--set-a to A only, --set-b to B only. Deltas are B − A, per block and in total. Never imports torch.
"""

from __future__ import annotations

import argparse
import json

from archspec.cli import common, spec_path


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", type=spec_path, help="path to the first spec")
    p.add_argument("b", metavar="B", nargs="?", type=spec_path, help="path to the second spec (default: A again)")
    common(p, spec=False)
    for side in ("a", "b"):
        p.add_argument(f"--set-{side}", dest=f"overrides_{side}", action="append", default=[], metavar="KEY=VALUE",
                       help=f"override a value in {side.upper()} only (repeatable)")
    p.add_argument("--all", action="store_true", help="list unchanged blocks too")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _percent(new: int, old: int) -> str:
    return f"{(new - old) / old * 100:+.1f}%" if old else "n/a"


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
        label = (x or y).label if x is None or y is None or x.label == y.label else f"{x.label} → {y.label}"
        if x and y:
            path = x.path if x.path == y.path else f"{x.path} → {y.path}"
            ta, tb = x.shape.text(*sa), y.shape.text(*sb)
            shape = ta if ta == tb else f"{ta} → {tb}"
        else:
            row = x or y
            assert row is not None
            path, shape = row.path, row.shape.text(*(sa if x else sb))
        rows.append((marks[r.status], label, path, shape, _signed(r.params_delta), _signed(r.macs_delta),
                     "; ".join(r.notes)))
    if len(rows) > 1:
        for line in table(rows, right={4, 5}):
            print(line)
        print()
    print(f"{d.count('added')} added, {d.count('removed')} removed, {d.count('changed')} changed, "
          f"{d.count('same')} unchanged")
    print(f"params: {a.params:,} → {b.params:,} ({_signed(d.params_delta)}, {_percent(b.params, a.params)})")
    print(f"MACs:   {a.macs:,} → {b.macs:,} ({_signed(d.macs_delta)}, {_percent(b.macs, a.macs)}) "
          f"at {sa[0]}×{sa[1]} → {sb[0]}×{sb[1]}")
    ra, rb = a.report, b.report
    if ra.output_shape != rb.output_shape:
        print(f"output: {'×'.join(map(str, ra.output_shape))} → {'×'.join(map(str, rb.output_shape))}")
    if ra.min_input_size != rb.min_input_size:
        print(f"minimum input size: {ra.min_input_size[0]}×{ra.min_input_size[1]} → "
              f"{rb.min_input_size[0]}×{rb.min_input_size[1]}")
    return 0
