"""Symbolic shape inference over the OpGraph.

Writes each node's ``shape`` (a :class:`~archspec.symbolic.Shape`), ``range`` and ``conditions``
(archspec/ir.py), and the network's ``min_size``, ``params``, ``partial_merges`` and ``warnings``; checks that concat
branches agree in H and W and residual sums in C, H and W, and finds the minimum input size
at which every feature map is at least 1×1. Failures are SpecErrors at the node's YAML location.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from math import lcm
from typing import TYPE_CHECKING

import networkx as nx

from archspec.errors import Loc, SpecError, SpecWarning
from archspec.ir import INPUT, Node, OpGraph, PartialMerge
from archspec.ops import REGISTRY, Op, OpShapeError
from archspec.ops.merge import broadcast_onto
from archspec.sizes import UNBOUNDED, Accepted, Range, condition, meet
from archspec.symbolic import NEVER, Dim, Shape, Window

if TYPE_CHECKING:
    from archspec.language.model import InputSpec

MAX_PARAMS = 2_000_000_000


def shaped_ops(graph: OpGraph) -> Iterator[tuple[Node, Op, list[Shape]]]:
    """After shape inference: each op node's record, registry entry and input shapes, in order."""
    nodes = dict(graph.records())
    for node in graph.ordered():
        record = nodes[node]
        if record.op != INPUT:
            yield record, REGISTRY[record.op], [nodes[p].out for p in graph.inputs_of(node)]


def accepted(graph: OpGraph, nodes: Iterable[str]) -> Accepted:
    """Input sizes at which every node in ``nodes`` (so everything they depend on) is computable.

    Reads the ``range`` and ``conditions`` this stage wrote onto the nodes. The network's two sets
    (eval: the main output; training: every output) are on ``graph.net``; this is for other sets.
    """
    nodes = list(nodes)
    interval = meet(UNBOUNDED, *(graph.at(n).sizes for n in nodes))
    if not any(r.conditions for _, r in graph.records()):
        return Accepted(interval, ())  # the common case: no need to find what the outputs depend on
    seen: set[str] = set(nodes)
    for n in nodes:
        seen |= nx.ancestors(graph, n)
    conds = sorted({c for n in seen for c in graph.at(n).conditions})
    return Accepted(interval, tuple(conds))


@dataclass
class ShapeInfo:
    min_size: tuple[int, int]
    input_shape: Shape
    outputs: dict[str, Shape] = field(default_factory=dict)
    accepted: dict[str, Accepted] = field(default_factory=dict)  # per output: input sizes it can be computed at


def _own_range(out: Shape, least: tuple[int, int] = (1, 1), inputs: list[Shape] | None = None) -> Range | None:
    """The input sizes this one output shape allows, or None when it allows every size (``least``: the
    op's own least input extent, Op.least_input, as a bound on the network's input)."""
    lo_h = lo_w = 1
    hi_h = hi_w = NEVER
    if out.height is not None and out.width is not None:
        lo_h, lo_w = out.height.min_input(), out.width.min_input()
    x = inputs[0] if inputs else None
    if least != (1, 1) and x is not None and x.height is not None and x.width is not None:
        lo_h = max(lo_h, x.height.window(Window(least[0])).min_input())  # input extent >= least
        lo_w = max(lo_w, x.width.window(Window(least[1])).min_input())
    if out.flat is not None:
        fh, fw = out.flat
        (a, b), (c, d) = fh.input_range(fh(fh.ref or 0)), fw.input_range(fw(fw.ref or 0))
        lo_h, hi_h, lo_w, hi_w = max(lo_h, a), b, max(lo_w, c), d
    return None if (lo_h, lo_w, hi_h, hi_w) == UNBOUNDED else (lo_h, lo_w, hi_h, hi_w)


def input_shape(spec_input: InputSpec) -> Shape:
    """The network input's shape: C×H×W, H and W symbols valued at the spec's size."""
    h, w = spec_input.size
    return Shape(spec_input.channels, Dim(0, 1, symbol="H", ref=h), Dim(0, 1, symbol="W", ref=w))


def op_shape(op: Op, record: Node, shapes: list[Shape]) -> Shape:
    """The op's output shape from its inputs', or the located SpecError its shape rule gives."""
    try:
        return op.infer(record.params, shapes)
    except OpShapeError as e:
        raise SpecError(
            f"{op.name} at {record.path or 'the network'}: {e} (input {shapes[0].formula()})",
            record.loc,
            code=e.code,
            hint=e.hint,
        ) from None


def infer_shapes(graph: OpGraph, max_params: int = MAX_PARAMS) -> ShapeInfo:
    """Annotate every node with ``shape``, ``range`` (input sizes at which it can be computed) and its
    counts; the network with its totals and the input sizes it accepts (archspec/ir.py)."""
    net = graph.net
    h, w = net.input.size
    x = input_shape(net.input)
    graph.at(INPUT).shape = x
    graph.at(INPUT).range = UNBOUNDED
    total_params = total_macs = 0
    aux = set(net.aux_weights)
    net.partial_merges = []
    nodes = dict(graph.records())  # node → its record, without the view's per-lookup cost
    shared: list[str] = []
    broadcasts: list[SpecWarning] = []  # residual sums adding a gate's output (residual-gate)
    for node in graph.ordered():
        record = nodes[node]
        if record.op == INPUT:
            continue
        op = REGISTRY[record.op]
        preds = graph.inputs_of(node)
        shapes: list[Shape] = [nodes[p].out for p in preds]
        if op.agreement is not None:
            broadcasts += _check_merge(graph, node, preds, shapes)
        # the expansion worked out the shapes some `in` read, by the same rule (archspec/graph/early.py)
        record.shape = out = record.shape or op_shape(op, record, shapes)
        _agreeing_sizes(op, record, shapes, (h, w))
        own = _own_range(out, op.least_input(record.params), shapes)
        r = record.range = meet(*(nodes[p].sizes for p in preds), *([own] if own else []))
        if own is not None and (own[0] >= NEVER or own[1] >= NEVER):
            raise SpecError(
                f"{op.name} at {record.path} makes the feature map empty for every input size", record.loc, code="shape"
            )
        if r[0] > r[2] or r[1] > r[3]:
            raise SpecError(
                f"{op.name} at {record.path}: no input size makes every feature map before it non-empty"
                " and keeps the flattened sizes it depends on",
                record.loc,
                code="shape",
            )
        if record.shares is not None:  # the module of another node, called again: its weights counted there
            shared.append(node)
        record.param_count = 0 if record.shares is not None else op.param_count(record.params, shapes, out)
        record.mac_count = op.macs(record.params, shapes, out, h, w)
        total_params += record.param_count
        if record.unit not in aux:
            total_macs += record.mac_count
        if total_params > max_params:
            raise SpecError(
                f"the model would have more than {max_params:,} parameters (at {record.path})",
                record.loc,
                code="limit",
                hint="shrink the network, or raise the budget with --max-params",
            )
    for node in shared:  # after the loop: an aux head runs right after its tap, so a copy there may precede its original
        _check_shared(graph, node)
    outputs = net.outputs
    per_output = {name: accepted(graph, [n]) for name, n in outputs.items()}
    main = per_output["logits"] if "logits" in net.main else accepted(graph, net.main_outputs().values())
    every = accepted(graph, outputs.values())
    if every.empty:
        raise SpecError(
            "no input size makes every feature map non-empty and keeps the sizes that flatten and merges depend on",
            graph.input_loc(),
            code="shape",
        )
    (lo_h, lo_w), r = every.min_size, every.interval
    if lo_h <= h <= r[2] and lo_w <= w <= r[3]:  # from the minimum up to the bounds, only a partial merge refuses
        _partial_merge_mismatch(graph, h, w, every)
    axes: dict[PartialMerge, set[int]] = {}  # one warning per pair of inputs, naming both axes when both
    for m in net.partial_merges:
        axes.setdefault(replace(m, axis=0), set()).add(m.axis)
    net.warnings = [w for w in net.warnings if w.code not in ("partial-merge", "residual-gate")]  # found again on each run
    net.warnings += [_partial_merge_warning(graph, m, every, "HW" if len(a) == 2 else "HW"[min(a)]) for m, a in axes.items()]
    net.warnings += broadcasts
    problem = every.problem(h, w)
    if problem:
        what = " in training mode (with its aux heads)" if len(outputs) > 1 else ""
        raise SpecError(
            f"{problem} this network accepts{what}: {every.describe()}",
            graph.input_loc(),
            code="input-too-small",
            hint=_size_hint(every),
        )
    net.min_size = main.min_size
    net.params, net.macs = total_params, total_macs
    net.accepted, net.train_accepted = main, every
    return ShapeInfo(main.min_size, x, {name: graph.at(n).out for name, n in outputs.items()}, per_output)


def _agreeing_sizes(op: Op, record: Node, shapes: list[Shape], hw: tuple[int, int]) -> None:
    """The input sizes an op is defined at (Op.agreeing_sizes: space_to_depth's H = B·floor(H/B)), kept as
    conditions as a partial merge's are; at the spec's own size a located error where they differ."""
    for axis, a, b, need in op.agreeing_sizes(record.params, shapes):
        if a.equals(b)[0]:
            continue
        if a(hw[axis]) != b(hw[axis]):
            raise SpecError(
                f"{op.name} at {record.path or 'the network'}: its input's {'HW'[axis]} is {a(hw[axis])} at input "
                f"size {hw[0]}×{hw[1]}, and it needs {need} (input {shapes[0].formula()})",
                record.loc,
                code="shape",
                hint=f"set input.size to a size it accepts (`check` at another size lists them), or pad or crop the "
                f"map before it to {need}",
            )
        if (a.affine() is None or b.affine() is None) and (a.periodic() is None or b.periodic() is None):
            raise SpecError(
                f"{op.name} at {record.path or 'the network'}: cannot tell at which input sizes its input's "
                f"{'HW'[axis]} ({a.formula()}) is one it takes: a size scaled by an inexact factor before it",
                record.loc,
                code="shape",
                hint="resize by a whole factor or a ratio p/q with q a power of two before it",
            )
        record.conditions += (condition(axis, a, b),)


def _check_shared(graph: OpGraph, node: str) -> None:
    """A ``share:`` replay calls the module built for its original, which depends on the channels and rank of
    its inputs and output (compile.build_modules): they must be the original's."""
    record = graph.at(node)
    first = graph.at(record.shares or "")
    shapes = [graph.at(p).out for p in graph.inputs_of(node)]
    theirs = [graph.at(p).out for p in graph.inputs_of(record.shares or "")]
    op = REGISTRY[record.op]
    if op.stateful or op.parameter_only:  # a module's output too (a flatten's follows its input's size: no module)
        shapes, theirs = [*shapes, record.out], [*theirs, first.out]
    if [(s.channels, s.is_map) for s in shapes] != [(s.channels, s.is_map) for s in theirs]:
        raise SpecError(
            f"share: {record.op} at {record.path} is given {shapes[0].formula()}, but its module (line "
            f"{first.loc.line}) was made for {theirs[0].formula()}",
            record.loc,
            code="shape-mismatch",
            hint="a shared part takes inputs of the channels it was made for (a map where it had a map); "
            "pool or project to them first",
        )


def _size_hint(acc: Accepted) -> str:
    if acc.max_size is None and not acc.conditions:
        return "set input.size to at least [{}, {}]".format(*acc.min_size)
    return f"set input.size to one of: {acc.describe()}"


def _describe(graph: OpGraph, node: str, here: Loc) -> str:
    """'conv 96 3x3 s2 at features.6.branch0 (35:17)': where a merge's input comes from."""
    record = graph.at(node)
    if record.op == INPUT:
        return "the input"
    loc = record.loc
    where = f"{loc.line}:{loc.column}" if loc.file == here.file else str(loc)
    return f"{record.text} at {record.origin or 'the network'}, {where}"


def _merge_where(graph: OpGraph, node: str) -> tuple[str, str]:
    """('concat' or 'residual add', the path of the block or group the merge closes)."""
    record = graph.at(node)
    kind = "residual add" if _whole(record) else "concat"
    return kind, record.path.rsplit(".", 1)[0] if "." in record.path else "the network"


def _inputs_text(graph: OpGraph, m: PartialMerge, h: int, w: int) -> str:
    loc = graph.at(m.node).loc
    a, b = (graph.at(n).shape for n in (m.first, m.other))
    assert a is not None and b is not None
    return (
        f"{a.text(h, w)} = {a.formula()} ({_describe(graph, m.first, loc)}) vs "
        f"{b.text(h, w)} = {b.formula()} ({_describe(graph, m.other, loc)})"
    )


def _partial_merge_warning(graph: OpGraph, m: PartialMerge, every: Accepted, axes: str) -> SpecWarning:
    kind, where = _merge_where(graph, m.node)
    h, w = graph.net.input.size
    axis = " and ".join(axes)
    return SpecWarning(
        f"{kind} in {where}: branches agree in {axis} at some input sizes only: {_inputs_text(graph, m, h, w)}",
        graph.at(m.node).loc,
        "partial-merge",
        hint=f"the network accepts {every.describe()}; to accept every size make the branches' strides, "
        "kernels and paddings agree (--strict makes this an error)",
    )


def _partial_merge_mismatch(graph: OpGraph, h: int, w: int, every: Accepted) -> None:
    """At the spec's input size, a merge whose inputs disagree is a shape mismatch naming both."""
    for m in graph.net.partial_merges:
        a, b = (graph.at(n).shape for n in (m.first, m.other))
        assert a is not None and b is not None
        da, db = (a.height, b.height) if m.axis == 0 else (a.width, b.width)
        size = (h, w)[m.axis]
        if da is not None and db is not None and da(size) != db(size):
            kind, where = _merge_where(graph, m.node)
            raise SpecError(
                f"{kind} in {where}: spatial sizes differ at input size {h}×{w}: {_inputs_text(graph, m, h, w)}",
                graph.at(m.node).loc,
                code="shape-mismatch",
                hint=f"these branches agree at some input sizes only: {every.describe()}; set input.size "
                "to one of them or make the branches agree at every size",
            )


def _whole(record: Node) -> bool:
    """A merge whose inputs must agree in C×H×W (a residual sum), not only in H×W (a concat)."""
    return REGISTRY[record.op].agreement == "chw"


def _check_merge(graph: OpGraph, node: str, preds: list[str], shapes: list[Shape]) -> list[SpecWarning]:
    """Refuse branches that do not agree; a residual sum's that agree by broadcasting (one side's C, H or W
    is 1 where the other's is not) are accepted, warned of where the broadcast side ends in a gate's
    activation (:func:`_residual_gate`)."""
    record = graph.at(node)
    h, w = graph.net.input.size
    first, first_shape = preds[0], shapes[0]
    whole = _whole(record)
    kind = "residual add" if whole else "concat"
    for other, shape in zip(preds[1:], shapes[1:], strict=True):
        problem = None
        onto, back = broadcast_onto(shape, first_shape), broadcast_onto(first_shape, shape)
        if whole and onto != back:  # one side broadcasts onto the other (both ways: equal shapes)
            return _residual_gate(graph, record, other if onto else first)
        if first_shape.is_map != shape.is_map:
            problem = "a feature map meets a vector"
        elif whole and first_shape.channels != shape.channels:
            problem = "channels differ"
        elif first_shape.is_map:
            assert first_shape.height and shape.height and first_shape.width and shape.width
            conds = []
            for axis, (da, db, ref) in enumerate(((first_shape.height, shape.height, h), (first_shape.width, shape.width, w))):
                if da.equals(db)[0]:
                    continue
                if _agree_sometimes(da, db, ref):
                    conds.append(condition(axis, da, db))  # accept only the input sizes where they agree
                    graph.net.partial_merges.append(PartialMerge(node, axis, first, other))
                elif _unexact(da, db) is not None:
                    _refuse_unexact(record, kind, _unexact(da, db), (first_shape, shape), (h, w))
                else:
                    problem = "spatial sizes differ"
            record.conditions += tuple(conds)
        if problem:
            where = record.path.rsplit(".", 1)[0] if "." in record.path else "the network"
            a = f"{first_shape.text(h, w)} = {first_shape.formula()} ({_describe(graph, first, record.loc)})"
            b = f"{shape.text(h, w)} = {shape.formula()} ({_describe(graph, other, record.loc)})"
            if whole:
                a, b = "shortcut " + a, "body " + b
            hint = (
                "shortcut and body must give the same C×H×W; add a projection shortcut or fix the strides"
                if whole
                else "every branch must reach the same H×W; check strides and paddings"
            )
            if whole and shape.per_channel and not first_shape.per_channel:
                hint = "the body gives one value per channel: to scale x by it, write gate: [...] (squeeze-and-excitation)"
            raise SpecError(f"{kind} in {where}: {problem}: {a} vs {b}", record.loc, code="shape-mismatch", hint=hint)
    return []


def _residual_gate(graph: OpGraph, record: Node, small: str) -> list[SpecWarning]:
    """A residual sum broadcasting a value that a sigmoid or hard sigmoid made: a gate written as a residual
    (x + σ(·) where x · σ(·) was meant), warned of (``residual-gate``); any other broadcast sum, none."""
    source = graph.at(small)
    if source.op not in ("sigmoid", "hardsigmoid"):
        return []
    return [
        SpecWarning(
            f"this residual adds a {source.op}'s output, one value per channel or pixel broadcast onto the other "
            "side: x + gate, where a gate multiplies",
            record.loc,
            "residual-gate",
            hint="to scale x by it, write gate: [...] (squeeze-and-excitation); to add it, end the body with "
            "another op (--strict makes this an error)",
        )
    ]


def _refuse_unexact(record: Node, kind: str, size: Dim | None, shapes: tuple[Shape, Shape], hw: tuple[int, int]) -> None:
    """A merge beside a size archspec cannot compare exactly: a located error saying which and why."""
    assert size is not None
    where = record.path.rsplit(".", 1)[0] if "." in record.path else "the network"
    texts = " vs ".join(f"{s.text(*hw)} = {s.formula()}" for s in shapes)
    raise SpecError(
        f"{kind} in {where}: cannot tell at which input sizes the branches agree ({texts}): the size "
        f"{size.formula()} is torch's floor(X·s) in floating point for a factor s that is not an exact ratio p/q "
        "with q a power of two (such as 1.5, 0.75, 2.5), or it repeats only over more than 65,536 sizes",
        record.loc,
        code="shape-mismatch",
        hint="upsample by such a ratio, or resize to the other branch's size with interpolate size_of=NAME "
        "(as torchvision's FPN does), which agrees at every size",
    )


def _agree_sometimes(a: Dim, b: Dim, ref: int) -> bool:
    """Two sizes that differ for some inputs but not by construction: they agree at the spec's size,
    or they grow alike (same m) and agree periodically, like a padded stride-2 conv beside a ceil-mode
    stride-2 pool (equal for even maps). A stride or padding mistake makes them grow apart instead."""
    if not (a.is_canonical and b.is_canonical):
        return _affine_agree_sometimes(a, b, ref)
    if a(ref) == b(ref) >= 1:
        return True
    if a.m != b.m or a.m == 0:
        return False
    start = max(a.min_input(), b.min_input())
    return any(a(x) == b(x) for x in range(start, start + a.m))  # a(x) - b(x) has period m


def _affine_agree_sometimes(a: Dim, b: Dim, ref: int) -> bool:
    """As :func:`_agree_sometimes` for sizes after an upsampling or a transposed convolution, when both
    have the form k·floor((X + a)/m) + c (a skip beside a map pooled /2 and upsampled ×2: 2·floor(X/2)
    vs X, equal for even X), or else a periodic form R·(X // P) + t[X mod P] (after a factor p/q such as
    1.5: floor(1.5·floor(X/3)) vs floor(X/2), equal where X mod 6 is 0, 1 or 3); refused where either has
    neither (:func:`_unexact`)."""
    fa, fb = a.affine(), b.affine()
    if fa is None or fb is None:
        pa, pb = a.periodic(), b.periodic()
        if pa is None or pb is None:
            return False
        fa, fb = (pa[1], 0, pa[0], 0), (pb[1], 0, pb[0], 0)  # the rates R/P, as k/m, and the periods
    if a(ref) == b(ref) >= 1:
        return True
    if fa[0] * fb[2] != fb[0] * fa[2] or fa[0] == fb[0] == 0:  # they grow apart: only finitely many could agree
        return False
    start = max(a.min_input(), b.min_input())
    return any(a(x) == b(x) for x in range(start, start + lcm(fa[2], fb[2])))  # the difference has that period


def _unexact(a: Dim, b: Dim) -> Dim | None:
    """The size of two that archspec cannot compare exactly (after a factor that is not an exact ratio
    p/q, symbolic.Scale.ratio, or with a period past symbolic.MAX_PERIOD), or None."""
    return next((d for d in (a, b) if not d.is_canonical and d.affine() is None and d.periodic() is None), None)
