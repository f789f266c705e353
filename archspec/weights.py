"""Carry weights from a network into a variant of it: ``archspec.transfer(source, variant)``.

A variant's module paths shift (six Inception-A blocks instead of four move every later block
two places), so a plain ``load_state_dict`` fails. Instead both sides are cut into *rows* — the
top-level items ``check`` and ``diff`` list (``features.6``, ``layer2.1``, ``fc``) — and the
rows are aligned the way ``archspec diff`` aligns them: as sequences (difflib) on what each row
is, with the instances of a run of the same block paired in order, so the existing four
Inception-A keep their weights and the two extra ones are new. What a row *is* here is its set
of tensor names relative to the row (the block's inner structure), which a plain state_dict
has too, so the source may be any state_dict or module whose names follow the variant's
naming — the network the variant was designed from, archspec-built or not.

Within a pair of rows, a tensor with the same relative name and shape is copied; with another
shape it is *reshaped* when ``reshape="slice"`` (the overlapping leading slice is copied, e.g.
the first channels of a widened conv; the rest keeps its initialisation), else not copied.
Every tensor of the variant is accounted for: transferred, reshaped, mismatched (left
initialised because its shape differs), new (no counterpart); and every source tensor not
used is *dropped*. The returned :class:`Transfer` prints as a table of counts and totals.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

KINDS = ("transferred", "reshaped", "mismatched", "new", "dropped")
_DESCRIPTION = {
    "transferred": "copied unchanged",
    "reshaped": "leading slice copied (shapes differ)",
    "mismatched": "shapes differ, left initialised",
    "new": "no counterpart, left initialised",
    "dropped": "source tensors not used",
}
_STATS = re.compile(r"(^|\.)(running_mean|running_var|num_batches_tracked)$")


@dataclass
class Entry:
    kind: str
    key: str | None  # the variant's key (None for dropped)
    source_key: str | None
    shape: tuple[int, ...]
    source_shape: tuple[int, ...] | None
    numel: int  # values in the variant's tensor (dropped: in the source's)
    parameter: bool  # a learnable parameter, not a BatchNorm statistic


@dataclass
class Transfer:
    """What :func:`transfer` did, tensor by tensor, with totals per kind."""

    entries: list[Entry] = field(default_factory=list)
    pairs: list[tuple[str | None, str | None]] = field(default_factory=list)  # (source row, variant row)

    def of(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    def count(self, kind: str) -> int:
        return len(self.of(kind))

    def params(self, kind: str) -> int:
        """Learnable parameter values in the tensors of this kind (BatchNorm statistics excluded)."""
        return sum(e.numel for e in self.of(kind) if e.parameter)

    @property
    def complete(self) -> bool:
        """Every tensor of the variant was copied unchanged and no source tensor was left over."""
        return all(e.kind == "transferred" for e in self.entries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": {k: {"tensors": self.count(k), "params": self.params(k)} for k in KINDS},
            "rows": [{"source": a, "variant": b} for a, b in self.pairs],
            "tensors": [
                {
                    "kind": e.kind,
                    "key": e.key,
                    "source_key": e.source_key,
                    "shape": list(e.shape),
                    "source_shape": list(e.source_shape) if e.source_shape is not None else None,
                }
                for e in self.entries
            ],
        }

    def table(self, details: int = 8) -> str:
        """The totals per kind, then up to ``details`` keys of every kind but transferred."""
        lines = [f"{'':12} {'tensors':>8} {'parameters':>12}  meaning"]
        for k in KINDS:
            lines.append(f"{k:12} {self.count(k):8,} {self.params(k):12,}  {_DESCRIPTION[k]}")
        for k in KINDS[1:]:
            shown = self.of(k)
            for e in shown[:details]:
                if k == "dropped":
                    lines.append(f"  dropped     {e.source_key} {list(e.source_shape or ())}")
                elif e.source_key is None:
                    lines.append(f"  {k:11} {e.key} {list(e.shape)}")
                else:
                    lines.append(f"  {k:11} {e.key} {list(e.shape)} ← {e.source_key} {list(e.source_shape or ())}")
            if len(shown) > details:
                lines.append(f"  … and {len(shown) - details} more {k}")
        return "\n".join(lines)

    __str__ = table


def _row_paths(model: Any) -> list[str] | None:
    report = getattr(model, "archspec_report", None)
    if report is None:
        return None
    return [r.path for r in report.rows]


def _pattern(path: str) -> re.Pattern[str]:
    """A row path with its list indices generalised: 'features.6' matches 'features.10' too."""
    parts = [r"\d+" if p.isdigit() else re.escape(p) for p in path.split(".")]
    return re.compile(r"\.".join(parts) + r"(?=\.|$)")


def _rows(keys: list[str], exact: list[str] | None, patterns: list[re.Pattern[str]]) -> dict[str, list[str]]:
    """Group keys into rows, in first-seen order: by the exact row paths when the model has them,
    else by the variant's row paths with indices generalised; a key under no row is its own row."""
    rows: dict[str, list[str]] = {}
    exact_sorted = sorted(exact or [], key=len, reverse=True)
    for key in keys:
        row = None
        for path in exact_sorted:
            if path and (key == path or key.startswith(path + ".")):
                row = path
                break
        if row is None and exact is None:
            best = ""
            for pat in patterns:
                m = pat.match(key)
                if m and len(m.group(0)) > len(best):
                    best = m.group(0)
            row = best or None
        if row is None:
            row = key.rpartition(".")[0] or key
        rows.setdefault(row, []).append(key)
    return rows


def _signature(row: str, keys: list[str]) -> tuple[str, ...]:
    return tuple(sorted(k[len(row) + 1 :] if k.startswith(row + ".") else k for k in keys))


def _align(a: list[tuple[str, tuple[str, ...]]], b: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str | None, str | None]]:
    """Pair rows as diff does: sequence alignment on identity, then runs of one identity in order."""
    ids_a, ids_b = [s for _, s in a], [s for _, s in b]
    merged: list[tuple[tuple[str, ...], str | None, str | None]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ids_a, ids_b, autojunk=False).get_opcodes():
        if tag == "equal":
            merged += [(ids_a[i], a[i][0], b[j][0]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        else:
            merged += [(ids_a[i], a[i][0], None) for i in range(i1, i2)]
            merged += [(ids_b[j], None, b[j][0]) for j in range(j1, j2)]
    out: list[tuple[str | None, str | None]] = []
    i = 0
    while i < len(merged):
        j = i
        while j < len(merged) and merged[j][0] == merged[i][0]:
            j += 1
        left = [x[1] for x in merged[i:j] if x[1] is not None]
        right = [x[2] for x in merged[i:j] if x[2] is not None]
        n = min(len(left), len(right))
        out += list(zip(left[:n], right[:n], strict=True))
        out += [(x, None) for x in left[n:]] + [(None, y) for y in right[n:]]
        i = j
    # rows of different identity facing each other (a changed block, e.g. another parameter set
    # giving the same names) were paired above; left-over unpaired rows whose relative names
    # coincide in part are paired too, in order, so a widened block still reports its reshapes
    return _pair_leftovers(out, dict(a), dict(b))


def _pair_leftovers(
    pairs: list[tuple[str | None, str | None]], sig_a: dict[str, tuple[str, ...]], sig_b: dict[str, tuple[str, ...]]
) -> list[tuple[str | None, str | None]]:
    out: list[tuple[str | None, str | None]] = []
    i = 0
    while i < len(pairs):
        if pairs[i][0] is not None and pairs[i][1] is not None:
            out.append(pairs[i])
            i += 1
            continue
        j = i
        while j < len(pairs) and (pairs[j][0] is None or pairs[j][1] is None):
            j += 1
        left = [p[0] for p in pairs[i:j] if p[0] is not None]
        right = [p[1] for p in pairs[i:j] if p[1] is not None]
        while left and right and set(sig_a[left[0]]) & set(sig_b[right[0]]) and len(left) == len(right):
            out.append((left.pop(0), right.pop(0)))
        out += [(x, None) for x in left] + [(None, y) for y in right]
        i = j
    return out


def _state_of(source: Any) -> tuple[Mapping[str, Any], list[str] | None, set[str] | None]:
    if isinstance(source, (str, PurePath)):  # a file (.pt or .safetensors), or timm:NAME / torchvision:NAME
        source = weights_source(str(source))
    if isinstance(source, Mapping):
        return source, None, None
    state_dict = getattr(source, "state_dict", None)
    if state_dict is None:
        raise TypeError(f"transfer: the source must be a state_dict or a torch.nn.Module, not {type(source).__name__}")
    return state_dict(), _row_paths(source), {n for n, _ in source.named_parameters()}


def transfer(source: Any, variant: Any, *, reshape: str = "skip") -> Transfer:
    """Copy into ``variant`` (a module, usually built by ``archspec.build``) every tensor of ``source``
    (a state_dict, a module, or a saved file: ``.pt`` or ``.safetensors``, or ``timm:NAME`` /
    ``torchvision:NAME``) whose row and relative name correspond; see the module docstring.

    ``reshape="slice"`` also copies the overlapping leading slice of tensors whose shapes differ.
    Returns a :class:`Transfer`; ``print(result)`` shows its table. The variant is changed in place.
    """
    import torch

    if reshape not in ("skip", "slice"):
        raise ValueError(f"transfer: reshape must be 'skip' or 'slice', not {reshape!r}")
    src, src_rows, src_params = _state_of(source)
    dst = variant.state_dict()
    dst_params = {n for n, _ in variant.named_parameters()}
    var_rows = _row_paths(variant)
    patterns = [_pattern(p) for p in var_rows or []]
    rows_a = _rows(list(src), src_rows, patterns)
    rows_b = _rows(list(dst), var_rows, patterns)
    sig_a = [(r, _signature(r, ks)) for r, ks in rows_a.items()]
    sig_b = [(r, _signature(r, ks)) for r, ks in rows_b.items()]
    result = Transfer(pairs=_align(sig_a, sig_b))

    def is_param(key: str, params: set[str] | None) -> bool:
        return key in params if params is not None else not _STATS.search(key)

    used: set[str] = set()
    with torch.no_grad():
        for ra, rb in result.pairs:
            if rb is None:
                continue
            by_name = {k[len(ra) + 1 :] if k.startswith(ra + ".") else k: k for k in rows_a[ra]} if ra else {}
            for key in rows_b[rb]:
                rel = key[len(rb) + 1 :] if key.startswith(rb + ".") else key
                t = dst[key]
                skey = by_name.get(rel)
                param = key in dst_params
                if skey is None:
                    result.entries.append(Entry("new", key, None, tuple(t.shape), None, t.numel(), param))
                    continue
                s = src[skey]
                used.add(skey)
                if tuple(s.shape) == tuple(t.shape):
                    t.copy_(s.to(t.dtype))
                    kind = "transferred"
                elif reshape == "slice" and s.dim() == t.dim():
                    index = tuple(slice(0, min(x, y)) for x, y in zip(s.shape, t.shape, strict=True))
                    t[index].copy_(s[index].to(t.dtype))
                    kind = "reshaped"
                else:
                    kind = "mismatched"
                result.entries.append(Entry(kind, key, skey, tuple(t.shape), tuple(s.shape), t.numel(), param))
    for key, s in src.items():
        if key not in used:
            shape = tuple(getattr(s, "shape", ()))
            result.entries.append(
                Entry("dropped", None, key, shape, shape, int(getattr(s, "numel", lambda: 0)()), is_param(key, src_params))
            )
    return result


def weights_source(spec: str, pretrained: bool = True) -> Any:
    """A state_dict from the command line's ``--weights-from``: a file saved with torch.save, or
    ``timm:NAME`` / ``torchvision:NAME`` (that library's pretrained weights, downloaded by it)."""
    if spec.startswith(("timm:", "torchvision:")):
        from archspec.importer.sources import load_model

        return load_model(spec, pretrained=pretrained).state_dict()
    from archspec.export import read_state_dict

    return read_state_dict(spec)


__all__ = ["Transfer", "Entry", "transfer", "weights_source", "KINDS"]
