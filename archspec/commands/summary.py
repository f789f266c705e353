"""Print parameters and MACs per block: output shape, params, MACs at the input size (and as a formula).

One row per top-level block (per primitive op with --ops): its output shape at the spec's input
size, its parameter count, its multiply-accumulates for one image at that size, and with
--formulas those MACs as a formula of the input's H and W (the table then grows past 100
columns). Totals follow; auxiliary heads (training only) are listed but their MACs are not in the
total. Last comes the activation memory of a batch (--batch, default 1) in float32: what a
training step keeps for backward, and the peak of live activations in an inference forward.
--json prints all of it as JSON. Never imports torch.
"""

from __future__ import annotations

import argparse
import json

from archspec.commands.args import common, overrides_of, whole_number


def add_parser(p: argparse.ArgumentParser) -> None:
    common(p)
    p.add_argument("--ops", action="store_true", help="one row per primitive op, under its block")
    p.add_argument("--formulas", action="store_true", help="add a column: MACs as a formula of H and W")
    p.add_argument("--batch", type=whole_number(1), default=1, metavar="N", help="batch size for activation memory (default 1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


WIDTH = 100  # the terminal the default table fits


def _fit(rows: list[tuple[str, ...]], width: int) -> list[tuple[str, ...]]:
    """Shorten the first column (labels; ``…`` marks a cut) until the table fits ``width`` columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    if excess <= 0:
        return rows
    keep = max(10, widths[0] - excess)
    return [(r[0] if len(r[0]) <= keep else r[0][: keep - 1] + "…",) + r[1:] for r in rows]


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Rows of cells as aligned text; the last column is left ragged. Cells from the spec (labels,
    paths) are printed with control characters and newlines escaped, so a row stays one line."""
    from archspec.errors import printable

    rows = [tuple(printable(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for n, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row[:-1])]
        last = row[-1].rjust(max(len(r[-1]) for r in rows)) if len(row) - 1 in right else row[-1]
        out.append("  ".join(cells + [last]).rstrip())
        if n == 0:
            out.append("  ".join("-" * wd for wd in widths) + "  " + "-" * max(8, min(40, max(len(r[-1]) for r in rows))))
    return out


def run(args: argparse.Namespace) -> int:
    from archspec import public

    s = public.summary(args.spec, overrides_of(args), max_params=args.max_params, batch=args.batch)
    if args.json:
        print(json.dumps(s.as_dict(ops=args.ops), indent=2))
        return 0
    r = s.report
    h, w = r.input_size
    formulas = args.formulas
    head = ("block", "path", f"output at {h}×{w}", "params", "MACs") + (("MACs (formula in H, W)",) if formulas else ())
    rows: list[tuple[str, ...]] = [head]

    def cells(label: str, path: str, shape: str, params: int, macs: int, formula: str) -> tuple[str, ...]:
        return (label, path, shape, f"{params:,}", f"{macs:,}") + ((formula,) if formulas else ())

    for b in s.blocks:
        label = b.label + (" (train only)" if b.train_only else "")
        rows.append(cells(label, b.path, b.shape.text(h, w), b.params, b.macs, b.macs_formula))
        if args.ops:
            for o in b.ops:
                rows.append(cells("  " + o.text, o.path, o.shape.text(h, w), o.params, o.macs, o.macs_formula))
    rows.append(cells("total", "", "×".join(map(str, r.output_shape)), r.params, r.macs, s.macs_formula))
    if not formulas:
        rows = _fit(rows, WIDTH)
    for line in table(rows, right={3, 4}):
        print(line)
    mh, mw = r.min_input_size
    print()
    print(f"{r.name}: input {r.input_channels}×{h}×{w}, {r.params:,} parameters, {r.macs / 1e9:.3f} GMACs")
    print(f"  minimum input size {mh}×{mw}")
    m = s.memory
    if m is not None:
        print(f"activations of a batch of {m.batch} (float32): training keeps {mib(m.train_saved)} for backward")
        print(f"  (beside {mib(m.train_saved_weights)} of weights); inference peaks at {mib(m.inference_peak)} live")
    return 0
