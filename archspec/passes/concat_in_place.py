"""A concat that puts back a map's own channels, where they were, written into that map instead.

Res2Net's block splits a 1×1 conv's output ``s`` into four channel groups, runs convs on three of them
and concatenates the three results with the fourth group, untouched: ``cat(f₀, f₁, f₂, s[3])``. The
fourth part already sits in ``s`` at the channels it takes in the concat. Once nothing is left to read
the other groups of ``s``, the three results are written over them and ``s`` is the concat: three
copies instead of four, and no new map. Public torch only.

A concat is rewritten only where ``s`` is a conv's output (a map of its own, not a view of another),
every reader of ``s`` is a ``narrow`` along the channels, the parts' widths are known (narrows,
convs), they add up to ``s``'s channels, and every reader of those narrows is the concat (a part kept
in place) or a conv or an addition that runs before the concat (neither keeps a view of it).
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.node import has_side_effect

from archspec.passes.common import PassResult, called_module, finish


@has_side_effect  # it writes into the map: kept by dead-code elimination whatever reads its result
def write_channels(target: torch.Tensor, parts: list[torch.Tensor], starts: list[int]) -> torch.Tensor:
    """``target`` with each part written over its channels from ``start`` on."""
    for part, start in zip(parts, starts, strict=True):
        torch.narrow(target, 1, start, part.shape[1]).copy_(part)
    return target


_ADDS = {torch.add, operator.add}


def _narrow(node: object) -> tuple[fx.Node, int, int] | None:
    """(source, start, length) of ``torch.narrow(source, 1, start, length)``."""
    if not isinstance(node, fx.Node) or node.op != "call_function" or node.target is not torch.narrow:
        return None
    named = dict(zip(("input", "dim", "start", "length"), node.args, strict=False)) | node.kwargs
    source, dim, start, length = (named.get(k) for k in ("input", "dim", "start", "length"))
    if not isinstance(source, fx.Node) or dim != 1 or not isinstance(start, int) or not isinstance(length, int):
        return None
    return source, start, length


def _width(gm: fx.GraphModule, node: fx.Node) -> int | None:
    if (cut := _narrow(node)) is not None:
        return cut[2]
    conv = called_module(gm, node)
    return conv.out_channels if isinstance(conv, nn.Conv2d) else None


def _parts(node: fx.Node) -> list[fx.Node] | None:
    if node.op != "call_function" or node.target is not torch.cat:
        return None
    named = dict(zip(("tensors", "dim"), node.args, strict=False)) | node.kwargs
    parts = named.get("tensors")
    if named.get("dim") != 1 or set(named) != {"tensors", "dim"}:
        return None
    if not isinstance(parts, (list, tuple)) or not all(isinstance(p, fx.Node) for p in parts):
        return None
    return list(parts)


def _read_before(reader: fx.Node, gm: fx.GraphModule, order: dict[fx.Node, int], cat: fx.Node) -> bool:
    """``reader`` runs before ``cat`` and keeps no view of what it reads (a conv, an addition)."""
    pure = isinstance(called_module(gm, reader), nn.Conv2d) or (reader.op == "call_function" and reader.target in _ADDS)
    return pure and order[reader] < order[cat]


def _rewrite(gm: fx.GraphModule, cat: fx.Node, parts: list[fx.Node], order: dict[fx.Node, int]) -> bool:
    widths = [_width(gm, p) for p in parts]
    cuts = [_narrow(p) for p in parts]
    sources = {cut[0] for cut in cuts if cut is not None}
    if None in widths or len(sources) != 1:
        return False
    (source,) = sources
    conv = called_module(gm, source)
    starts = [sum(widths[:i]) for i in range(len(parts))]  # type: ignore[arg-type]
    kept = [i for i, cut in enumerate(cuts) if cut is not None and cut[0] is source and cut[1] == starts[i]]
    if not isinstance(conv, nn.Conv2d) or conv.out_channels != sum(widths) or not kept:  # type: ignore[arg-type]
        return False
    written = [i for i in range(len(parts)) if i not in kept]
    if not written:
        return False
    in_place = {parts[i] for i in kept}
    for reader in source.users:
        if _narrow(reader) is None:
            return False
        only_cat = reader in in_place and set(reader.users) == {cat}
        if not only_cat and not all(_read_before(user, gm, order, cat) for user in reader.users):
            return False
    new = [i for i in range(len(parts)) if i not in kept]
    with gm.graph.inserting_before(cat):
        merged = gm.graph.call_function(write_channels, (source, [parts[i] for i in new], [starts[i] for i in new]))
    cat.replace_all_uses_with(merged)
    gm.graph.erase_node(cat)
    return True


def concat_in_place(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    for node in list(gm.graph.nodes):
        parts = _parts(node)
        if parts is not None and _rewrite(gm, node, parts, order):
            rewrites += 1
    return finish(gm, "concat_in_place", rewrites)
