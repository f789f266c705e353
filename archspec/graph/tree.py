"""The node tree the expansion walks: the spec model's closed set of node kinds (docs/language.md).

A node of a network or block body is one of twelve kinds, told apart by its Python type exactly as
the spec model's tagged union tells them apart (archspec/language/model.py, ``Node``)::

    "conv 64 3x3"          short      an op or block in short form
    [a, b, ...]            seq        a chain, members named by their index
    {name: node}           named      one node with a name
    chain: ...             chain      a chain (a mapping: members named by their keys), maybe repeated
    concat: ...            concat     branches on one input, concatenated along channels
    residual: ...          residual   then(shortcut(x) + scale · body(x))
    gate: ...              gate       x · gate(x)
    if: ...                cond       a node chosen by a condition (the other is checked, not expanded)
    op: NAME, ...          op         an op in long form
    block: NAME, ...       block      a block in long form
    from: NAME             take       the value of an earlier named node (a skip connection)
    share: NAME            share      an earlier part applied again with the same modules (shared weights)

``KIND`` maps each type to the name of the expander's method for it (as torch.fx's
``Interpreter.run_node`` dispatches on ``node.op``); ``parts`` gives the nodes a node holds.
"""

from __future__ import annotations

from typing import Any

from archspec.language.load import YamlPath
from archspec.language.model import (
    BlockRef,
    ChainNode,
    ConcatNode,
    FromNode,
    GateNode,
    IfNode,
    OpLong,
    ResidualNode,
    ShareNode,
)
from archspec.language.shortform import Scope, ShortForms
from archspec.ops import REGISTRY

KIND: dict[type, str] = {
    str: "short",
    list: "seq",
    dict: "named",
    ChainNode: "chain",
    ConcatNode: "concat",
    ResidualNode: "residual",
    GateNode: "gate",
    IfNode: "cond",
    OpLong: "op",
    BlockRef: "block",
    FromNode: "take",
    ShareNode: "share",
}


def kind_of(node: Any) -> str:
    """The kind of a node; a KeyError for anything outside the closed set (the model refuses it first)."""
    kind = KIND.get(type(node))
    if kind is None:  # a subclass of a builtin (a mapping type a loader made)
        kind = next(KIND[t] for t in type(node).__mro__ if t in KIND)
    return kind


def parts(node: Any, yp: YamlPath) -> list[tuple[Any, YamlPath]]:
    """The nodes a node holds, each with its YAML path (none for an op or a block reference)."""
    if isinstance(node, list):
        return [(item, yp + (i,)) for i, item in enumerate(node)]
    if isinstance(node, dict):  # named nodes: a chain's mapping, or one name: node
        return [(value, yp + (key,)) for key, value in node.items()]
    if isinstance(node, ChainNode):
        return [(node.chain, yp + ("chain",))]
    if isinstance(node, ConcatNode):
        return [(node.concat, yp + ("concat",))]
    if isinstance(node, GateNode):
        return [(node.gate, yp + ("gate",))]
    held: tuple[tuple[str, Any], ...]
    if isinstance(node, ResidualNode):
        r = node.residual
        held = (("body", r.body), ("shortcut", r.shortcut), ("then", r.then))
    elif isinstance(node, IfNode):
        held = (("then", node.then), ("else", node.otherwise))
    else:
        return []
    base = yp + ("residual",) if isinstance(node, ResidualNode) else yp
    return [(part, base + (key,)) for key, part in held if part is not None]


def check_names(node: Any, yp: YamlPath, scope: Scope, forms: ShortForms) -> None:
    """Every op and block a node names exists, without expanding it (a branch of an 'if' not taken)."""
    if isinstance(node, str):
        forms.check_name(node, yp, scope)
    elif isinstance(node, OpLong):
        if node.op not in REGISTRY and "$" not in node.op:
            forms.unknown(node.op, scope.source.loc(yp + ("op",)))
    elif isinstance(node, BlockRef):
        if node.block not in forms.resolved.blocks and "$" not in node.block:
            forms.unknown(node.block, scope.source.loc(yp + ("block",)))
    for part, part_yp in parts(node, yp):
        check_names(part, part_yp, scope, forms)
