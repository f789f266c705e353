"""Memory layout and number format: channels_last weights and activations, optional low precision.

The input is converted once on entry (``x.to(memory_format=…, dtype=…)``); convolutions then
keep the layout of their input, so every feature map stays channels_last. The copies back to
channels-first after per-pixel layers (``permute(0, 3, 1, 2).contiguous()``) are dropped: the
permuted view already is channels_last. With a ``dtype``
the weights are cast and the outputs are cast back to float32, so callers keep passing and
receiving float32 tensors.
"""

from __future__ import annotations

import torch
import torch.fx as fx

from archspec.passes.common import TO_FIRST, PassResult, finish, permute_of


def _to_float32(graph: fx.Graph, value: fx.Node) -> fx.Node:
    return graph.call_method("to", (value,), {"dtype": torch.float32})


def _drop_channels_first_copies(graph: fx.Graph) -> None:
    """``x.permute(0, 3, 1, 2).contiguous()`` after a per-pixel layer run channels-last (ConvNeXt's
    LayerNorm) copies the map back to channels-first; channels-last throughout, the view is what
    the next conv wants."""
    for node in list(graph.nodes):
        source = node.args[0] if node.op == "call_method" and node.target == "contiguous" and len(node.args) == 1 else None
        if isinstance(source, fx.Node) and not node.kwargs and permute_of(source, TO_FIRST) is not None:
            node.replace_all_uses_with(source)
            graph.erase_node(node)


def to_layout(
    gm: fx.GraphModule, memory_format: torch.memory_format | None = torch.channels_last, dtype: torch.dtype | None = None
) -> PassResult:
    if memory_format is None and dtype is None:
        return PassResult("to_layout", 0)
    if dtype is not None:
        gm.to(dtype)
    if memory_format is not None:
        gm.to(memory_format=memory_format)
    graph = gm.graph
    if memory_format == torch.channels_last:
        _drop_channels_first_copies(graph)
    (x,) = [n for n in graph.nodes if n.op == "placeholder"]
    kwargs: dict[str, fx.node.Argument] = {}
    if memory_format is not None:
        kwargs["memory_format"] = memory_format
    if dtype is not None:
        kwargs["dtype"] = dtype
    with graph.inserting_after(x):
        converted = graph.call_method("to", (x,), kwargs)
    for user in list(x.users):
        if user is not converted:
            user.replace_input_with(x, converted)
    if dtype is not None:
        output = next(n for n in graph.nodes if n.op == "output")
        with graph.inserting_before(output):
            output.args = (fx.node.map_arg(output.args[0], lambda n: _to_float32(graph, n)),)
    return finish(gm, "to_layout", 1)
