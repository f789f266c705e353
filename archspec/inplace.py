"""Which values the compiled forward overwrites in place (torch-free, shared by compile and summary).

A ReLU or leaky ReLU runs in place and a residual sum with scale 1 accumulates into its body only when the value
overwritten was made by an op the registry marks ``fresh_output`` (a new tensor, never a view nor an
input, that its own backward does not read), has no other reader, and is not returned.
"""

from __future__ import annotations

from archspec.ir import INPUT, OpGraph
from archspec.ops import REGISTRY
from archspec.ops.merge import broadcast_onto


def overwritable(graph: OpGraph, src: str, users: dict[str, int], results: set[str]) -> bool:
    """May the value of ``src`` be overwritten in place by its one reader?"""
    op = graph.at(src).op
    return op != INPUT and REGISTRY[op].fresh_output and users.get(src, 0) == 1 and src not in results


def in_place_target(graph: OpGraph, node: str, users: dict[str, int], results: set[str]) -> int | None:
    """The index of the input ``node`` overwrites when it runs in place, or None when it may not."""
    record = graph.at(node)
    i = REGISTRY[record.op].in_place_input(record.params)
    if i is None:
        return None
    src = graph.inputs_of(node)[i]
    shape, out = graph.at(src).shape, record.shape
    if shape is not None and out is not None and shape.is_map and not broadcast_onto(out, shape):
        return None  # a residual's body broadcast onto its shortcut (C×1×1 + C×H×W) cannot hold the sum
    return i if overwritable(graph, src, users, results) else None
