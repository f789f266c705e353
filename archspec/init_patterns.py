"""``init:`` module-path patterns must each match a module with weights (docs/language.md, "Initialisation").

A pattern that matches nothing changes nothing, silently: a typo (``"layer*.bn33"``) would leave the
network at its default initialisation without a word. So a pattern of the spec's table must match a
module with weights somewhere in the network, and a pattern of a block's table one in an instance of
that block (a block that is never used is not checked). The module paths are the compiled model's,
as :func:`archspec.compile.init_schemes` matches them; nothing here imports torch.

Why here and not in ``resolve`` (which checks the tables' op names, archspec/language/init.py): a
pattern is matched against module paths, and those exist only after expansion — repeat counts,
``if:`` conditions, ``names:`` patterns and ``$parameters`` decide them. It is checked exactly once,
by :func:`archspec.pipeline.shaped_graph` right after ``expand``, the one path every command takes.
"""

from __future__ import annotations

import fnmatch

from archspec.errors import SpecError, did_you_mean
from archspec.ir import INPUT, OpGraph
from archspec.language.init import is_pattern
from archspec.language.resolve import Resolved
from archspec.ops import REGISTRY


def check_init_patterns(resolved: Resolved, graph: OpGraph) -> None:
    tables = resolved.init_sources()
    if not any(is_pattern(key) for table, _, _ in tables.values() for key in table):
        return
    paths: dict[str, list[str]] = {}  # table name → module paths with weights it can reach
    for _, record in graph.records():
        if record.op == INPUT or not REGISTRY[record.op].stateful or REGISTRY[record.op].parameter_only:
            continue
        paths.setdefault("", []).append(record.path)
        for block, _ in record.blocks:
            paths.setdefault(block, []).append(record.path)
    for name, (table, source, yp) in tables.items():
        if name and name not in paths:
            continue  # a block without instances (or without weights): nothing to start
        reachable = paths.get(name, [])
        for key in table:
            if is_pattern(key) and not any(fnmatch.fnmatchcase(p, key) for p in reachable):
                where = f"an instance of block {name!r}" if name else "the network"
                raise SpecError(
                    f"init: the pattern {key!r} matches no module with weights in {where}",
                    source.loc(yp + (key,), key=True),
                    code="name",
                    hint=did_you_mean(key, reachable) or f"patterns match whole module paths, e.g. {reachable[0]!r}"
                    if reachable
                    else "this part of the network has no weights",
                )
