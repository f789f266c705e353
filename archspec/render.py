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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz
import networkx as nx

from archspec.errors import SpecError, did_you_mean, printable
from archspec.ops import REGISTRY
from archspec.shapes import MAX_PARAMS, infer_shapes, inputs_of, ordered
from archspec.symbolic import Shape

# Fill colours by Op.kind, plus "block" (a closed block instance) and "io" (inputs and outputs).
KIND_STYLE: dict[str, tuple[str, str]] = {  # kind -> (fill colour, legend text)
    "conv": ("#cfe2f3", "convolution"),
    "pool": ("#fce5cd", "pooling"),
    "norm": ("#d9ead3", "normalisation"),
    "act": ("#fff2cc", "activation"),
    "linear": ("#ead1dc", "fully connected"),
    "merge": ("#d9d9d9", "merge (concat, +)"),
    "misc": ("#f3f3f3", "other"),
    "block": ("#c9daf8", "block (draw with --block)"),
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


def frames_of(graph: nx.DiGraph, node: str) -> tuple[Frame, ...]:
    """The block instances (and aux head) a node sits in, outermost first."""
    data = graph.nodes[node]
    labels: dict[str, str] = graph.graph.get("block_labels", {})
    aux = {u.path: u for u in graph.graph["units"] if u.kind == "aux"}
    out: tuple[Frame, ...] = ()
    if data["unit"] in aux:
        out = (Frame(data["unit"], None, aux[data["unit"]].label),)
    return out + tuple(Frame(path, name, dot_text(labels.get(name, name))) for name, path in data["blocks"])


def dot_text(text: str) -> str:
    """A label from the spec as DOT text: control characters escaped (a NUL ends a DOT string) and
    backslashes doubled (a trailing one would escape the closing quote); the graphviz package quotes."""
    return printable(text).replace("\\", "\\\\")


def block_instances(graph: nx.DiGraph, name: str) -> list[str]:
    """Instance paths of block ``name``, in network order."""
    seen: dict[str, None] = {}
    for node in ordered(graph):
        for block, path in graph.nodes[node]["blocks"]:
            if block == name:
                seen.setdefault(path, None)
    return list(seen)


def op_label(data: dict[str, Any]) -> tuple[str, str]:
    """(label, kind) of an op as written: the composite it came from, else the primitive."""
    name, params = data.get("composite") or (data["op"], data["params"])
    op = REGISTRY[name]
    return op.label(params), op.kind


class _View:
    def __init__(self, graph: nx.DiGraph, *, block: str | None, expand: bool, depth: int | None,
                 symbolic: bool) -> None:
        self.graph = graph
        self.symbolic = symbolic
        self.composites = not expand
        self.depth = depth if depth is not None else (1 << 30 if expand else 0)
        self.base = 0
        self.instance: str | None = None
        self._frames = {n: frames_of(graph, n) for n in graph.nodes}
        if block is not None:
            instances = block_instances(graph, block)
            if not instances:
                raise KeyError(block)
            self.instance = instances[0]
            self.base = next(i + 1 for f in self._frames.values() for i, fr in enumerate(f)
                             if fr.path == self.instance)
        self.groups: dict[str, Group] = {}
        self.of: dict[str, str] = {}  # primitive node -> group key
        self.edges: dict[tuple[str, str], _Edge] = {}

    def in_scope(self, node: str) -> bool:
        if self.instance is None:
            return True
        f = self._frames[node]
        return len(f) >= self.base and f[self.base - 1].path == self.instance

    def group_of(self, node: str) -> Group:
        data = self.graph.nodes[node]
        f = self._frames[node]
        if data["op"] == "input":
            return Group("@input", "Input", "io", ())
        cut = self.base + self.depth
        if len(f) > cut:
            closed = f[cut]
            kind = "block" if closed.name is not None else "aux"
            return Group(closed.path, closed.label, kind, f[self.base:cut], block=closed.name)
        open_frames = f[self.base:]
        if self.composites and data.get("composite"):  # one box for the primitives of one composite op
            label, kind = op_label(data)
            return Group("op." + data["origin"], label, kind, open_frames)
        op = REGISTRY[data["op"]]
        return Group(node, op.label(data["params"]), op.kind, open_frames)

    def external(self, node: str) -> Group:
        """A box for a producer outside the drawn block, labelled like that primitive (``Filter concat``, ``ReLU``)."""
        data = self.graph.nodes[node]
        label = "Input" if data["op"] == "input" else REGISTRY[data["op"]].label(data["params"])
        return Group("@in." + node, label, "io", ())

    def build(self) -> None:
        sinks: list[tuple[str, str, Shape]] = []  # (tail node, sink label, shape)
        outputs = {v: k for k, v in self.graph.graph["outputs"].items()}
        for node in ordered(self.graph):
            if not self.in_scope(node):
                continue
            tails = [(self._add(self.group_of(s) if self.in_scope(s) else self.external(s), s), s)
                     for s in inputs_of(self.graph, node)]
            g = self._add(self.group_of(node), node)
            for tail, src in tails:
                if tail.key != g.key:
                    # a skip connection: straight from outside the merge's block (or the drawn block) into it
                    skip = g.kind == "merge" and (tail.key.startswith("@in") or not set(g.frames) <= set(tail.frames))
                    self.edges.setdefault((tail.key, g.key), _Edge(tail.key, g.key, self.shape(src), skip))
            leaves = [s for s in self.graph.succ[node] if not self.in_scope(s)]
            if leaves or node in outputs:
                sinks.append((node, outputs.get(node, "output"), self.shape(node)))
        for node, label, shape in sinks:
            sink = self._add(Group("@out." + label, label, "io", ()), None)
            self.edges.setdefault((self.of[node], sink.key), _Edge(self.of[node], sink.key, shape, False))
        if self.composites:
            self.fold()

    def _add(self, group: Group, node: str | None) -> Group:
        g = self.groups.setdefault(group.key, group)
        if node is not None and node not in self.of:
            self.of[node] = g.key
            g.members.append(node)
        return g

    def shape(self, node: str) -> Shape:
        return self.graph.nodes[node]["shape"]

    def signature(self, g: Group) -> tuple[Any, ...]:
        return tuple((self.graph.nodes[n]["op"], self.graph.nodes[n]["params"]) for n in g.members)

    def fold(self) -> None:
        """Fold a chain of identical instances of one block into one box labelled ``×count``."""
        order = list(self.groups)
        into: dict[str, str] = {}
        for prev, cur in zip(order, order[1:], strict=False):
            a, b = self.groups[into.get(prev, prev)], self.groups[cur]
            if a.block is None or a.block != b.block or a.frames != b.frames:
                continue
            outs = {h for (t, h) in self.edges if t == prev}
            ins = {t for (t, h) in self.edges if h == cur}
            if outs != {cur} or ins != {prev} or self.signature(self.groups[prev]) != self.signature(b):
                continue
            into[cur] = a.key
            a.count += 1
        if not into:
            return
        edges: dict[tuple[str, str], _Edge] = {}
        for e in self.edges.values():
            t, h = into.get(e.tail, e.tail), into.get(e.head, e.head)
            if t != h:
                edges.setdefault((t, h), _Edge(t, h, e.shape, e.skip))
        self.edges = edges
        for key in into:
            del self.groups[key]


def render(graph: nx.DiGraph, *, block: str | None = None, expand: bool = False, depth: int | None = None,
           symbolic: bool = False) -> graphviz.Digraph:
    """Draw a shaped OpGraph. Raises KeyError when ``block`` has no instance in the network."""
    view = _View(graph, block=block, expand=expand, depth=depth, symbolic=symbolic)
    view.build()
    h, w = graph.graph["input"].size
    name = graph.graph["name"]
    if block is not None:
        labels = graph.graph.get("block_labels", {})
        title = f"{dot_text(labels.get(block, block))}: block {block} of {name}, drawn at {view.instance}"
    else:
        title = f"{name}: " + ("network" if not expand else "every op" if depth is None else
                               f"every op, blocks opened {depth} level{'s' if depth != 1 else ''} deep")
    title += ", shapes as C×H×W formulas" if symbolic else f", shapes C×H×W at input {h}×{w}"
    dot = graphviz.Digraph(name=name, graph_attr={
        "label": title, "labelloc": "t", "fontname": FONT, "fontsize": "14", "rankdir": "TB",
        "nodesep": "0.25", "ranksep": "0.35", "newrank": "true", "ordering": "out",
    }, node_attr={
        "shape": "box", "style": "filled", "fontname": FONT, "fontsize": "11", "margin": "0.12,0.05",
        "height": "0.3",
    }, edge_attr={"fontname": FONT, "fontsize": "9", "fontcolor": "#444444", "color": "#555555",
                  "arrowsize": "0.6"})
    _emit_groups(dot, view)
    labelled: set[str] = set()
    # shortcuts first: with ordering=out they leave their tail on the left, as in the papers' figures
    edges = sorted(view.edges.values(), key=lambda e: not e.skip)
    for e in edges:
        # a tensor that fans out is labelled once, on its first edge
        text = "" if e.tail in labelled else e.shape.formula() if symbolic else e.shape.text(h, w)
        labelled.add(e.tail)
        attrs = {"label": " " + text if text else "", "class": "shape" if text else "flow"}
        if e.skip:
            attrs.update({"penwidth": "2.2", "color": SHORTCUT, "class": attrs["class"] + " shortcut"})
        dot.edge(e.tail, e.head, **attrs)
    _legend(dot, sorted({g.kind for g in view.groups.values()}, key=list(KIND_STYLE).index),
            any(e.skip for e in edges))
    return dot


def _node_attrs(g: Group) -> dict[str, str]:
    label = g.label + (f" ×{g.count}" if g.count > 1 else "")
    attrs = {"label": label, "fillcolor": KIND_STYLE[g.kind][0], "class": f"box kind-{g.kind}"}
    if g.kind == "block":
        attrs.update({"style": "filled,bold", "fontsize": "13", "margin": "0.25,0.08"})
    elif g.kind == "aux":
        attrs.update({"style": "filled,dashed"})
    elif g.kind == "merge":
        attrs.update({"style": "filled,rounded"})
    elif g.kind == "io":
        attrs.update({"style": "rounded", "class": "io"})
    return attrs


def _emit_groups(dot: graphviz.Digraph, view: _View) -> None:
    """Nodes in order, each inside the clusters of its open frames (nested as the blocks are)."""
    tree: dict[Any, Any] = {"groups": [], "children": {}}
    for g in view.groups.values():
        level = tree
        for f in g.frames:
            level = level["children"].setdefault(f, {"groups": [], "children": {}})
        level["groups"].append(g)

    def emit(target: graphviz.Digraph, level: dict[Any, Any]) -> None:
        for g in level["groups"]:
            target.node(g.key, **_node_attrs(g))
        for f, child in level["children"].items():
            with target.subgraph(name="cluster_" + f.path) as c:
                c.attr(label=f"{f.label} ({f.path})", style="rounded,dashed", color="#7f7f7f", fontname=FONT,
                       fontsize="11", labeljust="l")
                emit(c, child)

    emit(dot, tree)


def _legend(dot: graphviz.Digraph, kinds: list[str], shortcut: bool) -> None:
    rows = "".join(
        f'<tr><td bgcolor="{KIND_STYLE[k][0]}" border="1" width="14"> </td>'
        f'<td align="left">{KIND_STYLE[k][1]}</td></tr>' for k in kinds)
    if shortcut:
        rows += f'<tr><td><font color="{SHORTCUT}"><b>━━</b></font></td><td align="left">shortcut</td></tr>'
    dot.node("@legend", label=f'<<table border="0" cellspacing="2" cellpadding="2">{rows}</table>>',
             shape="plaintext", style="", fontsize="9", **{"class": "legend"})


def render_spec(spec: str | Path, overrides: Mapping[str, Any] | None = None, *, block: str | None = None,
                expand: bool = False, depth: int | None = None, symbolic: bool = False,
                max_params: int = MAX_PARAMS) -> graphviz.Digraph:
    """Check a spec (SpecError on any mistake, as ``check`` does) and draw it."""
    from archspec.graph import expand as expand_spec
    from archspec.spec.resolve import resolve

    resolved = resolve(spec, overrides)
    graph = expand_spec(resolved)
    infer_shapes(graph, max_params=max_params)
    if block is not None and not block_instances(graph, block):
        entry = resolved.blocks.get(block)
        if entry is not None:
            raise SpecError(f"block {block!r} is defined here but the network never uses it: nothing to draw",
                            entry.source.loc(entry.yaml_path, key=True), code="unknown-op",
                            hint="use it in network:, or draw another block")
        used = sorted({name for n in graph.nodes for name, _ in graph.nodes[n]["blocks"]})
        hint = did_you_mean(block, used) or (f"blocks in this network: {', '.join(used)}" if used
                                             else "this network uses no blocks; draw it without --block")
        where = ("blocks",) if resolved.spec.blocks else ("network",)
        raise SpecError(f"--block {block}: no block of that name in this spec", resolved.source.loc(where, key=True),
                        code="unknown-op", hint=hint)
    return render(graph, block=block, expand=expand, depth=depth, symbolic=symbolic)
