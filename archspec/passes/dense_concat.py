"""A DenseNet block's growing concat written into one buffer instead of copied at every layer.

A dense block runs ``c₁ = cat(x₀, f₁)``, ``c₂ = cat(c₁, f₂)``, …: each layer copies every channel
before it once more, L²/2 copies of the block's early channels over L layers. Here the first concat
allocates a buffer as wide as the block's output (the later layers' widths are their convs'
``out_channels``), writes ``x₀`` and ``f₁`` into it, and every ``cₖ`` is a view of the buffer's first
channels (``narrow``) after ``fₖ`` is written into its place: one copy per new feature map. The
views are strided where N·H·W > 1 and channels-last; the layer after them reads them in place
(``fold_preact``'s clamp). Public torch only. A chain stops at a concat whose new part is not a
conv's output, and none is rewritten where a reader of a concat changes it in place.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.node import has_side_effect

from archspec.passes.common import PassResult, called_module, finish


def dense_start(first: torch.Tensor, new: torch.Tensor, later: int) -> torch.Tensor:
    """A buffer of ``first``, ``new`` and ``later`` more channels (not yet written), holding the first two."""
    n, c, h, w = first.shape
    channels_last = first.stride(1) == 1 and c > 1
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    buffer = torch.empty((n, c + new.shape[1] + later, h, w), dtype=first.dtype, device=first.device, memory_format=memory_format)
    buffer[:, :c].copy_(first)
    buffer[:, c : c + new.shape[1]].copy_(new)
    return buffer


def dense_view(buffer: torch.Tensor, later: int) -> torch.Tensor:
    """The buffer's channels before the last ``later`` (a view)."""
    return torch.narrow(buffer, 1, 0, buffer.shape[1] - later)


@has_side_effect  # it writes into the buffer: kept by dead-code elimination even where its view is unread
def dense_append(buffer: torch.Tensor, new: torch.Tensor, later: int) -> torch.Tensor:
    """Write ``new`` just before the last ``later`` channels of the buffer; the channels up to it (a view)."""
    end = buffer.shape[1] - later
    buffer[:, end - new.shape[1] : end].copy_(new)
    return torch.narrow(buffer, 1, 0, end)


def _pair(node: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """(prev, new) when ``node`` is ``torch.cat([prev, new], dim=1)``."""
    if node.op != "call_function" or node.target is not torch.cat:
        return None
    parts = node.args[0] if node.args else node.kwargs.get("tensors")
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if not isinstance(parts, (list, tuple)) or len(parts) != 2 or dim != 1:
        return None
    prev, new = parts
    return (prev, new) if isinstance(prev, fx.Node) and isinstance(new, fx.Node) else None


def _width(gm: fx.GraphModule, node: fx.Node) -> int | None:
    conv = called_module(gm, node)
    return conv.out_channels if isinstance(conv, nn.Conv2d) else None


def _changes_in_place(node: fx.Node) -> bool:
    def in_place(user: fx.Node) -> bool:
        name = user.target if isinstance(user.target, str) else getattr(user.target, "__name__", "")
        return user.op in ("call_method", "call_function") and name.endswith("_") and not name.endswith("__")

    return any(in_place(u) for u in node.users)


def _chains(gm: fx.GraphModule) -> list[list[fx.Node]]:
    """Runs of concats each extending the one before by a conv's output."""
    chains: list[list[fx.Node]] = []
    member: dict[fx.Node, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        pair = _pair(node)
        if pair is None or _width(gm, pair[1]) is None or _changes_in_place(node):
            continue
        prev = pair[0]
        chain = member.get(prev) if prev in member and member[prev][-1] is prev else None
        if chain is None:
            chain = []
            chains.append(chain)
        chain.append(node)
        member[node] = chain
    return [c for c in chains if len(c) > 1]


def dense_concat(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    graph = gm.graph
    for chain in _chains(gm):
        news = [_pair(c)[1] for c in chain]  # type: ignore[index]
        widths = [_width(gm, n) or 0 for n in news]
        later = [sum(widths[i + 1 :]) for i in range(len(chain))]
        first, *rest = chain
        with graph.inserting_before(first):
            buffer = graph.call_function(dense_start, (_pair(first)[0], news[0], later[0]))  # type: ignore[index]
            view = graph.call_function(dense_view, (buffer, later[0]))
        first.replace_all_uses_with(view)
        graph.erase_node(first)
        for node, new, after in zip(rest, news[1:], later[1:], strict=True):
            with graph.inserting_before(node):
                view = graph.call_function(dense_append, (buffer, new, after))
            node.replace_all_uses_with(view)
            graph.erase_node(node)
        rewrites += 1
    return finish(gm, "dense_concat", rewrites)
