"""Blocks: the environment of a block instance and its unused parameters.

An instance's environment is the block's declared parameters (with their defaults) overridden by
the arguments written where it is used; ``block_index`` and ``block_count`` are defined in every
block (archspec/language/shortform.py) and so may not be declared. A declared parameter that no
instance reads is an error at its declaration.
"""

from __future__ import annotations

from typing import Any

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.graph.naming import MAX_BLOCK_DEPTH
from archspec.language.resolve import BlockEntry
from archspec.language.shortform import BUILTIN_NAMES, Ref, Scope


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


def check_nesting(ref: Ref, blocks: tuple[tuple[str, str], ...]) -> None:
    """A block instance inside ``blocks`` (the enclosing instances): not too deep. A block may use itself
    (the stacked hourglass's Hourglass(d) holds Hourglass(d − 1)) where an ``if:`` on a parameter ends the
    recursion; one that never ends meets the depth limit here, at the instance that passes it."""
    if len(blocks) >= MAX_BLOCK_DEPTH:  # expansion recurses once per level
        names = [b for b, _ in blocks]
        most = max(names, key=names.count)  # the block using itself, at most levels
        itself = most if names.count(most) > 1 else None
        raise SpecError(
            f"blocks nested deeper than {MAX_BLOCK_DEPTH} levels"
            + (f": block {itself!r} uses itself at every level" if itself else ""),
            ref.loc,
            code="limit",
            hint="end a block's use of itself with an if: on a parameter it changes at each level, "
            "e.g. {if: ${d > 1}, then: 'hg d=${d - 1}', else: conv 8 3x3 p1}"
            if itself
            else "nest fewer blocks",
        )


def instance_scope(
    entry: BlockEntry,
    ref: Ref,
    scope: Scope,
    x: str,
    path: str,
    unit: str | None,
    counts: dict[str, int],
    first_use: dict[str, Any],
) -> Scope:
    """The scope of one block instance at ``path``: its parameters, its index among the instances of its
    counter (``counts`` and ``first_use`` are the expansion's, updated here), the node it is applied to."""
    env = block_env(entry, ref)
    counter = entry.definition.counter or ref.name  # a counter shared by the blocks naming it, else the block's own
    index = counts.get(counter, 0)  # block_index: instances counted so far, in order
    counts[counter] = index + 1
    first_use.setdefault(counter, ref.loc)
    blocks = scope.blocks + ((ref.name, path),)
    from_input = ref.from_input & set(env)  # parameters computed from `in`: not scaled again
    return Scope(entry.source, env, blocks, unit, set(), index, from_input, counter, x)


def refuse_named_inline(ref: Ref, loc: Loc) -> None:
    """An instance of an inline block has no path segment, so it cannot take a name (docs/language.md)."""
    raise SpecError(
        f"block {ref.name!r} is inline (its parts are named where it is used): an instance of it takes no name",
        loc,
        code="name",
        hint="write it as an item of a list, without a name; or drop inline: true from the block",
    )
