"""Compare two specs (or one spec under two sets of overrides) block by block, then op by op.

The top-level rows of both summaries are aligned as sequences (difflib's ``SequenceMatcher``) on
what each row *is* — the block it instantiates, or the op it writes (``conv``, ``bn``), never its
numbers — so inserting two Inception-A blocks shows as two added blocks rather than every later
block changing, a wider conv is that conv changed, and a replaced stem is its old ops removed and
its new ones added, not ``bn → conv`` pairs by position. Aligned rows whose output shape,
parameters, MACs or ops differ are "changed". Inside a changed row the ops as the spec writes
them (a composite conv is one op) are aligned the same way, on their place in the block and their
op (``branch1, conv``), so an op inserted in a branch is one op added; each pair that differs is
listed with its params and MACs deltas, and the block's $parameters are compared by name.

Consecutive rows that changed in the same way (the four Inception-A of a width change) form one
:class:`Change` (``features.6–9 (Inception-A ×4)``), as do consecutive added or removed instances
of one block and consecutive removed or added ops; the text of ``archspec diff`` and its ``--json``
both list these changes. Deltas are B − A. Torch is never imported.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from archspec.summary import BlockRow, Summary


@dataclass
class OpDiff:
    """One op as written (a composite conv with its BatchNorm and activation) that differs."""

    status: str  # "added", "removed", "changed" or "renamed" (an op without tensors under another name)
    path_a: str | None
    path_b: str | None
    text_a: str | None
    text_b: str | None
    params_delta: int
    macs_delta: int
    in_channels: tuple[int, int] | None = None  # when only its input's channels changed
    inside: str = ""  # its path inside its row (``branch1.1``)

    def describe(self, prefix: bool = True) -> str:
        """``features.6.branch1.1: conv 96 3x3 → conv 128 3x3``; without the prefix, the path inside the block."""
        if prefix:
            path = (self.path_b or self.path_a or "") if self.path_a == self.path_b or not self.path_a else None
            path = path or f"{self.path_a} → {self.path_b}"
        else:
            path = self.inside
        where = f"{path}: " if path else ""
        if self.status == "renamed":
            return f"{self.path_a} → {self.path_b}: {self.text_b} (renamed)"
        if self.status == "added":
            return f"{where}{self.text_b}"
        if self.status == "removed":
            return f"{where}{self.text_a}"
        if self.text_a != self.text_b:
            return f"{where}{self.text_a} → {self.text_b}"
        if self.in_channels is not None:
            return f"{where}{self.text_b} (input {self.in_channels[0]} → {self.in_channels[1]} channels)"
        return f"{where}{self.text_b}"

    def key(self) -> tuple[Any, ...]:
        """What the change is, wherever the block stands: equal keys in two instances are the same change."""
        return (self.status, self.inside, self.text_a, self.text_b, self.in_channels, self.params_delta, self.macs_delta)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "path_a": self.path_a,
            "path_b": self.path_b,
            "inside": self.inside,
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
    def row(self) -> BlockRow:
        row = self.b or self.a
        assert row is not None, "a row diff stands for a row of A, of B, or both"
        return row

    @property
    def params_delta(self) -> int:
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs_delta(self) -> int:
        return (self.b.macs if self.b else 0) - (self.a.macs if self.a else 0)


@dataclass
class Change:
    """Consecutive rows that changed in the same way, said once: ``features.6–9 (Inception-A ×4)``."""

    status: str
    rows: list[RowDiff]
    size_a: tuple[int, int]
    size_b: tuple[int, int]

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def params_delta(self) -> int:
        return sum(r.params_delta for r in self.rows)

    @property
    def macs_delta(self) -> int:
        return sum(r.macs_delta for r in self.rows)

    @property
    def ops(self) -> list[OpDiff]:
        """The first row's op changes, their deltas summed over every row of the change."""
        n = self.count
        return [replace(o, params_delta=o.params_delta * n, macs_delta=o.macs_delta * n) for o in self.rows[0].ops]

    @property
    def where(self) -> str:
        """``features.6–9``, ``layer3.1 … layer3.5``, or one path (B's where B has the row)."""
        paths = [r.row.path for r in self.rows]
        if len(paths) == 1:
            return paths[0]
        m1, m2 = re.fullmatch(r"(.*?)(\d+)", paths[0]), re.fullmatch(r"(.*?)(\d+)", paths[-1])
        if m1 and m2 and m1.group(1) == m2.group(1):
            return f"{paths[0]}–{m2.group(2)}"
        return f"{paths[0]} … {paths[-1]}"

    @property
    def label(self) -> str:
        a, b = self.rows[0].a, self.rows[0].b
        label = f"{a.label} → {b.label}" if a and b and a.label != b.label else self.rows[0].row.label
        return label + (f" ×{self.count}" if self.count > 1 else "")

    def shapes(self) -> str:
        """``384×35×35 → 576×35×35``, or one shape where both sides agree (or one side only)."""
        a, b = self.rows[0].a, self.rows[0].b
        ta = a.shape.text(*self.size_a) if a else None
        tb = b.shape.text(*self.size_b) if b else None
        if ta is not None and tb is not None and ta != tb:
            return f"{ta} → {tb}"
        return ta or tb or ""

    def headline(self) -> str:
        """The change in one phrase, without its deltas."""
        first = self.rows[0]
        if all(r.row.kind == "op" for r in self.rows) and self.status != "changed":
            verb = "removed" if self.status == "removed" else "added"
            return f"{verb} " + ", ".join(_op_row(r.row) for r in self.rows)
        if self.status != "changed":
            params = ", ".join(f"{k}={v}" for k, v in first.row.block_params.items())
            verb = "removed" if self.status == "removed" else "added"
            return f"{verb} {self.where} ({self.label}{', ' + params if params else ''}) {self.shapes()}"
        if first.row.kind == "op" and len(first.ops) == 1:
            return f"{self.where}: {first.ops[0].describe(prefix=False).lstrip(': ')}"
        head = f"{self.where} ({self.label}):"
        if first.params:
            head += f" {first.row.block or ''} " + ", ".join(f"{k} {x} → {y}" for k, x, y in first.params) + ";"
        shapes = self.shapes()
        if "→" in shapes:
            head += f" output {shapes}"
        if len(first.ops) == 1:
            head += ("; " if "→" in shapes else " ") + first.ops[0].describe(prefix=False)
        return head

    def details(self) -> list[OpDiff]:
        """The op changes listed under the headline (none when the headline says the only one)."""
        first = self.rows[0]
        if self.status != "changed" or len(first.ops) <= 1:
            return []
        return self.ops

    def as_dict(self) -> dict[str, Any]:
        first = self.rows[0]
        return {
            "status": self.status,
            "where": self.where,
            "label": self.label,
            "count": self.count,
            "paths_a": [r.a.path for r in self.rows if r.a],
            "paths_b": [r.b.path for r in self.rows if r.b],
            "shape": self.shapes(),
            "block_params": [{"name": n, "a": x, "b": y} for n, x, y in first.params],
            "params_delta": self.params_delta,
            "macs_delta": self.macs_delta,
            "change": self.headline(),
            "ops": [o.as_dict() | {"change": o.describe(prefix=False)} for o in self.details()],
        }


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

    @property
    def changes(self) -> list[Change]:
        """The rows that differ, consecutive ones that differ in the same way grouped (see :class:`Change`);
        rows whose only difference is their output shape (what an earlier change passes on) are left out."""
        sizes = (self.a.report.input_size, self.b.report.input_size)
        out: list[Change] = []
        for r in self.rows:
            if r.status == "same" or _reshaped_only(r):
                continue
            last = out[-1] if out else None
            if last is not None and last.status == r.status and _same_change(last.rows[-1], r):
                last.rows.append(r)
            else:
                out.append(Change(r.status, [r], *sizes))
        return out

    @property
    def reshaped(self) -> list[RowDiff]:
        """Changed rows whose ops, parameters and MACs are the same: only their output shape differs."""
        return [r for r in self.rows if r.status == "changed" and _reshaped_only(r)]

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
            "params_delta": self.params_delta,
            "macs_delta": self.macs_delta,
            "added": self.count("added"),
            "removed": self.count("removed"),
            "changed": self.count("changed"),
            "unchanged": self.count("same"),
            "changes": [c.as_dict() for c in self.changes],
            "reshaped": [r.row.path for r in self.reshaped],
            "blocks": [row(r) for r in self.rows if everything or r.status != "same"],
        }


# an op as written: path, text, params, MACs, input channels, and its exact text (the same op reads the
# same under any `defaults:`: ops are aligned and compared by it, shown as written)
Written = tuple[str, str, int, int, int, str]


def _written(row: BlockRow) -> str:
    """A top-level op row as the spec writes it (``conv2d 64 7x7 s2 p3 no_bias``)."""
    return row.ops[0].written or row.ops[0].text if row.ops else row.label


def _op_row(row: BlockRow) -> str:
    """``conv2d 64 7x7 s2 p3 no_bias (conv1)``; ``relu`` alone where its path says no more."""
    text = _written(row)
    return text if row.path == text.split(" ", 1)[0] else f"{text} ({row.path})"


def _reshaped_only(r: RowDiff) -> bool:
    return r.status == "changed" and not r.ops and not r.params and r.params_delta == 0 and r.macs_delta == 0


def _same_change(x: RowDiff, y: RowDiff) -> bool:
    """Two consecutive rows that changed (or were added, or removed) in the same way."""
    if x.status != y.status:
        return False
    if x.status != "changed":
        if x.row.kind == "op" and y.row.kind == "op":
            return True  # removed (added) ops in a row are one change: "removed conv2d 64 7x7 … (conv1), bn (bn1), relu"
        return (x.row.block, x.row.label, x.row.block_params, x.row.params) == (
            y.row.block,
            y.row.label,
            y.row.block_params,
            y.row.params,
        )
    ka = (x.a.label if x.a else None, x.b.label if x.b else None, x.params, [o.key() for o in x.ops])
    kb = (y.a.label if y.a else None, y.b.label if y.b else None, y.params, [o.key() for o in y.ops])
    return x.row.kind == y.row.kind == "block" and ka == kb and (x.params_delta, x.macs_delta) == (y.params_delta, y.macs_delta)


def _identity(row: BlockRow) -> tuple[str, str]:
    """What a row is, without its numbers: the block it instantiates, or the op it writes."""
    if row.kind == "op":
        return ("op", _written(row).split(" ", 1)[0])
    return (row.kind, row.block or row.label)


def _written_ops(row: BlockRow) -> dict[str, Written]:
    """The ops of a row as the spec writes them, by path inside the row: (path, text, params, MACs, input C)."""
    out: dict[str, list[Any]] = {}
    for o in row.ops:
        key = o.origin[len(row.path) + 1 :] if o.origin.startswith(row.path + ".") else ""
        if key not in out:
            out[key] = [o.origin, o.written or o.text, 0, 0, o.in_channels, o.exact or o.written or o.text]
        out[key][2] += o.params
        out[key][3] += o.macs
    return {k: (v[0], v[1], v[2], v[3], v[4], v[5]) for k, v in out.items()}


def _signature(inside: str, text: str, exact: bool) -> tuple[str, str, str]:
    """An op's place in its block and its op: (container, name or "#", the op as written, or only its op)."""
    parent, _, name = inside.rpartition(".")
    return (parent, "#" if name.isdigit() else name, text if exact else text.split(" ", 1)[0])


def _op_diffs(a: BlockRow, b: BlockRow) -> list[OpDiff]:
    """Ops aligned twice: as written (so an inserted op is one op added and the ops after it stay
    paired), then what differs again by place and op alone (so a wider conv is that conv changed)."""
    ops_a, ops_b = _written_ops(a), _written_ops(b)
    diffs: list[OpDiff] = []
    exact = _align(ops_a, list(ops_a), ops_b, list(ops_b), exact=True)
    for tag, keys_a, keys_b in exact:
        if tag == "equal":
            diffs += _pairs(ops_a, keys_a, ops_b, keys_b)
            continue
        for tag2, ka, kb in _align(ops_a, keys_a, ops_b, keys_b, exact=False):
            if tag2 == "equal":
                diffs += _pairs(ops_a, ka, ops_b, kb)
                continue
            renamed = _renamed(ops_a, ka, ops_b, kb)
            diffs += [
                OpDiff("renamed", ops_a[x][0], ops_b[y][0], ops_a[x][1], ops_b[y][1], 0, 0, None, y) for x, y in renamed.items()
            ]
            diffs += [
                OpDiff("removed", ops_a[k][0], None, ops_a[k][1], None, -ops_a[k][2], -ops_a[k][3], None, k)
                for k in ka
                if k not in renamed
            ]
            taken = set(renamed.values())
            diffs += [
                OpDiff("added", None, ops_b[k][0], None, ops_b[k][1], ops_b[k][2], ops_b[k][3], None, k)
                for k in kb
                if k not in taken
            ]
    return diffs


def _renamed(ops_a: dict[str, Written], keys_a: list[str], ops_b: dict[str, Written], keys_b: list[str]) -> dict[str, str]:
    """Ops without tensors that one side names and the other numbers (timm's ``act1: relu`` for a
    zoo block's unnamed relu), paired in order by their exact text: the same op under another
    module name, which nothing loads or saves."""
    out: dict[str, str] = {}
    free = [k for k in keys_b if ops_b[k][2] == 0]
    for k in keys_a:
        if ops_a[k][2] != 0:
            continue
        match = next((j for j in free if ops_b[j][5] == ops_a[k][5] and ops_b[j][3] == ops_a[k][3]), None)
        if match is not None:
            out[k] = match
            free.remove(match)
    return out


def _align(
    ops_a: dict[str, Written], keys_a: list[str], ops_b: dict[str, Written], keys_b: list[str], *, exact: bool
) -> list[tuple[str, list[str], list[str]]]:
    matcher = difflib.SequenceMatcher(
        None,
        [_signature(k, ops_a[k][5], exact) for k in keys_a],
        [_signature(k, ops_b[k][5], exact) for k in keys_b],
        autojunk=False,
    )
    return [(tag, keys_a[i1:i2], keys_b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes()]


def _pairs(ops_a: dict[str, Written], keys_a: list[str], ops_b: dict[str, Written], keys_b: list[str]) -> list[OpDiff]:
    """The aligned pairs that differ (in text, or in params or MACs: an input that grew)."""
    out: list[OpDiff] = []
    for ka, kb in zip(keys_a, keys_b, strict=True):
        x, y = ops_a[ka], ops_b[kb]
        if x[5] != y[5] or x[2] != y[2] or x[3] != y[3]:
            channels = (x[4], y[4]) if x[4] != y[4] else None
            out.append(OpDiff("changed", x[0], y[0], x[1], y[1], y[2] - x[2], y[3] - x[3], channels, kb))
    return out


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
        notes.append(f"{len(written)} ops changed" if len(written) > 2 else "; ".join(o.describe() for o in written))
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
        if tag == "equal":
            rows += [_compare(x, y, size_a, size_b) for x, y in zip(left, right, strict=True)]
            continue
        # what is left, aligned again on the blocks' labels: a block split in two (an import's bneck_1,
        # bneck_2 for bneck) pairs with its instances; ops and other blocks are removed and added
        again = difflib.SequenceMatcher(None, [_kind(r) for r in left], [_kind(r) for r in right], autojunk=False)
        for tag2, k1, k2, l1, l2 in again.get_opcodes():
            if tag2 == "equal":
                rows += [_compare(x, y, size_a, size_b) for x, y in zip(left[k1:k2], right[l1:l2], strict=True)]
                continue
            rows += _by_path(left[k1:k2], right[l1:l2], size_a, size_b)
    return Diff(a, b, _pair_in_order(rows, size_a, size_b))


def _by_path(left: list[BlockRow], right: list[BlockRow], size_a: tuple[int, int], size_b: tuple[int, int]) -> list[RowDiff]:
    """Rows left unpaired by what they are, paired by where they are: a block at the same module
    path under another name or label (an import's basic_block for the zoo's Basic block) is that
    block renamed, compared op by op; the rest is what A had (removed), then what B has (added)."""
    paths = {y.path: y for y in right if y.kind == "block"}
    paired = {x.path: paths[x.path] for x in left if x.kind == "block" and x.path in paths}
    rows = [_compare(x, paired[x.path], size_a, size_b) if x.path in paired else RowDiff("removed", x, None) for x in left]
    return rows + [RowDiff("added", None, y) for y in right if y.path not in paired]


def _kind(row: BlockRow) -> tuple[str, str]:
    """What a row is, more loosely: a block instance by its label, an op by its op word."""
    return ("block", row.label) if row.kind == "block" else _identity(row)


def _pair_in_order(rows: list[RowDiff], size_a: tuple[int, int], size_b: tuple[int, int]) -> list[RowDiff]:
    """Within a run of instances of the same block, pair them in order; extra ones come last.

    So 'inception_a * 4' → '* 6' keeps features.6–9 paired with themselves and adds the last two.
    """
    out: list[RowDiff] = []
    i = 0
    while i < len(rows):
        ident = _identity(rows[i].row)
        j = i
        while j < len(rows) and _identity(rows[j].row) == ident:
            j += 1
        left = [r.a for r in rows[i:j] if r.a is not None]
        right = [r.b for r in rows[i:j] if r.b is not None]
        paired = min(len(left), len(right))
        out += [_compare(x, y, size_a, size_b) for x, y in zip(left[:paired], right[:paired], strict=True)]
        out += [RowDiff("removed", x, None) for x in left[paired:]]
        out += [RowDiff("added", None, y) for y in right[paired:]]
        i = j
    return out


__all__ = ["Change", "Diff", "OpDiff", "RowDiff", "diff"]
