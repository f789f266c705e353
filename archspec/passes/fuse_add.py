"""Conv + residual add (+ ReLU) in one kernel: the sum and the activation run as oneDNN post-ops.

Every residual block ends in ``act(shortcut + scale · conv(z))``. Unfused, the conv writes its
output, the add reads it and the shortcut and writes a third tensor, and the ReLU passes over
that once more; fused, the shortcut is added and the ReLU applied while each output tile is
still in cache. The residual scale is folded into the conv's weights and bias first
(``scale · conv(z) = conv'(z)`` with ``W' = scale · W``, ``b' = scale · b``). Uses oneDNN's
fused kernel with a binary post-op (see :mod:`archspec.passes.onednn`) where it takes the tensors;
otherwise ``conv2d``, ``add`` and ``relu_``, with the same result.

Where nothing reads the shortcut after the sum, and the shortcut is a map this forward made (not the
model's input, not a view of a larger map), the sum is written into the shortcut's own memory
(oneDNN's ``sum`` post-op, the in-place kernel inductor also emits): no new map is allocated and
the fused conv stores each output tile once. The out-of-place binary kernel allocated a fresh map
per block (ResNet-50 at batch 8: up to 25 MB each, first touched by the kernel), which is why it
had shown no gain over ``conv`` + ``add_`` + ``relu_``. Which shortcuts may be written is decided
on the graph (:func:`_writable`); the call checks the tensor too (its shape, layout and that it is
not a view) and otherwise computes out of place.
"""

from __future__ import annotations

import operator
from typing import cast

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.passes import onednn
from archspec.passes.common import PassResult, called_module, finish, is_relu, only_user, set_module
from archspec.passes.fuse_gate import gate_product
from archspec.passes.onednn import OneDNNConv

_ADDS = {torch.add, operator.add}
# ops whose result is a new tensor (nothing else holds its memory) ...
_FRESH_FUNCTIONS = {torch.add, operator.add, torch.mul, operator.mul, torch.addcmul, torch.cat, F.max_pool2d, F.avg_pool2d}
_FRESH_MODULES = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d)
# ... and in-place ops, whose result is their first argument's memory
_IN_PLACE_FUNCTIONS = {torch.relu_, F.relu_}
_IN_PLACE_METHODS = {"add_", "relu_", "mul_", "clamp_", "clamp_min_"}


class ConvAdd(OneDNNConv):
    """``act(conv(x) + other)``; ``activation`` is ``"relu"`` or None. With ``in_place``, the graph lets
    the call write the result into ``other`` (nothing reads it afterwards)."""

    activation: str | None = None
    in_place: bool = False

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.onednn(x, other) and tuple(other.shape) == self._out_shape(x):  # not broadcast (GCNet's C×1×1)
            if self.in_place and onednn.IN_PLACE_SUM and self._fits(x, other):
                return onednn.conv_add_pointwise_(self, x, other, self.activation)
            return onednn.conv_add_pointwise(self, x, other, self.activation)
        out = torch.add(other, self._conv_forward(x, self.weight, self.bias))
        return torch.relu_(out) if self.activation == "relu" else out

    def _fits(self, x: torch.Tensor, other: torch.Tensor) -> bool:
        """Whether ``other`` can hold the result: a whole tensor (not a view) of the output's shape and
        dtype, laid out as ``x`` (oneDNN writes its output in its input's layout), not ``x``'s memory (the
        caller checked its shape)."""
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        return (
            other._base is None
            and other.is_contiguous(memory_format=layout)
            and other.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
        )

    def _out_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """The conv's output shape for ``x``: the sum's where the other operand is not broadcast onto it."""
        n, _, h, w = x.shape
        ph, pw = cast(tuple[int, int], self.padding)  # never "same" here: the pass takes numeric padding only
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        return (n, self.out_channels, (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)

    @classmethod
    def scaled(cls, conv: nn.Conv2d, scale: float, activation: str | None) -> ConvAdd:
        """The fused conv for ``act(other + scale · conv(x))``: the scale goes into the weights."""
        fused = cls.from_conv(conv)
        if scale != 1:
            with torch.no_grad():
                fused.weight = nn.Parameter(conv.weight * scale, requires_grad=False)
                if conv.bias is not None:
                    fused.bias = nn.Parameter(conv.bias * scale, requires_grad=False)
        fused.activation = activation
        return fused

    def extra_repr(self) -> str:
        act = ", " + self.activation if self.activation else ""
        return super().extra_repr() + f", then add{' in place' if self.in_place else ''}{act}"


def _body_and_scale(gm: fx.GraphModule, add: fx.Node) -> tuple[fx.Node, fx.Node, float] | None:
    """For ``a + scale·b`` where a conv computes b (or, unscaled, a) for this add alone:
    (the conv's node, the other operand, scale)."""
    in_place = add.op == "call_method" and add.target == "add_"  # body.add_(shortcut), in the plain model
    if not (in_place or add.op == "call_function" and add.target in _ADDS) or len(add.args) != 2:
        return None
    a, b = add.args
    if in_place:
        a, b = b, a
    scale = add.kwargs.get("alpha", 1)
    if set(add.kwargs) - {"alpha"} or not isinstance(scale, (int, float)):
        return None
    candidates = [(b, a)] if scale != 1 else [(b, a), (a, b)]  # alpha scales the second operand only
    for body, other in candidates:
        if not isinstance(body, fx.Node) or not isinstance(other, fx.Node) or only_user(body) is not add:
            continue
        conv = called_module(gm, body)
        if (
            type(conv) is nn.Conv2d
            and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)
            and len(body.args) == 1
            and not body.kwargs
            and sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == body.target) == 1
        ):
            return body, other, float(scale)
    return None


def _alias_root(gm: fx.GraphModule, node: fx.Node, chain: list[fx.Node]) -> fx.Node | None:
    """Follow in-place ops (and in-place fused sums) from ``node`` back to the op that made its memory,
    appending every node on the way to ``chain``; that op's node where it makes a new tensor, else None."""
    while True:
        chain.append(node)
        module = called_module(gm, node)
        if isinstance(module, ConvAdd) and module.in_place:
            following = node.args[1]
        elif (
            node.op == "call_function"
            and node.target in _IN_PLACE_FUNCTIONS
            or (node.op == "call_method" and node.target in _IN_PLACE_METHODS)
        ):
            following = node.args[0]
        elif isinstance(module, _FRESH_MODULES) or node.op == "call_function" and node.target in _FRESH_FUNCTIONS:
            return node if not node.kwargs.get("out") else None
        else:
            return None
        if not isinstance(following, fx.Node):
            return None
        node = following


def _fresh(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node``'s result is a new tensor: reading an operand, it holds none of its memory."""
    module = called_module(gm, node)
    if isinstance(module, ConvAdd):
        return not module.in_place
    return isinstance(module, _FRESH_MODULES) or node.op == "call_function" and node.target in _FRESH_FUNCTIONS


def _writable(gm: fx.GraphModule, other: fx.Node, add: fx.Node, conv_input: object) -> bool:
    """Whether the sum at ``add`` may be written into ``other``: its memory was made by an op of this
    graph (not the input, a constant or a view), and every reader of that memory runs before ``add`` —
    also through a view or an in-place op taken of it earlier (``narrow(other)`` read after the sum
    would see the sum), so the readers of any node that may share the memory are followed too; and
    the conv's own input is none of them (``conv(x) + x`` written into ``x`` would overwrite pixels the
    conv still reads)."""
    chain: list[fx.Node] = []
    if _alias_root(gm, other, chain) is None:
        return False
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    sharing, todo = set(chain), list(chain)
    while todo:
        for user in todo.pop().users:
            if user is add or user in sharing:
                continue
            if order[user] > order[add]:
                return False
            if not _fresh(gm, user):  # a view, an in-place op, an op not known: its result may be this memory
                sharing.add(user)
                todo.append(user)
    return conv_input not in sharing


def _gated(conv: fx.Node) -> bool:
    """Whether the conv reads ``x · gate`` (an MBConv's projection), which ``gate_into_conv`` computes
    without writing the gated map: worth more than the sum's post-op."""
    source = conv.args[0]
    return isinstance(source, fx.Node) and gate_product(source) is not None


def fuse_conv_add(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for add in list(gm.graph.nodes):
        found = _body_and_scale(gm, add)
        if found is None:
            continue
        body, other, scale = found
        if not _writable(gm, other, add, body.args[0]) or _gated(body):
            continue  # out of place, oneDNN's binary post-op is no faster than the conv, add_ and relu_
        act = only_user(add)
        fuse_act = is_relu(act)
        conv = called_module(gm, body)
        assert isinstance(conv, nn.Conv2d)
        fused_conv = ConvAdd.scaled(conv, scale, "relu" if fuse_act else None)
        fused_conv.in_place = True
        set_module(gm, str(body.target), fused_conv)
        with gm.graph.inserting_before(add):
            fused = gm.graph.call_module(str(body.target), (body.args[0], other))
        fused.meta.update(add.meta)
        last = act if fuse_act else add
        assert last is not None
        last.replace_all_uses_with(fused)
        for node in ([act] if fuse_act else []) + [add, body]:
            gm.graph.erase_node(node)
        rewrites += 1
    return finish(gm, "fuse_conv_add", rewrites)
