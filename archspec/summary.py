"""Parameters, MACs and MACs formulas per block and per op: the numbers behind ``archspec summary``.

Counts come from the op registry (``Op.param_count``, ``Op.macs``, ``Op.macs_formula``) over the
shape-annotated OpGraph, so no weight is allocated and torch is never imported. MACs are
multiply-accumulates of one image at the spec's input size (convolutions and linears; the
element-wise work of norms, activations and pools is not counted, as is usual); a block's
formula is the sum of its ops' formulas in the input's H and W with like terms collected.
Auxiliary heads run only in training mode: their rows are listed, their MACs are not in the total.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from archspec.api import Report, SpecLike, analyse
from archspec.shapes import MAX_PARAMS, shaped_ops
from archspec.symbolic import Shape

_TERM = re.compile(r"^(\d+)(?:·(.+))?$")


@dataclass
class OpRow:
    """One primitive op of the expanded graph."""

    path: str
    op: str
    text: str
    shape: Shape
    params: int
    macs: int
    macs_formula: str
    origin: str = ""  # path of the op as the spec writes it (a composite conv's conv2d, bn, act share one)
    written: str = ""  # that op's short form, $parameters filled in: "conv 96 3x3 p1"
    in_channels: int = 0

    def as_dict(self, h: int, w: int) -> dict[str, Any]:
        return {"path": self.path, "op": self.op, "text": self.text, "output_shape": list(self.shape.at(h, w)),
                "params": self.params, "macs": self.macs, "macs_formula": self.macs_formula,
                "origin": self.origin, "written": self.written}


@dataclass
class BlockRow:
    """One top-level block or op (a row of `check`), with its counts and its ops."""

    path: str
    label: str
    kind: str
    block: str | None
    shape: Shape
    params: int
    macs: int
    macs_formula: str
    train_only: bool
    ops: list[OpRow] = field(default_factory=list)
    block_params: dict[str, Any] = field(default_factory=dict)  # a block instance's $parameters, as used

    def as_dict(self, h: int, w: int, ops: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path, "label": self.label, "kind": self.kind, "block": self.block,
            "output_shape": list(self.shape.at(h, w)), "output_formula": self.shape.formula(),
            "params": self.params, "macs": self.macs, "macs_formula": self.macs_formula,
            "train_only": self.train_only,
        }
        if self.block_params:
            d["block_params"] = self.block_params
        if ops:
            d["ops"] = [o.as_dict(h, w) for o in self.ops]
        return d


@dataclass
class Summary:
    report: Report
    blocks: list[BlockRow]
    macs_formula: str

    @property
    def params(self) -> int:
        return self.report.params

    @property
    def macs(self) -> int:
        return self.report.macs

    def as_dict(self, ops: bool = False) -> dict[str, Any]:
        r = self.report
        h, w = r.input_size
        return {
            "name": r.name, "file": r.file, "input_channels": r.input_channels, "input_size": [h, w],
            "min_input_size": list(r.min_input_size), "output_shape": list(r.output_shape),
            "outputs": {k: list(v.at(h, w)) for k, v in r.outputs.items()},
            "params": r.params, "macs": r.macs, "macs_formula": self.macs_formula,
            "blocks": [b.as_dict(h, w, ops) for b in self.blocks],
        }


def combine(formulas: list[str]) -> str:
    """Sum MACs formulas: ``a·f + b·f`` becomes ``(a+b)·f``; terms keep their first-seen order."""
    coefficients: dict[str, int] = {}
    others: list[str] = []
    for formula in formulas:
        for term in _top_level_terms(formula):
            m = _TERM.match(term.strip())
            if m is None:
                others.append(term.strip())
                continue
            key = m.group(2) or ""
            coefficients[key] = coefficients.get(key, 0) + int(m.group(1))
    terms = [(f"{c}·{k}" if k else str(c)) for k, c in coefficients.items() if c and k]
    constant = coefficients.get("", 0)
    if constant:
        terms.append(str(constant))
    terms += others
    return " + ".join(terms) or "0"


def _top_level_terms(formula: str) -> list[str]:
    """Split on ' + ' outside parentheses: 'floor((H + 3)/4)' is one factor, not two terms."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(formula):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and formula.startswith(" + ", i):
            terms.append(formula[start:i])
            start = i + 3
    terms.append(formula[start:])
    return [t for t in terms if t.strip()]


def summarize_graph(graph: nx.DiGraph, report: Report) -> Summary:
    rows: dict[str, BlockRow] = {}
    aux = graph.graph["aux_weights"]
    for unit in graph.graph["units"]:
        shape = graph.nodes[unit.output]["shape"]
        rows[unit.path] = BlockRow(unit.path, unit.label, unit.kind, unit.block, shape, 0, 0, "0", unit.path in aux)
    formulas: dict[str, list[str]] = {path: [] for path in rows}
    for d, op, shapes in shaped_ops(graph):
        formula = op.macs_formula(d["params"], shapes, d["shape"])
        row = rows[d["unit"]]
        row.ops.append(OpRow(d["path"], d["op"], op.short(d["params"]), d["shape"], d["param_count"], d["mac_count"],
                             formula, d["origin"] or d["path"], d["text"], shapes[0].channels if shapes else 0))
        row.params += d["param_count"]
        row.macs += d["mac_count"]
        formulas[d["unit"]].append(formula)
    for path, row in rows.items():
        row.macs_formula = combine(formulas[path])
    total = combine([f for path, fs in formulas.items() if not rows[path].train_only for f in fs])
    return Summary(report, list(rows.values()), total)


def summarize(spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS) -> Summary:
    """The summary of a spec (a path or YAML text): counts per block and per op, and totals."""
    graph, report = analyse(spec, overrides, max_params)
    summary = summarize_graph(graph, report)
    params = block_params(spec, overrides)
    for row in summary.blocks:
        unit = next((u for u in graph.graph["units"] if u.path == row.path), None)
        if unit is not None and unit.block is not None:
            row.block_params = params.get((unit.block, unit.loc), {})
    return summary


def block_params(spec: SpecLike, overrides: Mapping[str, Any] | None = None) -> dict[tuple[str, Any], dict[str, Any]]:
    """The $parameters of each top-level block instance, keyed by (block, where the instance is written).

    Expansion does not keep them on the graph, so this expands the spec once more and records the
    environment each top-level instance is expanded in (its declared defaults and the written values).
    """
    from archspec.graph import Expander
    from archspec.spec.resolve import resolve

    found: dict[tuple[str, Any], dict[str, Any]] = {}

    class Recorder(Expander):
        def block_env(self, entry: Any, ref: Any, scope: Any) -> dict[str, Any]:
            env = super().block_env(entry, ref, scope)
            if scope.unit is None:
                found[(ref.name, ref.loc)] = dict(env)
            return env

    Recorder(resolve(spec, overrides), scale_width=False).run()
    return found


__all__ = ["Summary", "BlockRow", "OpRow", "summarize", "summarize_graph", "combine"]
