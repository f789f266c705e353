"""The ``init:`` tables (docs/language.md, "Initialisation"): their op names are checked when the spec
is resolved.

A key of a table is an op name (``conv2d``) or a pattern of module paths (``"layer*.bn3"``). An op
name is checked here, against the registry: it must be an op with weights. A pattern is checked
after expansion (archspec/init_patterns.py), because the module paths it must match exist only
then: repeat counts, conditions, ``names:`` patterns and ``$parameters`` decide them.
"""

from __future__ import annotations

from typing import Any

from archspec.errors import SpecError, did_you_mean
from archspec.language.load import Source, YamlPath
from archspec.language.model import TensorInit

InitTables = dict[str, dict[str, TensorInit]]  # "" (the spec's) or a block name → key → scheme
# each table as written (Resolved.init_sources): the spec's under "", each block's under its name, with where it is written
InitSources = dict[str, tuple[Any, Source, YamlPath]]


def is_pattern(key: str) -> bool:
    """A key of module paths (``"*.bn3"``, ``head.fc``) rather than an op name."""
    return "." in key or "*" in key


def init_tables(sources: InitSources) -> InitTables:
    """The tables with every scheme a :class:`TensorInit`; an op name that is not an op with weights
    is a located error."""
    from archspec.ops import REGISTRY

    out: InitTables = {}
    for name, (table, source, yp) in sources.items():
        for op in table:
            if is_pattern(op):
                continue
            if op in REGISTRY and REGISTRY[op].parameter_only:
                raise SpecError(
                    f"init: {op!r} starts at the value it is written with",
                    source.loc(yp + (op,), key=True),
                    code="bad-op-args",
                    hint=f"write it in the op, e.g. '{REGISTRY[op].short_form}'",
                )
            if op not in REGISTRY or not REGISTRY[op].stateful:
                with_weights = sorted(n for n, o in REGISTRY.items() if o.stateful and not o.parameter_only)
                raise SpecError(
                    f"init: {op!r} is not an op with weights",
                    source.loc(yp + (op,), key=True),
                    code="unknown-op",
                    hint=did_you_mean(op, with_weights)
                    or f"initialise one of: {', '.join(with_weights)} (a composite conv is conv2d + bn)",
                )
        out[name] = {op: s if isinstance(s, TensorInit) else TensorInit(weight=s) for op, s in table.items()}
    return out
