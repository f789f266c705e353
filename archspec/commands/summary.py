"""Print parameters and MACs per block: output shape, params, MACs at the input size and as a formula.

One row per top-level block (per primitive op with --ops): its output shape at the spec's input
size, its parameter count, its multiply-accumulates for one image at that size, and those MACs as
a formula of the input's H and W. Totals follow; auxiliary heads (training only) are listed but
their MACs are not in the total. --json prints the same as JSON. Never imports torch.
"""

from __future__ import annotations

import argparse
import json

from archspec.cli import common, overrides_of


def add_parser(p: argparse.ArgumentParser) -> None:
    common(p)
    p.add_argument("--ops", action="store_true", help="one row per primitive op, under its block")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Rows of cells as aligned text; the last column is left ragged. Cells from the spec (labels,
    paths) are printed with control characters and newlines escaped, so a row stays one line."""
    from archspec.errors import printable

    rows = [tuple(printable(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for n, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row[:-1])]
        out.append("  ".join(cells + [row[-1]]).rstrip())
        if n == 0:
            out.append("  ".join("-" * wd for wd in widths) + "  " + "-" * max(8, len(row[-1])))
    return out


def run(args: argparse.Namespace) -> int:
    from archspec.summary import summarize

    s = summarize(args.spec, overrides_of(args), max_params=args.max_params)
    if args.json:
        print(json.dumps(s.as_dict(ops=args.ops), indent=2))
        return 0
    r = s.report
    h, w = r.input_size
    rows: list[tuple[str, ...]] = [("block", "path", f"output at {h}×{w}", "params", "MACs", "MACs (formula in H, W)")]
    for b in s.blocks:
        label = b.label + (" (train only)" if b.train_only else "")
        rows.append((label, b.path, b.shape.text(h, w), f"{b.params:,}", f"{b.macs:,}", b.macs_formula))
        if args.ops:
            for o in b.ops:
                rows.append(("  " + o.text, o.path, o.shape.text(h, w), f"{o.params:,}", f"{o.macs:,}",
                             o.macs_formula))
    rows.append(("total", "", "×".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}", s.macs_formula))
    for line in table(rows, right={3, 4}):
        print(line)
    mh, mw = r.min_input_size
    print()
    print(f"{r.name}: input {r.input_channels}×{h}×{w}, {r.params:,} parameters, {r.macs / 1e9:.3f} GMACs; "
          f"minimum input size {mh}×{mw}")
    return 0
