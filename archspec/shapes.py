"""Symbolic shape inference over the OpGraph.

Writes ``shape`` (a :class:`~archspec.symbolic.Shape`) onto every node, checks that concat
branches agree in H and W and residual sums in C, H and W, and finds the minimum input size
at which every feature map is at least 1×1. Failures are SpecErrors at the node's YAML location.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from archspec.errors import Loc, SpecError
from archspec.ops import REGISTRY, OpShapeError
from archspec.symbolic import NEVER, Dim, Shape

MAX_PARAMS = 2_000_000_000


def ordered(graph: nx.DiGraph) -> list[str]:
    """Topological order, stable: ties broken by the order nodes were written in the spec."""
    order = nx.get_node_attributes(graph, "order")
    if all(order[u] < order[v] for u, v in graph.edges):  # the usual case: the spec order is topological
        return sorted(graph, key=order.__getitem__)
    return list(nx.lexicographical_topological_sort(graph, key=lambda n: order[n]))


def inputs_of(graph: nx.DiGraph, node: str) -> list[str]:
    preds = graph.pred[node]
    return sorted(preds, key=lambda p: preds[p]["slot"])


@dataclass
class ShapeInfo:
    min_size: tuple[int, int]
    input_shape: Shape
    outputs: dict[str, Shape] = field(default_factory=dict)


def infer_shapes(graph: nx.DiGraph, max_params: int = MAX_PARAMS) -> ShapeInfo:
    spec_input = graph.graph["input"]
    x = Shape(spec_input.channels, Dim(0, 1, symbol="H"), Dim(0, 1, symbol="W"))
    graph.nodes["input"]["shape"] = x
    min_h, min_w = 1, 1
    total_params = 0
    for node in ordered(graph):
        data = graph.nodes[node]
        if data["op"] == "input":
            continue
        op = REGISTRY[data["op"]]
        preds = inputs_of(graph, node)
        shapes = [graph.nodes[p]["shape"] for p in preds]
        if op.name in ("concat", "add"):
            _check_merge(graph, node, preds, shapes)
        try:
            out = op.infer(data["params"], shapes)
        except OpShapeError as e:
            raise SpecError(f"{op.name} at {data['path'] or 'the network'}: {e} (input {shapes[0].formula()})",
                            data["loc"], code=e.code, hint=e.hint) from None
        data["shape"] = out
        if out.height is not None and out.width is not None:
            mh, mw = out.height.min_input(), out.width.min_input()
            if mh >= NEVER or mw >= NEVER:
                raise SpecError(f"{op.name} at {data['path']} makes the feature map empty for every input size",
                                data["loc"], code="shape")
            min_h, min_w = max(min_h, mh), max(min_w, mw)
        total_params += op.param_count(data["params"], shapes, out)
        if total_params > max_params:
            raise SpecError(f"the model would have more than {max_params:,} parameters (at {data['path']})",
                            data["loc"], code="limit", hint="shrink the network, or raise the budget with --max-params")
    h, w = spec_input.size
    if h < min_h or w < min_w:
        loc = graph.nodes["input"]["loc"]
        raise SpecError(f"input size {h}×{w} is below the minimum {min_h}×{min_w} this network accepts", loc,
                        code="input-too-small", hint=f"set input.size to at least [{min_h}, {min_w}]")
    graph.graph["min_size"] = (min_h, min_w)
    graph.graph["params"] = total_params
    outputs = {name: graph.nodes[n]["shape"] for name, n in graph.graph["outputs"].items()}
    return ShapeInfo((min_h, min_w), x, outputs)


def _describe(graph: nx.DiGraph, node: str, here: Loc) -> str:
    """'conv 96 3x3 s2 at features.6.branch0 (35:17)': where a merge's input comes from."""
    d = graph.nodes[node]
    if d["op"] == "input":
        return "the input"
    loc = d["loc"]
    where = f"{loc.line}:{loc.column}" if loc.file == here.file else str(loc)
    return f"{d['text']} at {d['origin'] or 'the network'}, {where}"


def _check_merge(graph: nx.DiGraph, node: str, preds: list[str], shapes: list[Shape]) -> None:
    data = graph.nodes[node]
    h, w = graph.graph["input"].size
    first, first_shape = preds[0], shapes[0]
    kind = "concat" if data["op"] == "concat" else "residual add"
    for other, shape in zip(preds[1:], shapes[1:]):
        problem = None
        if first_shape.is_map != shape.is_map:
            problem = "a feature map meets a vector"
        elif data["op"] == "add" and first_shape.channels != shape.channels:
            problem = "channels differ"
        elif first_shape.is_map:
            assert first_shape.height and shape.height and first_shape.width and shape.width
            eq_h, _ = first_shape.height.equals(shape.height)
            eq_w, _ = first_shape.width.equals(shape.width)
            if not (eq_h and eq_w):
                problem = "spatial sizes differ"
        if problem:
            where = data["path"].rsplit(".", 1)[0] if "." in data["path"] else "the network"
            a = f"{first_shape.text(h, w)} = {first_shape.formula()} ({_describe(graph, first, data['loc'])})"
            b = f"{shape.text(h, w)} = {shape.formula()} ({_describe(graph, other, data['loc'])})"
            if data["op"] == "add":
                a, b = "shortcut " + a, "body " + b
            hint = ("shortcut and body must give the same C×H×W; add a projection shortcut or fix the strides"
                    if data["op"] == "add" else "every branch must reach the same H×W; check strides and paddings")
            raise SpecError(f"{kind} in {where}: {problem}: {a} vs {b}", data["loc"], code="shape-mismatch", hint=hint)


def check_input(graph: nx.DiGraph, h: int, w: int, loc: Loc | None = None) -> None:
    """Refuse an input size below the minimum (for --set input.size and the compiled guard)."""
    mh, mw = graph.graph["min_size"]
    if h < mh or w < mw:
        raise SpecError(f"input size {h}×{w} is below the minimum {mh}×{mw}", loc or graph.nodes["input"]["loc"],
                        code="input-too-small")


