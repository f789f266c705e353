"""The values module paths name: ``{from: NAME}``, an op's field naming a value (``crop to=``,
``interpolate size_of=``), ``outputs:`` and ``aux: tap`` (docs/language.md, "Reading earlier values").

Every node with a path is recorded when it ends: an op, a block instance, a named node, a copy of a
repeat, a gate, a report row. Unnamed containers add no segment, so several nodes can share a path.
A node written around others at its own path (a named node and the op in it, a row and its first
branch, a gate and its body, a block instance and its body) stands for them: when it ends it replaces
the values recorded at its path since it began. Nodes side by side at one path (two unnamed residuals'
``then`` ops, both ``act``) stay side by side, and a name reading that path is a located error.

``from:`` and the op fields see the nodes ended before them, inside the enclosing block instances
(innermost first), then in the whole network, and ``block_in``, the innermost instance's input;
``outputs:`` and ``aux: tap`` see the whole network. Only ended nodes are known, so the graph stays
acyclic: a reference forward, or to the node it stands in, is a located error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.graph.naming import join
from archspec.ir import INPUT
from archspec.language.shortform import Scope


@dataclass(frozen=True)
class Held:
    """One node's value at a path: the order its node ended in, its node id, where it is written."""

    order: int
    out: str
    loc: Loc


@dataclass
class PathValues:
    """Module path → the values of the nodes at that path, outer nodes standing for the nodes inside them."""

    at: dict[str, list[Held]] = field(default_factory=dict)
    ended: int = 0
    kept: list[str] = field(default_factory=list)  # the path of each value recorded, in order (graph/instances.py)
    read: list[str] = field(default_factory=list)  # the node of each value a name looked up, in order (likewise)

    def mark(self) -> int:
        """Where a node begins: the nodes ending after this are inside it."""
        return self.ended

    def keep(self, path: str, out: str, loc: Loc, since: int) -> str:
        """Record the value of a node at ``path`` that began at ``since``; returns ``out``."""
        held = self.at.setdefault(path, [])
        while held and held[-1].order >= since:  # ended inside it (in order, so at the end of the list)
            held.pop()
        held.append(Held(self.ended, out, loc))  # the rest are side by side with it
        self.kept.append(path)
        self.ended += 1
        return out

    def value(self, path: str, loc: Loc, what: str) -> str | None:
        """The node id of the value at ``path`` (None: no node there); several side by side are an error."""
        held = self.at.get(path)
        if not held:
            return None
        outs = dict.fromkeys(h.out for h in held)
        if len(outs) == 1:
            return held[-1].out
        lines = ", ".join(f"line {h.loc.line}" for h in held)
        raise SpecError(
            f"{what} {path!r} names {len(outs)} values side by side (nodes at one module path: {lines})",
            loc,
            code="name",
            hint="unnamed containers add no path segment; name the nodes (or the containers around them) to tell them apart",
        )


BLOCK_INPUT = "block_in"  # in a block: the value its innermost instance is applied to


def earlier_value(wanted: str, scope: Scope, values: PathValues, loc: Loc, what: str = "from:") -> str:
    """The node id of the value ``wanted`` names, looked up lexically: inside the innermost block instance
    first (``from: y2`` in a block is that instance's own ``y2``), then inside each enclosing instance,
    innermost first (a decoder block reads its stage's ``enc2``), then in the whole network. In a block,
    ``block_in`` is the innermost instance's input."""
    if wanted == BLOCK_INPUT and scope.block_input is not None:
        return scope.block_input
    return earlier_part(wanted, scope, values, loc, what)[1]


def earlier_part(wanted: str, scope: Scope, values: PathValues, loc: Loc, what: str) -> tuple[str, str]:
    """The module path ``wanted`` resolves to, looked up as :func:`earlier_value` looks it up, and the
    node id of its value (``share:`` needs the path: the part is the nodes under it)."""
    instances = [path for _, path in reversed(scope.blocks)]
    for path in dict.fromkeys([*(join(at, wanted) for at in instances), wanted]):
        found = values.value(path, loc, what)
        if found is not None:
            values.read.append(found)
            return path, found
    if wanted == INPUT:  # the network's input, where no node of the network has that name
        values.read.append(INPUT)
        return "", INPUT
    if wanted == BLOCK_INPUT:
        raise SpecError(
            f"{what} 'block_in' names the input of the enclosing block instance, and there is none here",
            loc,
            code="name",
            hint="block_in is defined inside a block; at the network's level the input is `input`",
        )
    hint = did_you_mean(wanted, values.at) or (
        "name the node first (a key such as enc1: ...) and refer to it after it; a value can be read only "
        "after the node that computes it (a reference forward would make a cycle)"
    )
    raise SpecError(f"{what} {wanted!r} names no node before this one", loc, code="name", hint=hint)
