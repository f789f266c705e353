"""Memory layout and number format: channels_last weights and activations, optional low precision.

The input is converted once on entry (``x.to(memory_format=…, dtype=…)``); convolutions then
keep the layout of their input, so every feature map stays channels_last. The copies back to
channels-first after per-pixel layers (``permute(0, 3, 1, 2).contiguous()``) are dropped: the
permuted view already is channels_last. With a ``dtype``
the weights are cast and the outputs are cast back to float32, so callers keep passing and
receiving float32 tensors.

GroupNorm is the exception: torch's CPU kernel for a channels_last map sums x and x² in one pass, so
its variance cancels catastrophically when a group's mean is large against its spread (mean 30,
std 0.5: errors of 1e-2; found by the differential tester, seed 3000286). Its input is made
channels-first and its output channels-last again.

In bfloat16 (or float16), global average pools become :func:`~archspec.passes.common.global_mean`, a
pooling window over the whole map: torch's ``mean`` of a reduced-precision map copies it to float32 first.
"""

from __future__ import annotations

import torch
import torch.fx as fx

from archspec.passes.common import REDUCED, TO_FIRST, PassResult, finish, global_mean, permute_of, spatial_mean


def _to_float32(graph: fx.Graph, value: fx.Node) -> fx.Node:
    return graph.call_method("to", (value,), {"dtype": torch.float32})


def _is_group_norm(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return type(gm.get_submodule(str(node.target))) is torch.nn.GroupNorm  # not group_norm.py's own
    return node.op == "call_function" and node.target is torch.nn.functional.group_norm


def _group_norm_channels_first(gm: fx.GraphModule) -> None:
    """Each GroupNorm reads a channels-first copy of its input and hands on a channels-last map."""
    graph = gm.graph
    for node in [n for n in graph.nodes if _is_group_norm(gm, n)]:
        source = node.args[0]
        assert isinstance(source, fx.Node)
        with graph.inserting_before(node):
            first = graph.call_method("contiguous", (source,))
        node.replace_input_with(source, first)
        with graph.inserting_after(node):
            last = graph.call_method("contiguous", (node,), {"memory_format": torch.channels_last})
        for user in [u for u in node.users if u is not last]:
            user.replace_input_with(node, last)


def _drop_channels_first_copies(graph: fx.Graph) -> None:
    """``x.permute(0, 3, 1, 2).contiguous()`` after a per-pixel layer run channels-last (ConvNeXt's
    LayerNorm) copies the map back to channels-first; channels-last throughout, the view is what
    the next conv wants."""
    for node in list(graph.nodes):
        source = node.args[0] if node.op == "call_method" and node.target == "contiguous" and len(node.args) == 1 else None
        if isinstance(source, fx.Node) and not node.kwargs and permute_of(source, TO_FIRST) is not None:
            node.replace_all_uses_with(source)
            graph.erase_node(node)


def _means_as_windows(graph: fx.Graph) -> None:
    """Global average pools as :func:`global_mean`: in bf16, a pooling window over the whole map
    instead of a ``mean`` that first copies the map to float32."""
    for node in list(graph.nodes):
        found = spatial_mean(node)
        if found is not None:
            with graph.inserting_before(node):
                pooled = graph.call_function(global_mean, (node.args[0], *found))
            node.replace_all_uses_with(pooled)
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
    if dtype in REDUCED:
        _means_as_windows(graph)
    if memory_format == torch.channels_last:
        _drop_channels_first_copies(graph)
        _group_norm_channels_first(gm)
    (x,) = [n for n in graph.nodes if n.op == "placeholder"]
    # one step each: torch's copy that changes the layout and the dtype at once is not vectorised
    # (2.5 ms for a bf16 8×3×224×224 input, against 0.9 + 0.3 ms in two steps)
    steps: list[dict[str, fx.node.Argument]] = [{"memory_format": memory_format}] if memory_format is not None else []
    if dtype is not None:
        steps.append({"dtype": dtype})
    users, converted = list(x.users), x
    for kwargs in steps:
        with graph.inserting_after(converted):
            converted = graph.call_method("to", (converted,), kwargs)
    for user in users:
        user.replace_input_with(x, converted)
    if dtype is not None:
        output = next(n for n in graph.nodes if n.op == "output")
        with graph.inserting_before(output):
            output.args = (fx.node.map_arg(output.args[0], lambda n: _to_float32(graph, n)),)
    return finish(gm, "to_layout", 1)
