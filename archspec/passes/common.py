"""Helpers shared by the passes: module lookup and replacement in a GraphModule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

RELUS = frozenset({torch.relu, torch.relu_, F.relu})
TO_LAST, TO_FIRST = [0, 2, 3, 1], [0, 3, 1, 2]  # NCHW → NHWC and back, as permute dims


@dataclass
class PassResult:
    """What a pass did: its name and how many rewrites it made (0 means the graph is unchanged)."""

    name: str
    rewrites: int


def called_module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The module a ``call_module`` node calls, else None."""
    if node.op != "call_module":
        return None
    return gm.get_submodule(str(node.target))


def set_module(gm: fx.GraphModule, target: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``target``, replacing what is there."""
    parent_path, _, leaf = target.rpartition(".")
    parent = gm.get_submodule(parent_path) if parent_path else gm
    setattr(parent, leaf, module)


def free_target(gm: fx.GraphModule, base: str) -> str:
    """A dotted module path that is not taken yet: ``base``, else ``base_2``, ``base_3``..."""
    target, n = base, 1
    while True:
        try:
            gm.get_submodule(target)
        except AttributeError:
            return target
        n += 1
        target = f"{base}_{n}"


def finish(gm: fx.GraphModule, name: str, rewrites: int) -> PassResult:
    """Lint, drop modules nothing calls any more, and regenerate the code."""
    if rewrites:
        gm.graph.eliminate_dead_code()
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return PassResult(name, rewrites)


def only_user(node: fx.Node) -> fx.Node | None:
    """The one node that reads ``node``, reading it once (``add(x, x)`` reads x twice), else None."""
    users: list[Any] = list(node.users)
    if len(users) != 1:
        return None
    reads = 0

    def count(arg: fx.Node) -> fx.Node:
        nonlocal reads
        reads += arg is node
        return arg

    fx.node.map_arg((users[0].args, users[0].kwargs), count)
    return users[0] if reads == 1 else None


def is_relu(node: fx.Node | None) -> TypeGuard[fx.Node]:
    """A plain ReLU call: one tensor argument, no options."""
    return node is not None and node.op == "call_function" and node.target in RELUS and len(node.args) == 1 and not node.kwargs


def permute_of(node: fx.Node | None, dims: list[int]) -> fx.Node | None:
    """The input of ``node`` when it is ``input.permute(dims)``, else None."""
    if node is None or node.op != "call_method" or node.target != "permute" or node.kwargs or len(node.args) < 2:
        return None
    given = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (list, tuple)) else node.args[1:]
    source = node.args[0]
    return source if list(given) == dims and isinstance(source, fx.Node) else None
