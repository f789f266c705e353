"""Blocks: the environment of a block instance, its unused parameters, and the ``init:`` tables.

An instance's environment is the block's declared parameters (with their defaults) overridden by
the arguments written where it is used; ``block_index`` and ``block_count`` are defined in every
block (archspec/language/shortform.py) and so may not be declared. A declared parameter that no
instance reads is an error at its declaration.
"""

from __future__ import annotations

from typing import Any

from archspec.errors import SpecError, did_you_mean
from archspec.language.load import Source, YamlPath
from archspec.language.model import TensorInit
from archspec.language.resolve import BlockEntry, Resolved
from archspec.language.shortform import BUILTIN_NAMES, Ref
from archspec.ops import REGISTRY


def block_env(entry: BlockEntry, ref: Ref) -> dict[str, Any]:
    """The $parameters of one instance of a block: declared defaults, then the arguments written."""
    declared = entry.definition.params
    for name in BUILTIN_NAMES:
        if name in declared:
            meaning = "this instance's index among" if name == "block_index" else "the number of"
            raise SpecError(
                f"block {ref.name!r} declares a parameter ${name}, a name every block defines",
                entry.source.loc(entry.yaml_path + ("params", name), key=True),
                code="param",
                hint=f"rename the parameter: ${name} is {meaning} the block's instances (see docs/language.md)",
            )
    env = dict(declared)
    for key, value in ref.args.items():
        if key not in declared:
            hint = did_you_mean(key, [*declared, "repeat"]) or (
                f"its parameters are {', '.join(declared)}" if declared else "it takes no parameters"
            )
            if hint == "did you mean 'repeat'?":  # `repat=6` meant the repeat count, not a parameter
                hint += f" (the number of copies: {ref.name} * N, or --set PATH.repeat=N)"
            raise SpecError(
                f"block {ref.name!r} has no parameter {key!r}", ref.token_locs.get(key, ref.loc), code="param", hint=hint
            )
        env[key] = value
    return env


def check_used(entry: BlockEntry, ref: Ref, used: set[str] | None) -> None:
    """Every declared parameter of the block was read by this instance."""
    unused = set(entry.definition.params) - (used or set())
    if unused:
        name = sorted(unused)[0]
        raise SpecError(
            f"parameter ${name} of block {ref.name!r} is never used",
            entry.source.loc(entry.yaml_path + ("params", name), key=True),
            code="param",
            hint="remove it, or use it as $" + name,
        )


def init_tables(resolved: Resolved) -> dict[str, dict[str, TensorInit]]:
    """The ``init:`` tables: the spec's under "", each block's under its name; op names checked."""
    tables: dict[str, tuple[Any, Source, YamlPath]] = {"": (resolved.spec.init, resolved.source, ("init",))}
    for name, entry in resolved.blocks.items():
        tables[name] = (entry.definition.init, entry.source, entry.yaml_path + ("init",))
    out: dict[str, dict[str, TensorInit]] = {}
    for name, (table, source, yp) in tables.items():
        for op in table:
            if "." in op or "*" in op:  # a pattern of module paths, e.g. "*.bn3"
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
