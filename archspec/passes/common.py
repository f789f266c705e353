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
REDUCED = frozenset({torch.bfloat16, torch.float16})
_SPATIAL = ((2, 3), (-2, -1), [2, 3], [-2, -1], (-1, -2), (3, 2))


def global_mean(x: torch.Tensor, dim: tuple[int, int] = (-2, -1), keepdim: bool = True) -> torch.Tensor:
    """``x.mean(dim, keepdim)`` for ``dim`` the last two axes (H and W of an N×C×H×W map).

    In bfloat16 or float16, ``avg_pool2d`` over the whole map: torch's ``mean`` of a reduced-precision
    map first copies all of it to float32 (17 ms against 0.9 ms for a bf16 8×96×112×112 channels_last
    map, docs/performance.md), while the pooling kernel accumulates each channel in float32 as it reads."""
    if x.dtype not in REDUCED or x.dim() != 4:
        return x.mean(dim, keepdim=keepdim)
    y = F.avg_pool2d(x, x.shape[2:])
    return y if keepdim else y.flatten(1)


def spatial_mean(node: fx.Node) -> tuple[tuple[int, int], bool] | None:
    """``(dim, keepdim)`` where ``node`` takes a mean over the last two axes, as ``adaptive_avg_pool2d(·, 1)``
    or ``mean((2, 3))`` (axes 2 and 3 are the last two of a 4-d map), else None."""
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        whole = size in (1, (1, 1), [1, 1]) and len(node.args) + len(node.kwargs) == 2 and len(node.args) >= 1
        return ((-2, -1), True) if whole else None
    if (node.op == "call_function" and node.target is torch.mean) or (node.op == "call_method" and node.target == "mean"):
        args = dict(node.kwargs)
        for key, value in zip(("dim", "keepdim"), node.args[1:], strict=False):
            args[key] = value
        if set(args) - {"dim", "keepdim"} or len(node.args) > 3 or args.get("dim") not in _SPATIAL:
            return None
        keepdim, dim = args.get("keepdim", False), args["dim"]
        assert isinstance(dim, (tuple, list))
        return ((int(dim[0]), int(dim[1])), keepdim) if isinstance(keepdim, bool) else None
    return None


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
