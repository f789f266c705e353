"""Naming: module paths and node ids (docs/language.md, "Module names").

An op or a block instance is named by its key when it has one (``name: op`` or a mapping of
branches), else by its index in the enclosing list. Containers (chains, concats, residuals) add a
segment only when named, so a block's branches sit directly under the block
(``features.6.branch1.0``) as in timm and torchvision. A module with state owns its path: two
modules may not share one, and a module may not also be the container of others.

A node id is the path with ``_`` for ``.`` (the op's name for the root), made unique with a
suffix ``_2``, ``_3``, …; the search for a free suffix resumes where the last one stopped, so
n nodes with one path cost O(n) lookups.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from archspec.errors import Loc, SpecError
from archspec.language.model import ChainNode, ConcatNode, GateNode, ResidualNode, top_level_name_problem

MAX_NODES = 200_000
MAX_BLOCK_DEPTH = 64  # blocks using blocks: as deep as YAML may nest (language/load.py), far beyond any network


@dataclass
class Copies:
    """The product of the repeat counts around the node being expanded: every copy is expanded, so
    nested repeats whose counts multiply past :data:`MAX_NODES` are refused before any is (18 levels
    of ``{chain: [...], repeat: 2}`` took 39 s to reach the op limit)."""

    product: int = 1

    @contextmanager
    def nested(self, count: int, loc: Loc) -> Iterator[None]:
        outer = self.product
        if outer * count > MAX_NODES:
            raise SpecError(
                f"nested repeats make {outer * count:,} copies here, more than the limit of {MAX_NODES:,} ops",
                loc,
                code="limit",
                hint="the repeat counts around this node multiply; lower one of them",
            )
        self.product = outer * count
        try:
            yield
        finally:
            self.product = outer


def join(prefix: str, seg: str | None) -> str:
    """``prefix.seg``; the prefix alone without a segment, the segment alone at the root."""
    if seg is None:
        return prefix
    return f"{prefix}.{seg}" if prefix else seg


def under(p: str, path: str) -> bool:
    """Whether the module path ``p`` is ``path`` or lies inside it (``a.b.c`` in ``a.b``; not ``a.bc``)."""
    return p == path or p.startswith(f"{path}.")


def _clash_hint(path: str) -> str:
    """The hint for two modules at one path: a numbered one is most often a list of unnamed lists
    (``[[conv, bn, relu], [conv, bn, relu]]``), whose lists add no segment and restart at 0."""
    last = path.rsplit(".", 1)[-1]
    if not last.isdigit():
        return "give the ops or branches distinct names (name: op)"
    return (
        "unnamed lists inside a list add no path segment, so each restarts at 0: number them as nn.Sequential does, "
        '- "0": [...], - "1": [...] (or give the ops or branches distinct names, name: op)'
    )


def check_top_level(name: str, loc: Loc) -> None:
    """A name given at the root (a top-level op, block instance or branch, an aux head) is also the
    name of a value in the compiled forward: refuse the forward's own names. Checked here, once, as
    names are given out, so a name a container passes up to the root (an unnamed chain's members,
    a ``names:`` pattern) is caught as well as one written at the top."""
    problem = top_level_name_problem(name)
    if problem:
        raise SpecError(problem, loc, code="name", hint=f"rename it, e.g. {name}_1 or a name that says what it is")


class Names:
    """The module paths and node ids given out so far in one expansion."""

    def __init__(self) -> None:
        self._module_paths: dict[str, Loc] = {}
        self._containers: set[str] = set()  # proper prefixes of module paths
        self._ids: set[str] = set()
        self._next_suffix: dict[str, int] = {}  # id base → last suffix tried

    def claim_module(self, path: str, loc: Loc) -> None:
        """Give ``path`` to a module with state, or raise the located ``name`` error."""
        if path in self._module_paths or not path:
            first = self._module_paths.get(path)
            where = f" (also at {first})" if first else ""
            raise SpecError(f"two modules would be named {path or '<root>'!r}{where}", loc, code="name", hint=_clash_hint(path))
        # a module cannot also be the container of others (unnamed nested lists restart at 0)
        parts = path.split(".")
        above = [".".join(parts[:i]) for i in range(1, len(parts))]
        clash = next((q for q in above if q in self._module_paths), None)
        if clash is None and path in self._containers:
            clash = next(q for q in self._module_paths if q.startswith(path + "."))
        if clash is not None:
            raise SpecError(
                f"module {path!r} would clash with module {clash!r} (at {self._module_paths[clash]})",
                loc,
                code="name",
                hint="name the nested list or branch (name: [...]) so its ops get their own prefix",
            )
        self._module_paths[path] = loc
        self._containers.update(above)

    def reserve(self, node_id: str) -> None:
        self._ids.add(node_id)

    def new_id(self, path: str, op: str, loc: Loc) -> str:
        """A fresh node id for an op at ``path``."""
        base = (path or op).replace(".", "_")  # path segments are identifiers or indices
        node_id, n = base, self._next_suffix.get(base, 1)  # resume where the last search stopped: linear
        if n > 1:
            node_id = f"{base}_{n}"
        while node_id in self._ids:
            n += 1
            node_id = f"{base}_{n}"
        self._next_suffix[base] = n
        self._ids.add(node_id)
        if len(self._ids) > MAX_NODES:
            raise SpecError(f"the network expands to more than {MAX_NODES} ops", loc, code="limit")
        return node_id


def in_place(prefix: str, index: int | None) -> str:
    """The row path of a container written in place without a name (an unnamed list, concat or residual
    among the rows): its parts sit at the enclosing prefix, so it has no module path of its own; it is
    ``PREFIX[INDEX]``, its index in the enclosing list (``[5]``, ``blocks.0[0]``), which names no module
    and cannot be mistaken for one (docs/language.md, "Naming")."""
    return f"{prefix}[{'' if index is None else index}]"


def is_group(node: Any, name: str | None) -> bool:
    """Merges are one row wherever they stand; an op list only when unnamed (a named one is a section)."""
    return isinstance(node, (ConcatNode, ResidualNode, GateNode)) or (name is None and isinstance(node, (list, ChainNode)))


def group_label(node: Any) -> str:
    """The report's label of a container written in place among the rows."""
    if isinstance(node, ConcatNode):
        times = "" if node.count is None else f" × {node.count}"  # count: N, the branches N times (maybe a $param)
        return f"concat of {len(node.concat)} branches{times}"
    if isinstance(node, ResidualNode):
        return "residual"
    if isinstance(node, GateNode):
        return "gate"
    members = node.chain if isinstance(node, ChainNode) else node
    texts = []
    for m in members.values() if isinstance(members, dict) else members:
        if isinstance(m, dict) and len(m) == 1:
            m = next(iter(m.values()))
        texts.append(m.split()[0] if isinstance(m, str) else "…")
    return " → ".join(texts)
