"""Compare two specs (or one spec under two sets of overrides) block by block.

The top-level rows of both summaries are aligned as sequences (difflib) on what each row *is*
(the block it instantiates, or the op it writes), so inserting two Inception-A blocks shows as
two added blocks rather than every later block changing; aligned rows whose output shape,
parameters, MACs or ops differ are "changed". Deltas are B − A. Torch is never imported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from archspec.summary import BlockRow, Summary


@dataclass
class RowDiff:
    status: str  # "added", "removed", "changed" or "same"
    a: BlockRow | None
    b: BlockRow | None
    notes: list[str] = field(default_factory=list)

    @property
    def params_delta(self) -> int:
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs_delta(self) -> int:
        return (self.b.macs if self.b else 0) - (self.a.macs if self.a else 0)


@dataclass
class Diff:
    a: Summary
    b: Summary
    rows: list[RowDiff]

    @property
    def params_delta(self) -> int:
        return self.b.params - self.a.params

    @property
    def macs_delta(self) -> int:
        return self.b.macs - self.a.macs

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def as_dict(self, everything: bool = False) -> dict[str, Any]:
        def side(s: Summary) -> dict[str, Any]:
            d = s.as_dict()
            return {k: d[k] for k in ("name", "file", "input_size", "min_input_size", "output_shape", "params", "macs")}

        def row(r: RowDiff) -> dict[str, Any]:
            ha, wa = self.a.report.input_size
            hb, wb = self.b.report.input_size
            return {
                "status": r.status,
                "path_a": r.a.path if r.a else None, "path_b": r.b.path if r.b else None,
                "label_a": r.a.label if r.a else None, "label_b": r.b.label if r.b else None,
                "shape_a": list(r.a.shape.at(ha, wa)) if r.a else None,
                "shape_b": list(r.b.shape.at(hb, wb)) if r.b else None,
                "params_a": r.a.params if r.a else 0, "params_b": r.b.params if r.b else 0,
                "params_delta": r.params_delta,
                "macs_a": r.a.macs if r.a else 0, "macs_b": r.b.macs if r.b else 0, "macs_delta": r.macs_delta,
                "notes": r.notes,
            }

        return {
            "a": side(self.a), "b": side(self.b),
            "added": self.count("added"), "removed": self.count("removed"), "changed": self.count("changed"),
            "unchanged": self.count("same"),
            "params_delta": self.params_delta, "macs_delta": self.macs_delta,
            "blocks": [row(r) for r in self.rows if everything or r.status != "same"],
        }


def _identity(row: BlockRow) -> tuple[str, str]:
    return (row.kind, row.block or row.label)


def _compare(a: BlockRow, b: BlockRow, size_a: tuple[int, int], size_b: tuple[int, int]) -> RowDiff:
    notes: list[str] = []
    if a.label != b.label:
        notes.append(f"{a.label} → {b.label}")
    sa, sb = a.shape.text(*size_a), b.shape.text(*size_b)
    if sa != sb:
        notes.append(f"output {sa} → {sb}")
    elif a.shape.formula() != b.shape.formula():
        notes.append(f"output {a.shape.formula()} → {b.shape.formula()}")
    ops_a, ops_b = [o.text for o in a.ops], [o.text for o in b.ops]
    if ops_a != ops_b:
        changed = sum(1 for x, y in zip(ops_a, ops_b, strict=False) if x != y) + abs(len(ops_a) - len(ops_b))
        notes.append(f"{changed} of {max(len(ops_a), len(ops_b))} ops differ")
    if a.params != b.params and not notes:
        notes.append("parameters differ")
    if a.macs != b.macs and not notes:
        notes.append("MACs differ")
    return RowDiff("changed" if notes or a.params != b.params or a.macs != b.macs else "same", a, b, notes)


def diff(a: Summary, b: Summary) -> Diff:
    """Align the top-level rows of two summaries and compare them."""
    size_a, size_b = a.report.input_size, b.report.input_size
    matcher = difflib.SequenceMatcher(None, [_identity(r) for r in a.blocks], [_identity(r) for r in b.blocks],
                                      autojunk=False)
    rows: list[RowDiff] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        left, right = a.blocks[i1:i2], b.blocks[j1:j2]
        if tag == "equal" or tag == "replace":
            paired = min(len(left), len(right))
            rows += [_compare(x, y, size_a, size_b) for x, y in zip(left[:paired], right[:paired], strict=True)]
            left, right = left[paired:], right[paired:]
        rows += [RowDiff("removed", x, None) for x in left]
        rows += [RowDiff("added", None, y) for y in right]
    return Diff(a, b, _pair_in_order(rows, size_a, size_b))


def _pair_in_order(rows: list[RowDiff], size_a: tuple[int, int], size_b: tuple[int, int]) -> list[RowDiff]:
    """Within a run of instances of the same block, pair them in order; extra ones come last.

    So 'inception_a * 4' → '* 6' keeps features.6–9 paired with themselves and adds the last two.
    """
    out: list[RowDiff] = []
    i = 0
    while i < len(rows):
        ident = _identity(rows[i].a or rows[i].b)  # type: ignore[arg-type]
        j = i
        while j < len(rows) and _identity(rows[j].a or rows[j].b) == ident:  # type: ignore[arg-type]
            j += 1
        left = [r.a for r in rows[i:j] if r.a is not None]
        right = [r.b for r in rows[i:j] if r.b is not None]
        paired = min(len(left), len(right))
        out += [_compare(x, y, size_a, size_b) for x, y in zip(left[:paired], right[:paired], strict=True)]
        out += [RowDiff("removed", x, None) for x in left[paired:]]
        out += [RowDiff("added", None, y) for y in right[paired:]]
        i = j
    return out


__all__ = ["Diff", "RowDiff", "diff"]
