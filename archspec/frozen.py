"""``frozen:`` (docs/language.md, "Frozen parameters"): module paths whose parameters do not train.

A spec lists module paths, or fnmatch patterns of them as ``init:`` writes them (``body.layer1``,
``"layer[12]"``); every parameter of a matching module, or of any module under one, gets
``requires_grad = False`` when the network is built (archspec/compile.py) and in the standalone file
(archspec/codegen/file.py) — what torchvision's ``resnet_fpn_backbone(trainable_layers=3)`` does to
``conv1`` and ``layer1``. Buffers are not parameters and are left alone; BatchNorm's statistics stay
as they are too (``frozen_bn`` fixes those).

An entry that reaches no parameter changes nothing, silently: a typo would leave a layer training.
So each must match a module path that holds parameters or lies above one; it is checked once, by
:func:`archspec.pipeline.shaped_graph` after the shapes, which count each op's parameters.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from archspec.errors import SpecError, did_you_mean
from archspec.ir import INPUT, OpGraph
from archspec.language.resolve import Resolved


def _prefixes(path: str) -> list[str]:
    """``a``, ``a.b``, ``a.b.c`` for ``a.b.c``: the path and every module above it."""
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def is_frozen(path: str, patterns: Sequence[str]) -> bool:
    """Whether the tensor or module at ``path`` lies at or under a module that ``patterns`` names."""
    return any(fnmatch.fnmatchcase(p, pattern) for p in _prefixes(path) for pattern in patterns)


def frozen_roots(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The outermost paths ``patterns`` match, over the parameter names ``names`` (in their order): freezing
    each of them, with everything under it, freezes exactly the parameters :func:`is_frozen` picks."""
    roots: list[str] = []
    for name in names:
        first = next((p for p in _prefixes(name) if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)), None)
        if first is not None and first not in roots:
            roots.append(first)
    return roots


def check_frozen(resolved: Resolved, graph: OpGraph) -> None:
    """Each entry of ``frozen:`` matches a module with parameters, or one above such a module."""
    patterns = resolved.spec.frozen
    if not patterns:
        return
    holders = [r.path for _, r in graph.records() if r.op != INPUT and r.param_count > 0]
    reachable = list(dict.fromkeys(p for path in holders for p in _prefixes(path)))
    for i, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(p, pattern) for p in reachable):
            raise SpecError(
                f"frozen: {pattern!r} matches no module with parameters",
                resolved.source.loc(("frozen", i)),
                code="name",
                hint=did_you_mean(pattern, reachable) or "entries are module paths, as the summary prints them"
                if reachable
                else "this network has no parameters to freeze",
            )
