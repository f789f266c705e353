"""Diagrams: an OpGraph with shapes → a ``graphviz.Digraph``, in the views of ``archspec render``.

* **network** (default): one box per top-level unit (a block instance, an op, an aux head);
  consecutive identical instances of a block are folded (``Inception-A ×4``); edges carry the
  tensor shape at the spec's input size (``384×35×35``) or, with ``symbolic``, its formula in H, W.
* **block** (``block=NAME``): the first instance of one block, drawn like the papers' figures —
  branches side by side, one box per op as the spec writes it (a composite ``conv`` is one box
  labelled by the registry, ``3×3 conv (96, stride 2, V)``), the merge (``Filter concat``,
  ``+ ×0.17``) and what follows it at the bottom; a shortcut straight into a merge is drawn bold.
* **expanded** (``expand=True``): every primitive op, block instances as nested clusters; with
  ``depth=N`` instances nested deeper than N levels stay closed boxes.

All views are one algorithm: each primitive node maps to a *group* (one box) — a closed block
instance, an op as written, or the primitive itself — and each graph edge between two groups
becomes one diagram edge labelled with its tail's shape. Boxes are coloured by ``Op.kind``, with
a legend. Output is deterministic: everything is emitted in the graph's stable topological order.
Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz

from archspec.errors import SpecError, did_you_mean, printable
from archspec.ir import INPUT, Node, OpGraph
from archspec.ops import REGISTRY
from archspec.shapes import MAX_PARAMS, inputs_of, ordered
from archspec.symbolic import Shape

# Fill colours by Op.kind, plus "block" (a closed block instance) and "io" (inputs and outputs).
KIND_STYLE: dict[str, tuple[str, str]] = {  # kind -> (fill colour, legend text)
    "conv": ("#cfe2f3", "convolution (+ BN + activation)"),
    "conv_linear": ("#ffffff", "convolution without activation (linear)"),
    "pool": ("#fce5cd", "pooling"),
    "norm": ("#d9ead3", "normalisation"),
    "act": ("#fff2cc", "activation"),
    "linear": ("#ead1dc", "fully connected"),
    "merge": ("#d9d9d9", "merge (concat, +)"),
    "misc": ("#f3f3f3", "other"),
    "block": ("#d9c6ec", "block (draw with --block)"),
    "aux": ("#ededed", "auxiliary head (training only)"),
    "io": ("#ffffff", "input / output"),
}
SHORTCUT = "#1f4e79"  # colour of a skip connection drawn straight into a merge
FONT = "Helvetica"


@dataclass(frozen=True)
class Frame:
    """A container a node sits in: a block instance (or an aux head), outermost first."""

    path: str
    name: str | None  # block name; None for an aux head
    label: str


@dataclass
class Group:
    """One box of the diagram."""

    key: str
    label: str
    kind: str
    frames: tuple[Frame, ...]  # open containers it is drawn inside (clusters)
    members: list[str] = field(default_factory=list)
    block: str | None = None  # the block name when the box is a closed block instance
    count: int = 1


@dataclass
class _Edge:
    tail: str
    head: str
    shape: Shape
    skip: bool


def frames_of(graph: OpGraph, node: str) -> tuple[Frame, ...]:
    """The block instances (and aux head) a node sits in, outermost first."""
    record = graph.at(node)
    labels = graph.net.block_labels
    aux = {u.path: u for u in graph.net.units if u.kind == "aux"}
    out: tuple[Frame, ...] = ()
    if record.unit in aux:
        out = (Frame(record.unit, None, aux[record.unit].label),)
    return out + tuple(Frame(path, name, dot_text(labels.get(name, name))) for name, path in record.blocks)


def dot_text(text: str) -> str:
    """A label from the spec as DOT text: control characters escaped (a NUL ends a DOT string). Every
    label then goes through ``graphviz.escape``, which doubles backslashes (a trailing one would
    escape the closing quote), so they are not doubled here."""
    return printable(text)


def block_instances(graph: OpGraph, name: str) -> list[str]:
    """Instance paths of block ``name``, in network order."""
    seen: dict[str, None] = {}
    for node in ordered(graph):
        for block, path in graph.at(node).blocks:
            if block == name:
                seen.setdefault(path, None)
    return list(seen)


def op_label(record: Node) -> tuple[str, str]:
    """(label, kind) of an op as written: the composite it came from, else the primitive."""
    name, params = record.composite or (record.op, record.params)
    op = REGISTRY[name]
    return op.label(params), op.kind


class _View:
    def __init__(
        self,
        graph: OpGraph,
        *,
        block: str | None,
        expand: bool,
        depth: int | None,
        symbolic: bool,
        open: Iterable[str] | None = None,
        primitives: bool = False,
        fold: bool = True,
    ) -> None:
        self.graph = graph
        self.symbolic = symbolic
        self.composites = not primitives
        self.depth = depth if depth is not None else (1 << 30 if expand else 0)
        self.open = set(open) if open is not None else None
        self.base = 0
        self.instance: str | None = None
        self._frames = {n: frames_of(graph, n) for n in graph.nodes}
        if block is not None:
            instances = block_instances(graph, block)
            if not instances:
                raise KeyError(block)
            self.instance = instances[0]
            self.base = next(i + 1 for f in self._frames.values() for i, fr in enumerate(f) if fr.path == self.instance)
        self.groups: dict[str, Group] = {}
        self.of: dict[str, str] = {}  # primitive node -> group key
        self.edges: dict[tuple[str, str], _Edge] = {}
        self.alias: dict[str, str] = {}  # node of a folded-away repeat -> the same node of the first instance
        self.repeats: dict[str, list[str]] = {}  # first instance path -> every instance path it stands for
        self.first: dict[str, str] = {}  # instance path -> the first instance of its run
        if fold:
            self.fold_repeats()

    def in_scope(self, node: str) -> bool:
        if self.instance is None:
            return True
        f = self._frames[node]
        return len(f) >= self.base and f[self.base - 1].path == self.instance

    def is_open(self, frames: tuple[Frame, ...], i: int) -> bool:
        if self.open is None:
            return i < self.base + self.depth
        return frames[i].path in self.open or (frames[i].name is None and i < self.base + self.depth)

    def group_of(self, node: str) -> Group:
        record = self.graph.at(node)
        f = self._frames[node]
        if record.op == INPUT:
            return Group("@input", "Input", "io", ())
        cut = self.base
        while cut < len(f) and self.is_open(f, cut):
            cut += 1
        if cut < len(f):
            closed = f[cut]
            kind = "block" if closed.name is not None else "aux"
            return Group(
                closed.path,
                _instance_label(closed),
                kind,
                f[self.base : cut],
                block=closed.name,
                count=len(self.repeats.get(closed.path, [closed.path])),
            )
        open_frames = f[self.base :]
        if self.composites and record.composite:  # one box for the primitives of one composite op
            label, kind = op_label(record)
            if kind == "conv" and not _activated(record.composite):
                kind = "conv_linear"
            return Group("op." + record.origin, label, kind, open_frames)
        op = REGISTRY[record.op]
        kind = "conv_linear" if op.kind == "conv" and not record.composite else op.kind
        return Group(node, op.label(record.params), kind, open_frames)

    def external(self, node: str) -> Group:
        """A box for a producer outside the drawn block, labelled like that primitive (``Filter concat``, ``ReLU``)."""
        record = self.graph.at(node)
        label = "Input" if record.op == INPUT else REGISTRY[record.op].label(record.params)
        return Group("@in." + node, label, "io", ())

    def resolve(self, node: str) -> str:
        while node in self.alias:
            node = self.alias[node]
        return node

    def fold_repeats(self) -> None:
        """Fold each run of identical consecutive instances of one block into its first instance.

        An instance folds into the one before it when both instantiate the same block with the same
        ops, parameters and shapes, the earlier one feeds only the later one, and the later one reads
        only the earlier one (so an aux head tapping an instance, or other parameters, end a run).
        Its nodes become aliases of the first instance's; the first instance is drawn once, ``×N``.
        """
        members: dict[str, list[str]] = {}
        info: dict[str, tuple[str | None, tuple[str, ...]]] = {}  # path -> (block, enclosing paths)
        for node in ordered(self.graph):
            if not self.in_scope(node):
                continue
            f = self._frames[node]
            for i in range(self.base, len(f)):
                members.setdefault(f[i].path, []).append(node)
                info.setdefault(f[i].path, (f[i].name, tuple(fr.path for fr in f[:i])))
        siblings: dict[tuple[str, ...], list[str]] = {}
        for path, (name, parents) in info.items():
            if name is not None:
                siblings.setdefault(parents, []).append(path)
        outputs = set(self.graph.net.outputs.values())
        for paths in siblings.values():
            for prev, cur in zip(paths, paths[1:], strict=False):
                a, b = members[prev], members[cur]
                if info[prev][0] != info[cur][0] or self._signature(a) != self._signature(b):
                    continue
                sa, sb = set(a), set(b)
                ins = {s for n in b for s in self.graph.pred[n] if s not in sb}
                outs = {t for n in a for t in self.graph.succ[n] if t not in sa}
                if not ins <= sa or not outs <= sb or sa & outputs:
                    continue
                self.alias.update(zip(b, a, strict=True))
                first = self.first.get(prev, prev)
                self.first[cur] = first
                self.repeats.setdefault(first, [first]).append(cur)

    def _signature(self, nodes: list[str]) -> tuple[Any, ...]:
        g = self.graph
        return tuple(
            (g.at(n).op, g.at(n).params, self.shape(n).formula(), tuple(self.shape(s).formula() for s in inputs_of(g, n)))
            for n in nodes
        )

    def build(self) -> None:
        sinks: list[tuple[str, str, Shape]] = []  # (tail node, sink label, shape)
        outputs = {v: k for k, v in self.graph.net.outputs.items()}
        for node in ordered(self.graph):
            if not self.in_scope(node):
                continue
            if node not in self.alias:  # a folded repeat draws nothing of its own; its edges out start at the first
                tails = [
                    (
                        self._add(
                            self.group_of(self.resolve(s)) if self.in_scope(s) else self.external(s),
                            self.resolve(s) if self.in_scope(s) else s,
                        ),
                        s,
                    )
                    for s in inputs_of(self.graph, node)
                ]
                g = self._add(self.group_of(node), node)
                for tail, src in tails:
                    if tail.key != g.key:
                        # a skip connection: straight from outside the merge's block (or the drawn block) into it
                        skip = g.kind == "merge" and (tail.key.startswith("@in") or not set(g.frames) <= set(tail.frames))
                        self.edges.setdefault((tail.key, g.key), _Edge(tail.key, g.key, self.shape(src), skip))
            leaves = [s for s in self.graph.succ[node] if not self.in_scope(s)]
            if leaves or node in outputs:
                sinks.append((self.resolve(node), outputs.get(node, "output"), self.shape(node)))
        for node, label, shape in sinks:
            sink = self._add(Group("@out." + label, label, "io", ()), None)
            self.edges.setdefault((self.of[node], sink.key), _Edge(self.of[node], sink.key, shape, False))

    def _add(self, group: Group, node: str | None) -> Group:
        g = self.groups.setdefault(group.key, group)
        if node is not None and node not in self.of:
            self.of[node] = g.key
            g.members.append(node)
        return g

    def shape(self, node: str) -> Shape:
        shape = self.graph.at(node).shape
        assert shape is not None, "render draws a graph with shapes"
        return shape


def _instance_label(frame: Frame) -> str:
    """A closed instance's box: its block's label, and the instance's own name where the spec gives it one
    (GoogLeNet's ``inception3a``), not where it is a position in a list (``features.6``)."""
    seg = frame.path.rsplit(".", 1)[-1]
    if frame.name is not None and seg.lower().startswith(frame.name.lower()) and len(seg) > len(frame.name):
        seg = seg[len(frame.name) :].lstrip("_")  # inception3a, an instance of inception → 3a
    if frame.name is None or seg.isdigit() or seg == frame.name or seg.lower() in frame.label.lower():
        return frame.label
    return f"{frame.label} ({seg})"


def _activated(composite: tuple[str, Any]) -> bool:
    """Whether a composite op ends in an activation (a conv with ``act=none`` is a linear projection)."""
    name, params = composite
    chain = REGISTRY[name].expand(params) or []
    return any(REGISTRY[op].kind == "act" for _, op, _ in chain)


def layout(
    graph: OpGraph,
    *,
    block: str | None = None,
    expand: bool = False,
    depth: int | None = None,
    symbolic: bool = False,
    open: Iterable[str] | None = None,
    primitives: bool = False,
    fold: bool = True,
    ids: Mapping[str, str] | None = None,
) -> tuple[graphviz.Digraph, _View]:
    """Draw a shaped OpGraph and return the drawing with the view it drew (its boxes and edges).

    ``open``, when given, names the block instances drawn open (instead of ``depth``); ``ids`` maps
    box keys (and ``cluster:`` + instance path) to SVG element ids, for the interactive page.
    """
    view = _View(graph, block=block, expand=expand, depth=depth, symbolic=symbolic, open=open, primitives=primitives, fold=fold)
    view.build()
    h, w = graph.net.input.size
    name = graph.net.name
    if block is not None:
        labels = graph.net.block_labels
        title = f"{dot_text(labels.get(block, block))}: block {block} of {name}, drawn at {view.instance}"
    elif open is not None:
        title = f"{name}: " + ("network" if not view.open else f"network, {len(view.open)} block(s) open")
    else:
        title = f"{name}: " + (
            "network"
            if not expand
            else "every op"
            if depth is None
            else f"every op, blocks opened {depth} level{'s' if depth != 1 else ''} deep"
        )
    title += ", shapes as C×H×W formulas" if symbolic else f", shapes C×H×W at input {h}×{w}"
    dot = graphviz.Digraph(
        name=name,
        graph_attr={
            "label": graphviz.escape(title),
            "labelloc": "t",
            "fontname": FONT,
            "fontsize": "14",
            "rankdir": "TB",
            "nodesep": "0.25",
            "ranksep": "0.35",
            "newrank": "true",
            "ordering": "out",
        },
        node_attr={
            "shape": "box",
            "style": "filled",
            "fontname": FONT,
            "fontsize": "11",
            "margin": "0.12,0.05",
            "height": "0.3",
        },
        edge_attr={"fontname": FONT, "fontsize": "9", "fontcolor": "#444444", "color": "#555555", "arrowsize": "0.6"},
    )
    _emit_groups(dot, view, ids if ids is not None else {})
    labelled: set[str] = set()
    grids: set[str] = set()
    # shortcuts first: with ordering=out they leave their tail on the left, as in the papers' figures
    edges = sorted(view.edges.values(), key=lambda e: not e.skip)
    for e in edges:
        # a tensor that fans out is labelled once, on its first edge
        text = "" if e.tail in labelled else _symbolic_label(e.shape, grids) if symbolic else e.shape.text(h, w)
        labelled.add(e.tail)
        attrs = {"label": graphviz.escape(" " + text) if text else "", "class": "shape" if text else "flow"}
        if e.skip:
            attrs.update({"penwidth": "2.2", "color": SHORTCUT, "class": attrs["class"] + " shortcut"})
        if ids is not None:
            attrs["id"] = ids["edge:" + e.tail + "\0" + e.head]
        dot.edge(_quote_id(e.tail), _quote_id(e.head), **attrs)
    _legend(dot, sorted({g.kind for g in view.groups.values()}, key=list(KIND_STYLE).index), any(e.skip for e in edges))
    return dot, view


def render(
    graph: OpGraph,
    *,
    block: str | None = None,
    expand: bool = False,
    depth: int | None = None,
    symbolic: bool = False,
    primitives: bool = False,
    fold: bool = True,
) -> graphviz.Digraph:
    """Draw a shaped OpGraph. Raises KeyError when ``block`` has no instance in the network."""
    return layout(graph, block=block, expand=expand, depth=depth, symbolic=symbolic, primitives=primitives, fold=fold)[0]


def _symbolic_label(shape: Shape, grids: set[str]) -> str:
    """``C×f(H)×f(W)`` the first time a grid size appears in the drawing, then ``C×…`` (same H×W as above)."""
    if shape.height is None or shape.width is None:
        return shape.formula()
    grid = f"{shape.height.formula()}×{shape.width.formula()}"
    if grid in grids:
        return f"{shape.channels}×…"
    grids.add(grid)
    return shape.formula()


def _quote_id(key: str) -> str:
    """A box key as a DOT node name: python-graphviz reads ``a:b`` in an edge as node ``a``, port ``b``."""
    return key.replace("%", "%25").replace(":", "%3A")


def _node_attrs(g: Group) -> dict[str, str]:
    label = g.label + (f" ×{g.count}" if g.count > 1 else "")
    attrs = {"label": graphviz.escape(label), "fillcolor": KIND_STYLE[g.kind][0], "class": f"box kind-{g.kind}"}
    if g.kind == "block":
        attrs.update({"style": "filled,bold", "fontsize": "13", "margin": "0.25,0.08"})
    elif g.kind == "aux":
        attrs.update({"style": "filled,dashed"})
    elif g.kind == "merge":
        attrs.update({"style": "filled,rounded"})
    elif g.kind == "conv_linear":
        attrs.update({"color": "#3d85c6", "penwidth": "1.8", "style": "filled,dashed"})
    elif g.kind == "io":
        attrs.update({"style": "rounded", "class": "io"})
    return attrs


def _emit_groups(dot: graphviz.Digraph, view: _View, ids: Mapping[str, str]) -> None:
    """Nodes in order, each inside the clusters of its open frames (nested as the blocks are)."""
    tree: dict[Any, Any] = {"groups": [], "children": {}}
    for g in view.groups.values():
        level = tree
        for f in g.frames:
            level = level["children"].setdefault(f, {"groups": [], "children": {}})
        level["groups"].append(g)

    def emit(target: graphviz.Digraph, level: dict[Any, Any]) -> None:
        for g in level["groups"]:
            attrs = _node_attrs(g)
            if g.key in ids:
                attrs["id"] = ids[g.key]
            target.node(_quote_id(g.key), **attrs)
        for f, child in level["children"].items():
            with target.subgraph(name=_quote_id("cluster_" + f.path)) as c:
                paths = view.repeats.get(f.path, [f.path])
                count = f" ×{len(paths)}" if len(paths) > 1 else ""
                where = f.path if len(paths) == 1 else f"{paths[0]} … {paths[-1]}"
                c.attr(
                    label=graphviz.escape(f"{f.label}{count} ({where})"),
                    style="rounded,dashed",
                    color="#7f7f7f",
                    fontname=FONT,
                    fontsize="11",
                    labeljust="l",
                )
                if "cluster:" + f.path in ids:
                    c.attr(id=ids["cluster:" + f.path], **{"class": "cluster-block"})
                emit(c, child)

    emit(dot, tree)


def _legend(dot: graphviz.Digraph, kinds: list[str], shortcut: bool) -> None:
    rows = "".join(
        f'<tr><td bgcolor="{KIND_STYLE[k][0]}" border="1" width="14"> </td><td align="left">{KIND_STYLE[k][1]}</td></tr>'
        for k in kinds
    )
    if shortcut:
        rows += f'<tr><td><font color="{SHORTCUT}"><b>━━</b></font></td><td align="left">shortcut</td></tr>'
    dot.node(
        "@legend",
        label=f'<<table border="0" cellspacing="2" cellpadding="2">{rows}</table>>',
        shape="plaintext",
        style="",
        fontsize="9",
        **{"class": "legend"},
    )


def render_spec(
    spec: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    block: str | None = None,
    expand: bool = False,
    depth: int | None = None,
    symbolic: bool = False,
    primitives: bool = False,
    fold: bool = True,
    max_params: int = MAX_PARAMS,
) -> graphviz.Digraph:
    """Check a spec (SpecError on any mistake, as ``check`` does) and draw it."""
    from archspec.api import shaped_graph

    resolved, graph, _ = shaped_graph(spec, overrides, max_params)
    if block is not None and not block_instances(graph, block):
        entry = resolved.blocks.get(block)
        if entry is not None:
            raise SpecError(
                f"block {block!r} is defined here but the network never uses it: nothing to draw",
                entry.source.loc(entry.yaml_path, key=True),
                code="unknown-op",
                hint="use it in network:, or draw another block",
            )
        used = sorted({name for _, r in graph.records() for name, _ in r.blocks})
        hint = did_you_mean(block, used) or (
            f"blocks in this network: {', '.join(used)}" if used else "this network uses no blocks; draw it without --block"
        )
        where = ("blocks",) if resolved.spec.blocks else ("network",)
        raise SpecError(
            f"--block {block}: no block of that name in this spec",
            resolved.source.loc(where, key=True),
            code="unknown-op",
            hint=hint,
        )
    return render(graph, block=block, expand=expand, depth=depth, symbolic=symbolic, primitives=primitives, fold=fold)
