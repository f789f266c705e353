"""A squeeze-and-excitation gate and the residual sum after it in one pass over the map.

An SE-ResNet block ends in ``relu(shortcut + x · gate)``, ``gate`` one value per image and channel
(N×C×1×1). Unfused, the product is written out and read back by the sum. ``torch.addcmul(shortcut,
x, gate)`` computes the sum of products in one element-wise pass, broadcasting the gate as it
reads it (the N×C×H×W gate map is never made); the ReLU after it stays in place. Public torch only.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx

from archspec.passes.common import PassResult, finish, only_user

_MULS = {torch.mul, operator.mul}
_ADDS = {torch.add, operator.add}


def gate_product(node: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """(x, gate) when ``node`` is ``x · gate`` with two tensor operands, else None."""
    if node.op != "call_function" or node.target not in _MULS or len(node.args) != 2 or node.kwargs:
        return None
    x, gate = node.args
    return (x, gate) if isinstance(x, fx.Node) and isinstance(gate, fx.Node) else None


def _summand(add: fx.Node, mul: fx.Node) -> fx.Node | None:
    """The other operand of ``add`` when it is ``mul + other``, ``other + mul`` or ``mul.add_(other)``."""
    in_place = add.op == "call_method" and add.target == "add_" and add.args[0] is mul
    if not (in_place or add.op == "call_function" and add.target in _ADDS) or len(add.args) != 2 or add.kwargs:
        return None
    other = add.args[1] if add.args[0] is mul else add.args[0]
    return other if isinstance(other, fx.Node) and other is not mul else None


def fuse_gate(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for mul in list(gm.graph.nodes):
        factors = gate_product(mul)
        add = only_user(mul) if factors is not None else None
        shortcut = _summand(add, mul) if add is not None else None
        if factors is None or add is None or shortcut is None:
            continue
        with gm.graph.inserting_before(add):
            fused = gm.graph.call_function(torch.addcmul, (shortcut, *factors))
        fused.meta.update(add.meta)
        add.replace_all_uses_with(fused)
        gm.graph.erase_node(add)
        gm.graph.erase_node(mul)
        rewrites += 1
    return finish(gm, "fuse_gate", rewrites)
