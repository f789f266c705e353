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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from archspec.api import Report, analyze
from archspec.ir import INPUT, OpGraph
from archspec.ops import REGISTRY
from archspec.pipeline import SpecLike
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
    # that op with every field off its model's default written out, whatever the file's `defaults:` say
    # ("conv 96 3x3 p1 eps=0.001"): the same op reads the same in any spec (diff compares these)
    exact: str = ""

    def as_dict(self, h: int, w: int) -> dict[str, Any]:
        return {
            "path": self.path,
            "op": self.op,
            "text": self.text,
            "output_shape": list(self.shape.at(h, w)),
            "params": self.params,
            "macs": self.macs,
            "macs_formula": self.macs_formula,
            "origin": self.origin,
            "written": self.written,
        }


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
            "path": self.path,
            "label": self.label,
            "kind": self.kind,
            "block": self.block,
            "output_shape": list(self.shape.at(h, w)),
            "output_formula": self.shape.formula(),
            "params": self.params,
            "macs": self.macs,
            "macs_formula": self.macs_formula,
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
    memory: Memory | None = None

    @property
    def params(self) -> int:
        return self.report.params

    @property
    def macs(self) -> int:
        return self.report.macs

    def as_dict(self, ops: bool = False) -> dict[str, Any]:
        h, w = self.report.input_size
        return {
            **self.report.totals_dict(),
            "macs_formula": self.macs_formula,
            "blocks": [b.as_dict(h, w, ops) for b in self.blocks],
            **({"memory": self.memory.as_dict()} if self.memory else {}),
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


def summarize_graph(graph: OpGraph, report: Report) -> Summary:
    """The report's rows (their counts as the report totals them) with their ops and MACs formulas."""
    blocks = {u.path: u.block for u in graph.net.units}
    aux = graph.net.aux_weights
    rows = {
        r.path: BlockRow(r.path, r.label, r.kind, blocks[r.path], r.shape, r.params, r.macs, "0", r.path in aux)
        for r in report.rows
    }
    formulas: dict[str, list[str]] = {path: [] for path in rows}
    for r, op, shapes in shaped_ops(graph):
        formula = op.macs_formula(r.params, shapes, r.out)
        rows[r.unit].ops.append(
            OpRow(
                r.path,
                r.op,
                op.short(r.params),
                r.out,
                r.param_count,
                r.mac_count,
                formula,
                r.origin or r.path,
                r.text,
                shapes[0].channels if shapes else 0,
                REGISTRY[r.composite[0]].short(r.composite[1]) if r.composite else op.short(r.params),
            )
        )
        formulas[r.unit].append(formula)
    for path, row in rows.items():
        row.macs_formula = combine(formulas[path])
    total = combine([f for path, fs in formulas.items() if not rows[path].train_only for f in fs])
    return Summary(report, list(rows.values()), total)


def summarize(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS, batch: int = 1
) -> Summary:
    """The summary of a spec (a path or YAML text): counts per block and per op, totals, activation memory."""
    report = analyze(spec, overrides, max_params=max_params)
    graph = report.graph
    summary = summarize_graph(graph, report)
    summary.memory = activation_memory(graph, batch)
    for row in summary.blocks:
        unit = next((u for u in graph.net.units if u.path == row.path), None)
        if unit is not None and unit.block is not None:
            row.block_params = dict(unit.params)
    return summary


# ---- activation memory ------------------------------------------------------------------------------
@dataclass
class Memory:
    """Activation memory of a batch at the spec's input size, in bytes (float32).

    ``train_saved``: the activations autograd keeps for backward in a training step (every output,
    aux heads included; each tensor once, however many ops keep it); ``train_saved_weights``: the
    parameters and BatchNorm statistics it keeps beside them (they exist anyway); ``inference_peak``:
    the most activation bytes alive at once in an inference forward (main output only), the input included.
    """

    batch: int
    train_saved: int
    train_saved_weights: int
    inference_peak: int

    def as_dict(self) -> dict[str, int]:
        return {
            "batch": self.batch,
            "train_saved_bytes": self.train_saved,
            "train_saved_weight_bytes": self.train_saved_weights,
            "inference_peak_bytes": self.inference_peak,
        }


def _numel(shape: Shape, h: int, w: int, batch: int) -> int:
    n = batch
    for v in shape.at(h, w):
        n *= v
    return n


def _storages(graph: OpGraph, nodes: list[str], users: dict[str, int], results: set[str]) -> dict[str, str]:
    """Which tensor each node's output lives in. Views (flatten, identity, dropout that is off) and what
    compile.py computes in place (a ReLU over, or a residual sum into, a ``fresh_output`` value that has
    one reader and is not returned) share their input's; everything else is a new tensor."""
    from archspec.inplace import in_place_target

    storage: dict[str, str] = {}
    for n in nodes:
        record = graph.at(n)
        if record.op == INPUT:
            storage[n] = n
            continue
        ins = graph.inputs_of(n)
        op = REGISTRY[record.op]
        i = in_place_target(graph, n, users, results)
        if op.view or (op.train_module and not getattr(record.params, "p", 1)):  # views; dropout that is off
            storage[n] = storage[ins[0]]
        elif i is not None:  # what compile.py computes in place
            storage[n] = storage[ins[i]]
        else:
            storage[n] = n
    return storage


def _norm_saved(what: str, p: Any, c: int, count: int) -> tuple[int, int]:
    """Bytes a normalisation keeps for backward besides its input: (its weights, the rest); ``c`` its
    channels, ``count`` its output's values."""
    if what == "stats":  # BatchNorm: its scale, running mean and variance, the batch's mean and 1/σ
        return 5 * c * 4, 0
    if what == "ln":  # LayerNorm: its weight and bias, and a mean and 1/σ per pixel (or per vector)
        return (2 * c if getattr(p, "affine", False) else 0) * 4, 2 * (count // c) * 4
    # F.local_response_norm: the squares padded across channels, scale and its power
    return 0, 4 * (count // c) * ((c + p.size - 1) + 2 * c)


def _saved_for_backward(
    graph: OpGraph, order: list[str], storage: dict[str, str], numel: Callable[[str], int]
) -> tuple[set[str], int, int]:
    """What a training step keeps for backward: (the tensors kept, bytes of weights and statistics,
    bytes of the rest: norm statistics, pool indices, dropout masks)."""
    saved: set[str] = set()
    extra = weights = 0
    for n in order:
        record = graph.at(n)
        op = record.op
        if op == INPUT:
            continue
        ins = graph.inputs_of(n)
        for what in REGISTRY[op].saved_for_backward:
            if what == "in":
                saved.add(storage[ins[0]])
            elif what == "out":
                saved.add(storage[n])
            elif what in ("stats", "ln", "lrn"):
                more_weights, more = _norm_saved(what, record.params, graph.at(ins[0]).out.channels, numel(n))
                weights += more_weights
                extra += more
            elif what == "w":  # the weight; a bias is not needed for backward
                bias = getattr(record.params, "out", 0) if getattr(record.params, "bias", False) else 0
                weights += (record.param_count - bias) * 4
            elif what == "indices":
                extra += numel(n) * 8  # int64
            elif what == "mask" and float(getattr(record.params, "p", 0.0)) > 0:
                # CPU dropout multiplies by a float mask: one value per element, or per channel (channelwise)
                extra += numel(n) // _pixels(graph, n) * 4 if getattr(record.params, "channelwise", False) else numel(n) * 4
    return saved, weights, extra


def _pixels(graph: OpGraph, n: str) -> int:
    """H·W of a node's map at the spec's input size (a channelwise dropout's mask has one value per channel)."""
    shape, (h, w) = graph.at(n).shape, graph.net.input.size
    assert shape is not None and shape.height is not None and shape.width is not None
    return max(1, shape.height(h) * shape.width(w))


def _inference_peak(graph: OpGraph, order: list[str], numel: Callable[[str], int]) -> int:
    """The most activation bytes alive at once in an inference forward of the main output."""
    mains = set(graph.net.main_outputs().values())
    needed = set().union(*(nx.ancestors(graph, m) for m in mains)) | mains
    eval_order = [n for n in order if n in needed]
    eval_users = {n: sum(1 for s in graph.succ[n] if s in needed) for n in eval_order}
    eval_storage = _storages(graph, eval_order, eval_users, mains)
    kept = {eval_storage[m] for m in mains}
    last_read: dict[str, int] = {}
    for i, n in enumerate(eval_order):
        for src in graph.inputs_of(n):
            last_read[eval_storage[src]] = i
    live: dict[str, int] = {}
    peak = 0
    for i, n in enumerate(eval_order):
        st = eval_storage[n]
        if n != INPUT and REGISTRY[graph.at(n).op].train_module:  # dropout: identity in inference
            st = eval_storage[n] = eval_storage[graph.inputs_of(n)[0]]
        live[st] = max(live.get(st, 0), numel(n) * 4)
        peak = max(peak, sum(live.values()))
        for s in [s for s in live if last_read.get(s, -1) <= i and s not in kept]:
            del live[s]
    return peak


def activation_memory(graph: OpGraph, batch: int = 1) -> Memory:
    """Estimate activation memory from the shaped OpGraph alone (see :class:`Memory`); torch is not imported."""

    h, w = graph.net.input.size
    order = graph.ordered()
    users = {n: len(graph.succ[n]) for n in order}
    storage = _storages(graph, order, users, set(graph.net.outputs.values()))

    def numel(n: str) -> int:
        shape = graph.at(n).shape
        assert shape is not None, "activation memory needs a graph with shapes"
        return _numel(shape, h, w, batch)

    size: dict[str, int] = {}
    for n in order:
        size[storage[n]] = max(size.get(storage[n], 0), numel(n) * 4)
    saved, weights, extra = _saved_for_backward(graph, order, storage, numel)
    train = sum(size[s] for s in saved) + extra
    return Memory(batch, train, weights, _inference_peak(graph, order, numel))


__all__ = ["Summary", "BlockRow", "OpRow", "Memory", "summarize", "summarize_graph", "combine", "activation_memory"]
