"""Expansion: a resolved Spec → OpGraph (archspec/ir.py), a networkx.DiGraph of primitive ops.

Writes each node's :class:`~archspec.ir.Node` record (op, params, module path, YAML location,
row, enclosing blocks, the op as written) and the graph's :class:`~archspec.ir.Network`
(outputs, input, rows, block labels, ``init:`` tables). Edges carry ``slot``: the input position
at the consumer. The package reads like the language reference:

    tree.py      the node kinds of a network or block body, and what each holds
    expander.py  the structure walk: one method per node kind
    naming.py    module paths and node ids (docs/language.md, "Module names")
    params.py    an op's arguments: defaults, the width multiplier, validation and its errors
    blocks.py    a block instance's parameters; the ``init:`` tables
    early.py     shapes worked out while expanding, for ``in``

Multipliers (``scale:`` in the spec) act here. ``depth`` multiplies every written repeat count.
``width`` multiplies the channel field of every op that has one (``Op.channels``), except ops
marked ``fixed`` and the ops that decide a network output's channels: walking back from each
output through ops without a channel field (archspec/graph/__init__.py, ``output_ops``).

The expansion runs once. Two facts are known only at its end: the ops that decide the outputs'
channels, and each block's number of instances (``block_count``). The ops whose arguments depend
on them are kept (``Expander.written``) and worked out again at the end, in place. Where one of
them decides structure instead (a repeat count, a condition, a block's argument), the expansion
runs again with the fact known, as the language defines it (``_expand_in_passes``). Where only
``in`` decides structure under a width multiplier, one expansion at width 1 finds the output ops
and the first expansion's ops are worked out again with them fixed (two expansions, not five). A
spec that scales its own widths (``width_mult`` in expressions, ``scale.apply`` without ``width``:
EfficientNet-B2…B4) needs no width-1 pass: its ops' channels are the same in both (``scales_widths``).
tests/test_expansion_replay.py holds all this to the pass-by-pass definition.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import networkx as nx

from archspec.errors import Loc, SpecError, SpecWarning
from archspec.graph.expander import Expander
from archspec.graph.naming import MAX_NODES
from archspec.graph.writer import Written
from archspec.ir import INPUT, Node, OpGraph
from archspec.language.resolve import Resolved
from archspec.ops import REGISTRY

__all__ = ["MAX_NODES", "Expander", "expand", "output_ops"]


def output_ops(graph: OpGraph) -> frozenset[str]:
    """Module paths of the ops that decide the channels of a network output.

    Walking back from each output (logits, aux heads) through ops without a channel field
    (activations, dropout, pools, flatten, merges), the first op with one is such an op.
    """
    found: set[str] = set()
    todo = list(graph.net.outputs.values())
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        record = graph.at(node)
        if record.op == INPUT:
            continue
        if REGISTRY[record.op].channels is not None:
            found.add(record.origin)
        else:
            todo.extend(graph.pred[node])
    return frozenset(found)


def expand(resolved: Resolved) -> OpGraph:
    """The OpGraph of a resolved spec (see the module's docstring): only what its outputs read."""
    graph = _expand(resolved)
    dropped = prune(graph)
    for path, node, loc in graph.net.features:
        if node not in graph:
            raise SpecError(
                f"features: {path!r} is a value no output reads: it is not part of the network",
                loc,
                code="name",
                hint="name a map the network computes on its way to its outputs (or name it in outputs:)",
            )
    if not graph.net.named_outputs:  # under `outputs:` leaving parts out is the point; here it is a slip
        by_place: dict[Loc, list[tuple[str, Node]]] = {}  # a block's part unread in each instance: one warning
        for path, record in dropped:
            by_place.setdefault(record.loc, []).append((path, record))
        graph.net.warnings += [_unread([p for p, _ in parts], parts[0][1]) for parts in by_place.values()]
    return graph


def prune(graph: OpGraph) -> list[tuple[str, Node]]:
    """Remove what no output reads (docs/language.md, "Several outputs" and "Reading earlier values"):
    the network is what its outputs compute, as torchvision's IntermediateLayerGetter drops the layers
    after the last one it returns, and as `build` never calls a module whose value nothing reads; a
    report row left without its output ends at its last op still there, and a row that never had an op
    (an empty chain) stays while the value it passes on does. A part nothing reads whose `share:` copy
    is read hands its modules to the copy (:func:`_adopt_shared`). Returns each part removed whole that
    held a value nothing read (its path, its first op), in network order."""
    keep = {INPUT}
    for out in graph.net.outputs.values():
        keep |= nx.ancestors(graph, out) | {out}
    if len(keep) == len(graph):
        return []
    _adopt_shared(graph, keep)
    # what a kept copy applies again (Node.replays), or a copy of a copy of it, lives on in that copy: not unread
    # (docs/errors.md; a copy nothing reads is, though its ops carry its original's path)
    replayed: set[str] = set()
    for v in keep:
        while (r := graph.at(v).replays) is not None and r not in replayed:
            v = r
            replayed.add(v)
    ends = _unread_parts(graph, keep | replayed)
    graph.remove_nodes_from([n for n in graph if n not in keep])
    last = {graph.at(n).unit: n for n in graph.ordered() if n != INPUT}  # the input is no row's (a row may be named input)
    units = graph.net.units
    graph.net.units = [
        u if u.output in graph else replace(u, output=last[u.path]) for u in units if u.output in graph or u.path in last
    ]
    return ends


def _adopt_shared(graph: OpGraph, keep: set[str]) -> None:
    """A part nothing reads whose `share:` copy is read: its first kept copy holds the modules instead
    (counted there; later copies share it), and the part itself is left out without a word — it is not
    computed, so in training its BatchNorm statistics move only where a copy runs."""
    owners: dict[str, str] = {}
    # an aux head's copy runs right after its tap, maybe before the network's own copy: the network's
    # copies come first, so the module stays in the network's part (its row, its path in a standalone file)
    aux = {u.path for u in graph.net.units if u.kind == "aux"}
    ordered = graph.ordered()
    for n in [n for n in ordered if graph.at(n).unit not in aux] + [n for n in ordered if graph.at(n).unit in aux]:
        record = graph.at(n)
        if n in keep and record.shares is not None and record.shares not in keep:
            first = owners.setdefault(record.shares, n)
            record.shares = None if first == n else first


def _unread_parts(graph: OpGraph, keep: set[str]) -> list[tuple[str, Node]]:
    """For each value nothing reads (an end of what is removed), the first op of the outermost named part
    removed whole around it: ``b`` for ``b: [conv, relu]`` rather than its relu; each part once."""
    removed: dict[str, list[Node]] = {}  # path prefix → removed records under it, in network order
    kept_prefixes: set[str] = set()
    for n in graph.ordered():
        record = graph.at(n)
        prefixes = _prefixes(record.origin)
        if n in keep:
            kept_prefixes.update(prefixes)
        else:
            for prefix in prefixes:
                removed.setdefault(prefix, []).append(record)
    parts: dict[str, Node] = {}  # module path (or the op as written, at no path) → its first removed op
    for n in graph.ordered():
        if n in keep or graph.succ[n]:
            continue
        record = graph.at(n)
        prefix = next((p for p in _prefixes(record.origin) if p not in kept_prefixes), record.origin)
        parts.setdefault(prefix, removed[prefix][0] if prefix in removed else record)
    return list(parts.items())


def _prefixes(path: str) -> list[str]:
    """A module path and the paths around it, outermost first: ``a``, ``a.b``, ``a.b.c``."""
    segments = path.split(".") if path else []
    return [".".join(segments[: k + 1]) for k in range(len(segments))]


def _unread(paths: list[str], record: Node) -> SpecWarning:
    where = ", ".join(repr(p) if p else repr(record.text) for p in paths[:3]) + (
        f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    )
    return SpecWarning(
        f"nothing reads the value of {where}: {'it is' if len(paths) == 1 else 'they are'} left out of the "
        f"network, with {'its' if len(paths) == 1 else 'their'} weights",
        record.loc,
        "unread",
        hint="a later `from:` skips it; read it with {from: NAME}, name it in `outputs:`, or delete it "
        "(--strict makes this an error)",
    )


def _expand(resolved: Resolved) -> OpGraph:
    """The OpGraph of a resolved spec, expanded once (see the module's docstring)."""
    width = scales_widths(resolved)
    ex = Expander(resolved)
    try:
        graph = ex.run()
        counts_decide = ex.forms.counted and ex.forms.structural[0]
        replayed = not counts_decide and not (width and ex.forms.structural[1]) and _replay(ex, graph, width)
        if not replayed and width and not counts_decide and ex.forms.structural[1]:
            # `in` decides structure (nothing replayed yet): the output ops from the width-1 pass, as the
            # passes find them; then this expansion's ops worked out again with those fixed, as above
            replayed = _replay(ex, graph, True, output_ops(_counted_once(resolved, scale_width=False)))
    except SpecError:
        if not (width or ex.forms.counted):
            raise
        return _expand_in_passes(resolved)  # the passes find the error the language defines (at width 1 first)
    if replayed:
        return graph
    if not width:  # block_count decides structure: the first pass counted the instances
        return _expand_counted(resolved, first=ex)
    return _expand_in_passes(resolved)


def _counted_once(resolved: Resolved, **options: Any) -> OpGraph:
    """:func:`_expand_counted`'s graph, from one expansion where block_count decides no structure (the ops
    that read it worked out again in place, as in :func:`_expand`), else from its two."""
    ex = Expander(resolved, **options)
    graph = ex.run()
    if not ex.forms.counted or (not ex.forms.structural[0] and _replay(ex, graph, False)):
        return graph
    return _expand_counted(resolved, first=ex)  # (a failed replay's graph is not used: it expands again)


def _replay(ex: Expander, graph: OpGraph, width: bool, fixed: frozenset[str] | None = None) -> bool:
    """Work out again the ops that read block_count or decide an output's channels (``fixed``, by default
    this graph's output ops); False where an op's new parameters would change a shape that some ``in`` read."""
    if fixed is None:
        fixed = output_ops(graph) if width else frozenset()
    if ex.forms.counted:
        ex.forms.totals = dict(ex.instances)
    for w in ex.written:
        if w.ref.from_count or (w.scaled and w.path in fixed):
            if not _rewrite(ex, w, w.path in fixed):
                return False
    return _share_rewritten(ex)


def _share_rewritten(ex: Expander) -> bool:
    """A ``share:`` copy takes its original's parameters as worked out again; False where that changes a
    shape some ``in`` read."""
    memo = ex.early.memo
    for node, record in ex.graph.records():
        if record.shares is not None:
            first = ex.graph.at(record.shares)
            if (record.params, record.text, record.composite) == (first.params, first.text, first.composite):
                continue
            record.params, record.text, record.composite = first.params, first.text, first.composite
            if node in memo and ex.early.shape_of(node, [memo[p] for p in ex.graph.inputs_of(node)]) != memo[node]:
                return False
    return True


def _rewrite(ex: Expander, w: Written, fixed: bool) -> bool:
    ref = w.remake() if w.ref.from_count and w.remake is not None else w.ref
    args, _ = ex.params.args(w.op, ref, w.scope.source, fixed=fixed)
    params = ex.params.validate(w.op, args, ref.token_locs, ref.loc)
    chain = ex.params.chain(w.op, params, ref.loc)
    records = [ex.graph.at(node) for node in w.ids]
    text = ex.params.short(w.op, params, w.scope.source)
    if chain is None:
        news: list[tuple[str, Any, Any]] = [(w.op.name, params, None)]
    else:
        news = [(child_op, child_params, (w.op.name, params)) for _, child_op, child_params in chain]
    if [n[0] for n in news] != [r.op for r in records]:
        return False
    memo = ex.early.memo
    for node, record, (_, new, composite) in zip(w.ids, records, news, strict=True):
        record.params, record.text, record.composite = new, text, composite
        if node in memo:  # some `in` read this node's shape: it must not change
            shape = ex.early.shape_of(node, [memo[p] for p in ex.graph.inputs_of(node)])
            if shape != memo[node]:
                return False
    if w.unit is not None:
        ex.units[w.unit] = replace(ex.units[w.unit], label=text)
    return True


def _expand_counted(resolved: Resolved, first: Expander | None = None, **options: Any) -> OpGraph:
    """Expand once (or take ``first``, a finished expansion); again when ``block_count`` was used,
    now with every block's number of instances.

    The first expansion counts the instances (block_count is provisional there); the second
    must make as many, else the count would depend on itself: a located error."""
    if first is None:
        first = Expander(resolved, **options)
        graph = first.run()
    else:
        graph = first.graph
    if not first.forms.counted:
        return graph
    second = Expander(resolved, totals=dict(first.instances), **options)
    graph = second.run()
    if second.instances != first.instances:
        name = next(
            n for n in sorted(set(first.instances) | set(second.instances)) if first.instances.get(n) != second.instances.get(n)
        )
        raise SpecError(
            f"the number of instances of block {name!r} depends on $block_count",
            second.first_use.get(name) or first.first_use[name],
            code="param",
            hint="block_count may set values inside the blocks (a drop rate), not how many blocks there are",
        )
    return graph


def scales_widths(resolved: Resolved) -> bool:
    """Whether the width multiplier changes any op's channels: a width other than 1 that archspec applies
    itself. A spec scaling its own widths (``width_mult`` in expressions, ``apply`` without ``width``)
    reads the same ``width_mult`` in every pass, so its width-1 pass would be this same expansion again."""
    scale = resolved.spec.scale
    return scale.width != 1 and "width" in scale.apply


def _expand_in_passes(resolved: Resolved) -> OpGraph:
    """The language's definition, pass by pass: at width 1 first to find the output ops, then scaled
    with them fixed; each pass twice where block_count is read."""
    if resolved.spec.scale.width == 1:
        return _expand_counted(resolved)
    fixed = output_ops(_expand_counted(resolved, scale_width=False))
    return _expand_counted(resolved, fixed_paths=fixed)
