"""References to earlier values: ``{from: NAME}`` (docs/language.md, "Reading earlier values").

A node may read the value of any node expanded before it, by its module path: inside the enclosing
block instance first (``from: y2`` in a block is that instance's own ``y2``), then in the whole
network. Only nodes expanded before are known, so the graph stays acyclic: a reference forward, or
to the node it stands in, is a located error.
"""

from __future__ import annotations

from collections.abc import Mapping

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.graph.naming import join
from archspec.ir import INPUT
from archspec.language.shortform import Scope


class NamedValues(dict[str, str]):
    """A named node's module path → its output (what ``from:`` reads there; a later node at the same
    path, as a block's body at the block's path, gives way to the named node that holds it)."""

    def keep(self, path: str, out: str) -> str:
        self[path] = out
        return out


def earlier_value(
    wanted: str,
    scope: Scope,
    values_by_name: Mapping[str, str],
    outputs_by_path: Mapping[str, str],
    loc: Loc,
    what: str = "from:",
) -> str:
    """The node id of the value ``wanted`` names: a named node's output, else the op or block at that path."""
    instance = scope.blocks[-1][1] if scope.blocks else ""  # the innermost block instance's path
    for path in dict.fromkeys((join(instance, wanted), wanted)):
        found = values_by_name.get(path, outputs_by_path.get(path))
        if found is not None:
            return found
    if wanted == INPUT:  # the network's input, where no node of the network has that name
        return INPUT
    hint = did_you_mean(wanted, [*values_by_name, *outputs_by_path]) or (
        "name the node first (a key such as enc1: ...) and refer to it after it; a value can be read only "
        "after the node that computes it (a reference forward would make a cycle)"
    )
    raise SpecError(f"{what} {wanted!r} names no node before this one", loc, code="name", hint=hint)
