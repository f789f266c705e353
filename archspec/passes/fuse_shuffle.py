"""ShuffleNet's concat → channel shuffle → channel split as one copy.

A ShuffleNetV2 unit ends in ``channel_shuffle(cat([a, b]), 2)`` and the next one starts by taking
the two halves of that (``narrow``, a strided view the next conv copies again). Shuffling two
equal parts interleaves their channels: ``out[2j] = a[j]``, ``out[2j + 1] = b[j]``, and an even
slice of the result interleaves the same slice of each part. :func:`interleave` writes each slice
in one copy (``torch.stack`` on the parts' channels-last views), so the concat, the shuffle and
the copies of the halves become one pass. Public torch only; parts of unequal width, or a slice
that does not fall on the groups, take ``cat`` + ``channel_shuffle`` + ``narrow`` as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

from archspec.passes.common import PassResult, finish

_SHUFFLES = {torch.channel_shuffle, F.channel_shuffle, torch.native_channel_shuffle}


def interleave(parts: Sequence[torch.Tensor], start: int = 0, length: int | None = None) -> torch.Tensor:
    """Channels ``start`` to ``start + length`` of ``channel_shuffle(cat(parts, 1), len(parts))``."""
    g = len(parts)
    width = parts[0].shape[1]
    total = sum(p.shape[1] for p in parts)
    length = total - start if length is None else length
    if any(p.shape[1] != width for p in parts) or start % g or length % g:
        return torch.narrow(torch.channel_shuffle(torch.cat(list(parts), 1), g), 1, start, length)
    lo, hi = start // g, (start + length) // g
    views = [p[:, lo:hi] for p in parts]
    if parts[0].dim() == 4 and parts[0].stride(1) == 1:  # channels-last: interleave along the last axis
        last = torch.stack([v.permute(0, 2, 3, 1) for v in views], dim=4)  # N×H×W×(C/g)×g, one copy
        return last.flatten(3).permute(0, 3, 1, 2)
    return torch.stack(views, dim=2).flatten(1, 2)


def _argument(node: fx.Node, index: int, name: str) -> Any:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name)


def _shuffled_concat(node: fx.Node) -> list[fx.Node] | None:
    """The parts, when ``node`` shuffles (in as many groups as there are parts) a channel concat read only by it."""
    if node.op != "call_function" or node.target not in _SHUFFLES:
        return None
    cat, groups = _argument(node, 0, "input"), _argument(node, 1, "groups")
    if not isinstance(cat, fx.Node) or cat.op != "call_function" or cat.target is not torch.cat or len(cat.users) != 1:
        return None
    parts, dim = _argument(cat, 0, "tensors"), _argument(cat, 1, "dim")
    if not isinstance(parts, (list, tuple)) or dim != 1 or groups != len(parts) or len(parts) < 2:
        return None
    return list(parts) if all(isinstance(p, fx.Node) for p in parts) else None


def _channel_slice(node: fx.Node) -> tuple[int, int] | None:
    """(start, length) when ``node`` is ``torch.narrow(x, 1, start, length)`` with constant bounds."""
    if node.op != "call_function" or node.target is not torch.narrow:
        return None
    dim, start, length = (_argument(node, i, n) for i, n in ((1, "dim"), (2, "start"), (3, "length")))
    return (start, length) if dim == 1 and isinstance(start, int) and isinstance(length, int) else None


def fuse_shuffle(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for shuffle in list(gm.graph.nodes):
        parts = _shuffled_concat(shuffle)
        if parts is None:
            continue
        cat = _argument(shuffle, 0, "input")
        whole: fx.Node | None = None
        for user in list(shuffle.users):
            bounds = _channel_slice(user)
            if bounds is not None:  # a slice of the shuffled map: that slice alone
                with gm.graph.inserting_before(shuffle):
                    part = gm.graph.call_function(interleave, (parts, *bounds))
                user.replace_all_uses_with(part)
                gm.graph.erase_node(user)
                continue
            if whole is None:  # read whole: made once
                with gm.graph.inserting_before(shuffle):
                    whole = gm.graph.call_function(interleave, (parts,))
            user.replace_input_with(shuffle, whole)
        gm.graph.erase_node(shuffle)
        gm.graph.erase_node(cat)
        rewrites += 1
    return finish(gm, "fuse_shuffle", rewrites)
