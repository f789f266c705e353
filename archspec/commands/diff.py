"""Compare two specs: what changed in the network, with params and MACs before and after.

The totals first (params and MACs before → after, Δ and %), then each change once, in at most
100 columns — a changed block with its output shape and the ops that changed inside it
(``features.6–9 (Inception-A ×4): branch1.1: conv 96 3x3 p1 → conv 128 3x3 p1``, identical
instances folded), the block parameters that changed (``reduction_a: k 192 → 200``), added and
removed blocks and ops (a replaced stem: its old ops removed, its new ones added) — each with its
params and MACs deltas. ``--json`` holds the same changes, and every row.

B defaults to A, so a variant can be described by overrides alone:
``archspec diff specs/inception_v4.yaml --set-b scale.width=1.5``. --set applies to both sides,
--set-a to A only, --set-b to B only. Deltas are B − A, per block and in total. Never imports torch.
"""

from __future__ import annotations

import argparse
import json
import textwrap
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


WIDTH = 100  # no line of the text output is wider


def _lines(d: Diff) -> list[str]:
    """Each change once: a headline with its deltas, then the ops that changed inside it, wrapped to WIDTH."""
    rows: list[tuple[str, str, str, str]] = []  # (mark, text, Δparams, ΔMACs)
    marks = {"added": "+", "removed": "-", "changed": "~", "renamed": "="}
    for c in d.changes:
        rows.append((marks[c.status], c.headline(), _signed(c.params_delta), _signed(c.macs_delta)))
        for o in c.details():
            rows.append(("  " + marks[o.status], o.describe(prefix=False), _signed(o.params_delta), _signed(o.macs_delta)))
    if not rows:
        return []
    wp = max(len("Δparams"), *(len(r[2]) for r in rows))
    wm = max(len("ΔMACs"), *(len(r[3]) for r in rows))
    text_width = WIDTH - wp - wm - 4
    lines = [f"{'':<{text_width}}  {'Δparams':>{wp}}  {'ΔMACs':>{wm}}"]
    for mark, text, params, macs in rows:
        indent = " " * (len(mark) + 1)
        wrapped = textwrap.wrap(text, text_width - len(indent), break_on_hyphens=False) or [""]
        lines.append(f"{mark + ' ' + wrapped[0]:<{text_width}}  {params:>{wp}}  {macs:>{wm}}")
        lines += [indent + more for more in wrapped[1:]]
    return [line.rstrip() for line in lines]


def _totals(d: Diff) -> list[str]:
    a, b = d.a, d.b
    ra, rb = a.report, b.report
    sa, sb = ra.input_size, rb.input_size
    at = f"at {sa[0]}×{sa[1]}" if sa == sb else f"at {sa[0]}×{sa[1]} → {sb[0]}×{sb[1]}"
    lines = [
        f"params: {a.params:,} → {b.params:,} ({_signed(d.params_delta)}, {_percent(b.params, a.params)})",
        f"MACs:   {a.macs:,} → {b.macs:,} ({_signed(d.macs_delta)}, {_percent(b.macs, a.macs)}) {at}",
    ]
    if ra.output_shape != rb.output_shape:
        lines.append(f"output: {'×'.join(map(str, ra.output_shape))} → {'×'.join(map(str, rb.output_shape))}")
    if ra.min_input_size != rb.min_input_size:
        (ha, wa), (hb, wb) = ra.min_input_size, rb.min_input_size
        lines.append(f"minimum input size: {ha}×{wa} → {hb}×{wb}")
    lines.append(
        f"blocks and ops: {d.count('added')} added, {d.count('removed')} removed, {d.count('changed')} changed, "
        f"{d.count('same')} unchanged"
    )
    return lines


def run(args: argparse.Namespace) -> int:
    from archspec import public
    from archspec.language.overrides import parse_assignment

    d = public.diff(
        args.a,
        args.b,
        overrides=dict(parse_assignment(x) for x in args.overrides),
        overrides_a=dict(parse_assignment(x) for x in args.overrides_a),
        overrides_b=dict(parse_assignment(x) for x in args.overrides_b),
        max_params=args.max_params,
    )
    if args.json:
        print(json.dumps(d.as_dict(everything=args.all), indent=2))
        return 0
    for line in _totals(d):  # totals first
        print(line)
    changes = _lines(d)
    if changes:
        print()
        for line in changes:
            print(line)
    reshaped = [r.row.path for r in d.reshaped]
    if reshaped:
        print()
        for line in textwrap.wrap(
            "only their output shape changes (what the changes above pass on): " + ", ".join(reshaped), WIDTH
        ):
            print(line)
    if args.all:
        same = [r.row.path for r in d.rows if r.status == "same"]
        if same:
            print()
            for line in textwrap.wrap("unchanged: " + ", ".join(same), WIDTH):
                print(line)
    return 0
