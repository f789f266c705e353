"""Equal block instances expanded once: later instances copied from an earlier one.

A stage repeats its block (ShuffleNetV2's ``unit c=116 * 7``, Inception-ResNet-v2's 20 Block17s, the
inner layers of each EfficientNet stage), and expanding each instance anew re-reads the same YAML,
parses the same short forms and validates the same parameters. An instance's expansion is a function
of its arguments alone when, inside it, nothing reads ``block_index`` or ``block_count`` (but the arguments
of ops read again in each copy: :attr:`~archspec.language.shortform.Ref.rereadable`), nothing is
scaled by the width multiplier, no name reads a value from outside it (and every edge comes from its
own nodes or its input), nothing is a ``share:`` copy, no report row is written and every path lies
under the instance's own path; where it reads ``in`` (or ``block_in``) it is a function of its input's
shape too. The first instance with given arguments is kept as a :class:`Template` — what later nodes
change taken at once (cheap: its node ids, named values and counters), its records read and checked
only where it is first copied — and each later instance of the same block with the same arguments, nesting, repeat
product and (where read) input shape is written from it: the same records at the new instance's paths,
new node ids and orders, its module paths claimed (a clash is the same located error), its counters
advanced and its named values recorded, as expanding it would.

``tests/test_instance_copies.py`` holds every zoo network, its variants and the fuzzer's specs to this:
the graph written with copies equals the graph expanded instance by instance, record for record.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from archspec.errors import Loc
from archspec.graph.early import EarlyShapes
from archspec.graph.naming import Copies, under
from archspec.graph.refs import Held, PathValues
from archspec.graph.writer import Writer, Written
from archspec.ir import Node, OpGraph, Unit
from archspec.language.load import YamlPath
from archspec.language.shortform import Ref, Scope, ShortForms
from archspec.ops import REGISTRY
from archspec.symbolic import Shape

COPIES = True  # False: every instance expanded anew (the definition the copies are tested against)

Key = tuple[Any, ...]


@dataclass
class Template:
    """An instance of a block with given arguments, as it was expanded."""

    path: str  # its module path; every path inside it lies under this one
    x: str  # the node it was applied to
    out: str  # its value: one of its nodes, or ``x`` (an empty body)
    nodes: list[str]  # its nodes, in the order they were written
    read: list[str]  # the values that names inside it read (graph/refs.py: PathValues.read)
    values: list[tuple[str, list[Held]]]  # the named values it recorded, by path (orders from its start)
    ended: int  # how many named values it recorded (graph/refs.py: PathValues.ended)
    counters: dict[str, int]  # the block instances inside it, per counter
    shape: Shape | None  # its input's shape, where it read `in` (its expansion depends on it)
    shapes: list[tuple[str, Shape]]  # the shapes of its nodes that an `in` inside it worked out (graph/early.py)
    unit: str | None  # its scope's row
    blocks: tuple[tuple[str, str], ...]  # its scope's enclosing instances, itself last
    rereads: list[tuple[str, str, YamlPath]]  # its ops whose arguments read block_index or block_count: node, text, place
    # read where it is first copied (:func:`_read`): its records, their inputs (an index into records, -1 for x),
    # and ``values`` by index
    records: list[Node] = field(default_factory=list)
    inputs: list[list[int]] = field(default_factory=list)
    held: list[tuple[str, list[tuple[int, int, Loc]]]] = field(default_factory=list)
    shaped: list[tuple[int, Shape]] = field(default_factory=list)  # ``shapes`` by index
    value: int = -1  # ``out`` by index (-1: x)
    reread: list[tuple[int, str, YamlPath]] = field(default_factory=list)  # ``rereads`` by index


@dataclass
class Start:
    """The expansion's state where an instance's body begins."""

    nodes: int
    ended: int
    kept: int
    read: int
    reads: tuple[int, ...]
    counts: dict[str, int]
    units: int
    written: int
    rereads: int
    reread: tuple[int, ...]


@dataclass
class InstanceCopies:
    """The templates of one expansion, and the copying of them (see the module's docstring)."""

    graph: OpGraph
    out: Writer
    values: PathValues
    early: EarlyShapes
    forms: ShortForms
    counts: dict[str, int]  # the expansion's instances per counter (block_index)
    units: list[Unit]
    written: list[Any]
    copies: Copies
    enabled: bool = True
    templates: dict[Key, Template | None] = field(default_factory=dict)  # None: its instances cannot be copied
    # the ops whose arguments read block_index or block_count (Ref.indexed) and may be read again in a copy
    # (Ref.rereadable), as written: node, short form, its place, its scope
    rereads: list[tuple[str, str, YamlPath, Scope]] = field(default_factory=list)

    def key(self, name: str, inner: Scope) -> Key | None:
        """What an instance's expansion may depend on besides its input's shape (None: copy nothing)."""
        if not (self.enabled and COPIES):
            return None
        env = repr(sorted(inner.env.items()))  # the values as written: 1, 1.0 and true stay apart
        return name, env, inner.from_input, tuple(b for b, _ in inner.blocks), self.copies.product

    def start(self) -> Start:
        v = self.values
        return Start(
            len(self.graph),
            v.ended,
            len(v.kept),
            len(v.read),
            tuple(self.forms.reads),
            dict(self.counts),
            len(self.units),
            len(self.written),
            len(self.rereads),
            tuple(self.forms.reread),
        )

    def copy(self, key: Key, x: str, path: str, inner: Scope) -> str | None:
        """The instance at ``path`` applied to ``x``, written from the template of ``key``; None where there is none
        (or its input's shape differs)."""
        t = self.templates.get(key)
        if t is None or not path:
            return None
        if not t.records and not _read(t, self.graph):
            self.templates[key] = None
            return None
        if t.shape is not None:
            self.early.channels(x)
            if self.early.memo[x] != t.shape:
                return None
        fresh = self._reread(t, inner) if t.reread else {}
        if t.shape is not None:
            self.forms.reads[1] += 1  # an instance around this one depends on its input's shape too
        cut, outer = len(t.path), len(t.blocks)
        ids: list[str] = []
        nodes: list[tuple[str, dict[str, Node]]] = []
        names, writer = self.out.names, self.out
        unit = inner.unit or path  # (an instance's scope always has its row: the enclosing one, or itself)
        for k, r in enumerate(t.records):
            new_path = path + r.path[cut:]
            if REGISTRY[r.op].stateful:
                names.claim_module(new_path, r.loc)
            node = names.new_id(new_path, r.op, r.loc)
            writer.order += 1
            blocks = inner.blocks + tuple((b, path + p[cut:]) for b, p in r.blocks[outer:])
            params, text = r.params, r._text
            if k in fresh:  # its arguments as this instance reads them
                params, ref = fresh[k]
                text = writer.params.text(REGISTRY[r.op], params, inner.source)
                self.rereads.append((node, ref.text, ref.yp, inner))
                if ref.from_count:  # worked out again once block_count is known, as an expanded op is (graph/__init__.py)
                    remake = functools.partial(self.forms.reparse, ref.text, ref.yp, inner, None)
                    self.written.append(Written(REGISTRY[r.op], ref, remake, new_path, inner, [node], False))
            record = Node(r.op, params, new_path, r.loc, unit, blocks, writer.order, path + r.origin[cut:], text, r.composite)
            nodes.append((node, {"node": record}))
            ids.append(node)
        # (an identity the writer puts before a value read twice comes after its reader: edges once all are named)
        edges = [
            (x if i < 0 else ids[i], node, {"slot": slot})
            for node, inputs in zip(ids, t.inputs, strict=True)
            for slot, i in enumerate(inputs)
        ]
        self.graph.add_nodes_from(nodes)  # (at once: networkx's per-call work once per instance)
        self.graph.add_edges_from(edges)
        self.early.memo.update((ids[i], shape) for i, shape in t.shaped)
        base = self.values.ended
        for p, held in t.held:
            self.values.kept.append(path + p[cut:])
            self.values.at.setdefault(path + p[cut:], []).extend(
                Held(base + order, x if i < 0 else ids[i], loc) for order, i, loc in held
            )
        self.values.ended += t.ended
        for counter, n in t.counters.items():
            self.counts[counter] = self.counts.get(counter, 0) + n
        return x if t.value < 0 else ids[t.value]

    def _reread(self, t: Template, inner: Scope) -> dict[int, tuple[Any, Ref]]:
        """The parameters and parse of each of ``t``'s ops read again in the instance of ``inner``: the same op (its
        name, repeat count and `in` read no index, count or input: Ref.rereadable), its arguments this instance's."""
        found: dict[int, tuple[Any, Ref]] = {}
        for k, text, yp in t.reread:
            ref = self.forms.parse(text, yp, inner, None)
            found[k] = self.out.params.of(REGISTRY[t.records[k].op], ref, inner.source)[0], ref
        return found

    def keep(self, key: Key | None, start: Start, x: str, out: str, path: str, inner: Scope) -> None:
        """Keep the instance just expanded as the template of ``key``: what later nodes change (named values,
        counters, early shapes), now; its records are read where it is first copied."""
        forms = self.forms
        if key is None or not path:
            return
        counted, indexed = forms.reads[0] - start.reads[0], forms.reads[2] - start.reads[2]
        if (counted, indexed) != (forms.reread[0] - start.reread[0], forms.reread[1] - start.reread[1]):
            return  # block_count or block_index read inside other than by an op read again in each copy
        rereads = self.rereads[start.rereads :]
        if any(scope is not inner for *_, scope in rereads):
            return  # ... read by an op of a block instance inside it: that instance's index, not this one's
        if (
            len(self.units) != start.units
            or any(w.scaled for w in self.written[start.written :])  # (the others: ops read again, which read block_count)
            or (key in self.templates and not self.templates[key])
        ):
            return  # a report row, an op the width multiplier changes, or known not to be copied
        reads_input = forms.reads[1] != start.reads[1]
        shape = self.early.memo.get(x) if reads_input else None
        if reads_input and shape is None:
            return
        nodes = list(islice(self.graph, start.nodes, None))
        memo, at, since = self.early.memo, self.values.at, start.ended
        held = [
            (p, [Held(h.order - since, h.out, h.loc) for h in at[p] if h.order >= since])
            for p in dict.fromkeys(self.values.kept[start.kept :])
        ]
        counters = {c: n - start.counts.get(c, 0) for c, n in self.counts.items() if n != start.counts.get(c, 0)}
        shapes = [(n, memo[n]) for n in nodes if n in memo] if reads_input else []
        read = self.values.read[start.read :]
        self.templates[key] = Template(
            path,
            x,
            out,
            nodes,
            read,
            held,
            self.values.ended - since,
            counters,
            shape,
            shapes,
            inner.unit,
            inner.blocks,
            [(node, text, yp) for node, text, yp, _ in rereads],
        )


def _read(t: Template, graph: OpGraph) -> bool:
    """Read a template's records into it; False where copying it would not be expanding it: a name read a
    value from outside, an edge comes from outside, a node shares a module, or a path lies elsewhere."""
    path, x = t.path, t.x
    index = {n: i for i, n in enumerate(t.nodes)}
    index[x] = -1
    if t.out not in index or any(index.get(n, -1) < 0 for n in t.read):
        return False  # a name read a value from outside (its input too, by name: another instance's input is another value)
    outer = len(t.blocks)
    records, inputs = [], []
    for n in t.nodes:
        r = graph.at(n)
        if r.shares is not None or r.unit != t.unit or r.blocks[:outer] != t.blocks:
            return False
        if not (under(r.path, path) and under(r.origin, path)):
            return False
        if any(not under(p, path) for _, p in r.blocks[outer:]):
            return False
        preds = graph.inputs_of(n)
        if any(p not in index for p in preds):
            return False  # a value from outside the instance
        records.append(r)
        inputs.append([index[p] for p in preds])
    held = []
    for p, kept in t.values:
        if not under(p, path) or any(h.out not in index for h in kept):
            return False
        held.append((p, [(h.order, index[h.out], h.loc) for h in kept]))
    t.records, t.inputs, t.held = records, inputs, held
    t.shaped, t.value = [(index[n], shape) for n, shape in t.shapes], index[t.out]
    t.reread = [(index[n], text, yp) for n, text, yp in t.rereads]  # (each one of its nodes: written inside it)
    return True
