"""Compare two specs (or one spec under two sets of overrides) block by block, then op by op.

The top-level rows of both summaries are aligned as sequences (difflib) on what each row *is*
(the block it instantiates, or the op it writes), so inserting two Inception-A blocks shows as
two added blocks rather than every later block changing; aligned rows whose output shape,
parameters, MACs or ops differ are "changed". Inside a changed row, the block's $parameters are
compared by name (``k 192 → 200``) and its ops as the spec writes them (a composite conv is one
op) by their path inside the block (``features.6.branch1.1: conv 96 3x3 → conv 128 3x3``), each
with its params and MACs deltas. Deltas are B − A. Torch is never imported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from archspec.summary import BlockRow, Summary


@dataclass
class OpDiff:
    """One op as written (a composite conv with its BatchNorm and activation) that differs."""

    status: str  # "added", "removed" or "changed"
    path_a: str | None
    path_b: str | None
    text_a: str | None
    text_b: str | None
    params_delta: int
    macs_delta: int
    in_channels: tuple[int, int] | None = None  # when only its input's channels changed

    def describe(self) -> str:
        if self.status == "added":
            return f"+ {self.path_b}: {self.text_b}"
        if self.status == "removed":
            return f"- {self.path_a}: {self.text_a}"
        path = self.path_b if self.path_a == self.path_b else f"{self.path_a} → {self.path_b}"
        if self.text_a != self.text_b:
            return f"{path}: {self.text_a} → {self.text_b}"
        if self.in_channels is not None:
            return f"{path}: {self.text_b} (input {self.in_channels[0]} → {self.in_channels[1]} channels)"
        return f"{path}: {self.text_b}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "path_a": self.path_a,
            "path_b": self.path_b,
            "text_a": self.text_a,
            "text_b": self.text_b,
            "params_delta": self.params_delta,
            "macs_delta": self.macs_delta,
            "in_channels": list(self.in_channels) if self.in_channels else None,
            "change": self.describe(),
        }


@dataclass
class RowDiff:
    status: str  # "added", "removed", "changed" or "same"
    a: BlockRow | None
    b: BlockRow | None
    notes: list[str] = field(default_factory=list)
    params: list[tuple[str, Any, Any]] = field(default_factory=list)  # block $parameters that differ: (name, a, b)
    ops: list[OpDiff] = field(default_factory=list)

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
                "path_a": r.a.path if r.a else None,
                "path_b": r.b.path if r.b else None,
                "label_a": r.a.label if r.a else None,
                "label_b": r.b.label if r.b else None,
                "shape_a": list(r.a.shape.at(ha, wa)) if r.a else None,
                "shape_b": list(r.b.shape.at(hb, wb)) if r.b else None,
                "params_a": r.a.params if r.a else 0,
                "params_b": r.b.params if r.b else 0,
                "params_delta": r.params_delta,
                "macs_a": r.a.macs if r.a else 0,
                "macs_b": r.b.macs if r.b else 0,
                "macs_delta": r.macs_delta,
                "notes": r.notes,
                "block_params": [{"name": n, "a": x, "b": y} for n, x, y in r.params],
                "ops": [o.as_dict() for o in r.ops],
            }

        return {
            "a": side(self.a),
            "b": side(self.b),
            "added": self.count("added"),
            "removed": self.count("removed"),
            "changed": self.count("changed"),
            "unchanged": self.count("same"),
            "params_delta": self.params_delta,
            "macs_delta": self.macs_delta,
            "blocks": [row(r) for r in self.rows if everything or r.status != "same"],
        }


def _identity(row: BlockRow) -> tuple[str, str]:
    return (row.kind, row.block or row.label)


def _written(row: BlockRow) -> dict[str, tuple[str, str, int, int, int]]:
    """The ops of a row as the spec writes them, by path inside the row: (path, text, params, MACs, input C)."""
    out: dict[str, list[Any]] = {}
    for o in row.ops:
        key = o.origin[len(row.path) + 1 :] if o.origin.startswith(row.path + ".") else o.origin
        if key not in out:
            out[key] = [o.origin, o.written or o.text, 0, 0, o.in_channels]
        out[key][2] += o.params
        out[key][3] += o.macs
    return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in out.items()}


def _op_diffs(a: BlockRow, b: BlockRow) -> list[OpDiff]:
    ops_a, ops_b = _written(a), _written(b)
    diffs: list[OpDiff] = []
    keys = list(ops_a) + [k for k in ops_b if k not in ops_a]
    for key in keys:
        x, y = ops_a.get(key), ops_b.get(key)
        if x is None and y is not None:
            diffs.append(OpDiff("added", None, y[0], None, y[1], y[2], y[3]))
        elif y is None and x is not None:
            diffs.append(OpDiff("removed", x[0], None, x[1], None, -x[2], -x[3]))
        elif x is not None and y is not None and (x[1] != y[1] or x[2] != y[2] or x[3] != y[3]):
            channels = (x[4], y[4]) if x[4] != y[4] else None
            diffs.append(OpDiff("changed", x[0], y[0], x[1], y[1], y[2] - x[2], y[3] - x[3], channels))
    return diffs


def _compare(a: BlockRow, b: BlockRow, size_a: tuple[int, int], size_b: tuple[int, int]) -> RowDiff:
    notes: list[str] = []
    if a.label != b.label:
        notes.append(f"{a.label} → {b.label}")
    params = [
        (k, a.block_params.get(k), b.block_params.get(k))
        for k in {**a.block_params, **b.block_params}
        if a.block_params.get(k) != b.block_params.get(k)
    ]
    if params:
        notes.append(f"{a.block or b.block}: " + ", ".join(f"{k} {x} → {y}" for k, x, y in params))
    sa, sb = a.shape.text(*size_a), b.shape.text(*size_b)
    if sa != sb:
        notes.append(f"output {sa} → {sb}")
    elif a.shape.formula() != b.shape.formula():
        notes.append(f"output {a.shape.formula()} → {b.shape.formula()}")
    ops = _op_diffs(a, b)
    written = [o for o in ops if o.status != "changed" or o.text_a != o.text_b]
    if written:
        notes.append(
            f"{len(written)} op{'s' if len(written) > 1 else ''} changed"
            if len(written) > 2
            else "; ".join(o.describe() for o in written)
        )
    elif ops:
        notes.append("input channels changed")
    if a.params != b.params and not notes:
        notes.append("parameters differ")
    if a.macs != b.macs and not notes:
        notes.append("MACs differ")
    changed = notes or a.params != b.params or a.macs != b.macs
    return RowDiff("changed" if changed else "same", a, b, notes, params, ops)


def diff(a: Summary, b: Summary) -> Diff:
    """Align the top-level rows of two summaries and compare them."""
    size_a, size_b = a.report.input_size, b.report.input_size
    matcher = difflib.SequenceMatcher(None, [_identity(r) for r in a.blocks], [_identity(r) for r in b.blocks], autojunk=False)
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


__all__ = ["Diff", "RowDiff", "OpDiff", "diff"]
