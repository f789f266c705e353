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

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import graphviz

from archspec.errors import SpecError, did_you_mean, printable
from archspec.ir import INPUT, Node, OpGraph
from archspec.ops import REGISTRY
from archspec.symbolic import Shape

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from archspec.language.resolve import Resolved

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
    "stage": ("#e6dcf2", "stage: a named run of blocks"),
    "aux": ("#ededed", "auxiliary head (training only)"),
    "io": ("#ffffff", "input / output"),
}
SHORTCUT = "#1f4e79"  # colour of a skip connection drawn straight into a merge
FONT = "Helvetica"


@dataclass(frozen=True)
class Frame:
    """A container a node sits in, outermost first: a block instance, an aux head, or a stage (a named
    chain or group of block instances the spec writes, such as ResNet's ``layer1``)."""

    path: str
    name: str | None  # block name; None for an aux head or a stage
    label: str
    kind: str = "block"  # "block", "aux" or "stage"


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
    note: str = ""  # what sets this instance apart from the other instances of its block beside it

    @property
    def text(self) -> str:
        """The box's text: its label, ``×N`` for a folded run, and what sets it apart (``with se``)."""
        return self.label + (f" ×{self.count}" if self.count > 1 else "") + (f" ({self.note})" if self.note else "")


@dataclass
class Edge:
    """One arrow of the diagram: the tensor from box ``tail`` into box ``head``."""

    tail: str
    head: str
    shape: Shape
    skip: bool  # a skip connection straight into a merge


@dataclass
class Stage:
    """A named chain or group of block instances, written as one entry of its container (``layer1``)."""

    path: str
    instances: list[str]
    summary: str  # ``Bottleneck ×6 (1 with downsample, 3 with se)``

    @property
    def label(self) -> str:
        return f"{self.path.rsplit('.', 1)[-1]}: {self.summary}"


@dataclass
class Fold:
    """The folded runs of one drawn container (every view of the network shares one)."""

    alias: dict[str, str] = field(default_factory=dict)  # node of a folded-away repeat -> the same node of the first instance
    repeats: dict[str, list[str]] = field(default_factory=dict)  # first instance path -> every instance path it stands for
    first: dict[str, str] = field(default_factory=dict)  # instance path -> the first instance of its run


@dataclass
class Scopes:
    """What a graph's containers are, computed once and shared by every layout of that graph: each
    node's frames, the stages, and each block instance's note (the parts only some instances of its
    block have beside it, from ``if:`` choices: ``with se``)."""

    order: list[str]
    frames: dict[str, tuple[Frame, ...]]
    stages: dict[str, Stage]
    notes: dict[str, str]
    instances: dict[str, str]  # block instance path -> block name, in network order
    inputs: dict[str, list[str]]  # node -> its inputs, in argument order
    readers: dict[str, list[str]]  # node -> the nodes that read it
    folds: dict[str | None, Fold] = field(default_factory=dict)  # the folded runs, per drawn container

    @classmethod
    def of(cls, graph: OpGraph) -> Scopes:
        order = graph.ordered()
        instances: dict[str, str] = {}
        parts: dict[str, set[str]] = {}  # instance path -> the named parts it holds (conv1, downsample, se)
        for node in order:
            record = graph.at(node)
            for name, path in record.blocks:
                instances.setdefault(path, name)
                seg = record.path[len(path) + 1 :].split(".", 1)[0] if record.path.startswith(path + ".") else ""
                parts.setdefault(path, set())
                if seg and not seg.isdigit():
                    parts[path].add(seg)
        notes = _notes(instances, parts)
        stages = find_stages(graph, order)
        for stage in stages.values():
            counts = Counter(notes[i] for i in stage.instances if i in notes)
            if counts:
                stage.summary += " (" + ", ".join(f"{n} {note}" for note, n in counts.items()) + ")"
        inputs = {n: graph.inputs_of(n) for n in order}
        readers = {n: list(graph.succ[n]) for n in order}
        return cls(order, _frames(graph, order, stages), stages, notes, instances, inputs, readers)


def _frames(graph: OpGraph, order: list[str], stages: dict[str, Stage]) -> dict[str, tuple[Frame, ...]]:
    """Each node's frames, outermost first (nodes of one unit in the same instances share one tuple)."""
    labels = graph.net.block_labels
    aux = {u.path: u for u in graph.net.units if u.kind == "aux"}
    frames: dict[str, tuple[Frame, ...]] = {}
    memo: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Frame, ...]] = {}
    for node in order:
        record = graph.at(node)
        key = (record.unit, record.blocks)
        if key not in memo:
            out: list[Frame] = []
            if record.unit in aux:
                out.append(Frame(record.unit, None, dot_text(aux[record.unit].label), "aux"))
            for name, path in record.blocks:
                parent = path.rpartition(".")[0]
                if parent in stages and not any(f.path == parent for f in out):
                    out.append(Frame(parent, None, dot_text(stages[parent].label), "stage"))
                out.append(Frame(path, name, dot_text(labels.get(name, name))))
            memo[key] = tuple(out)
        frames[node] = memo[key]
    return frames


def find_stages(graph: OpGraph, order: list[str]) -> dict[str, Stage]:
    """The stages of a network: a named container (a path that is no block instance) holding nothing
    but two or more block instances, where the same level holds two or more such containers (ResNet's
    ``layer1``…``layer4``, DenseNet's ``denseblock1``…, Inception-ResNet-v2's ``repeat``…). The spec's
    own grouping decides; a network written as one list of blocks has no stages."""
    found: dict[str, dict[str, None]] = {}
    scope: dict[str, str] = {}  # candidate -> the instance it sits in ("" at the top)
    for node in order:
        record = graph.at(node)
        outer = ""
        for _, path in record.blocks:
            parent = path.rpartition(".")[0]
            if parent and parent != outer and (not outer or parent.startswith(outer + ".")):
                found.setdefault(parent, {})[path] = None
                scope[parent] = outer
            outer = path
    bad: set[str] = set()
    for node in order:
        record = graph.at(node)
        parents = {p.rpartition(".")[0] for _, p in record.blocks}
        segs = record.path.split(".")
        for i in range(1, len(segs)):
            prefix = ".".join(segs[:i])
            if prefix in found and prefix not in parents:
                bad.add(prefix)  # an op of its own, or an instance deeper inside something else
    kept = {p: list(v) for p, v in found.items() if p not in bad and len(v) >= 2 and p not in _instance_paths(graph)}
    per_scope = Counter(scope[p] for p in kept)
    labels = graph.net.block_labels
    blocks = {path: name for _, r in graph.records() for name, path in r.blocks}
    return {
        p: Stage(p, v, _summary([labels.get(blocks[i], blocks[i]) for i in v]))
        for p, v in kept.items()
        if per_scope[scope[p]] >= 2
    }


def _instance_paths(graph: OpGraph) -> set[str]:
    return {path for _, r in graph.records() for _, path in r.blocks}


def _summary(labels: list[str]) -> str:
    """``Bottleneck ×6``, or ``Inception-A ×2, Reduction-A`` for instances of several blocks."""
    counts = Counter(labels)
    return ", ".join(f"{label} ×{n}" if n > 1 else label for label, n in counts.items())


def _notes(instances: dict[str, str], parts: dict[str, set[str]]) -> dict[str, str]:
    """Each instance's named parts that not every instance of its block beside it has (``with se``)."""
    siblings: dict[tuple[str, str], list[str]] = {}
    for path, name in instances.items():
        siblings.setdefault((path.rpartition(".")[0], name), []).append(path)
    notes: dict[str, str] = {}
    for paths in siblings.values():
        common = set.intersection(*(parts[p] for p in paths))
        for p in paths:
            extra = sorted(parts[p] - common, key=natural_key)
            if extra:
                notes[p] = "with " + ", ".join(extra)
    return notes


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders numbers by value: ``features.2`` before ``features.10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def frames_of(graph: OpGraph, node: str) -> tuple[Frame, ...]:
    """The stages, block instances and aux head a node sits in, outermost first."""
    return Scopes.of(graph).frames[node]


def dot_text(text: str) -> str:
    """A label from the spec as DOT text: control characters escaped (a NUL ends a DOT string). Every
    label then goes through :func:`label_text`."""
    return printable(text)


def label_text(text: str) -> str:
    """Text for a Graphviz label, drawn as written: ``graphviz.escape`` doubles backslashes (a trailing
    one would escape the closing quote) and ``&`` is written ``&amp;``, since Graphviz decodes entities
    in labels (``&lt;script&gt;`` would otherwise be drawn as ``<script>``)."""
    return graphviz.escape(text.replace("&", "&amp;"))


def block_instances(graph: OpGraph, name: str) -> list[str]:
    """Instance paths of block ``name``, in network order."""
    seen: dict[str, None] = {}
    for node in graph.ordered():
        for block, path in graph.at(node).blocks:
            if block == name:
                seen.setdefault(path, None)
    return list(seen)


def op_label(record: Node) -> tuple[str, str]:
    """(label, kind) of an op as written: the composite it came from, else the primitive."""
    name, params = record.composite or (record.op, record.params)
    op = REGISTRY[name]
    return op.label(params), op.kind


class Layout:
    """One view of a graph: its boxes (:class:`Group`), arrows (:class:`Edge`) and folded runs.

    ``block`` draws inside one container: a block name (its first instance), or the path of a block
    instance or stage (``layer3.0``, ``layer3``). ``open`` names the containers drawn open (else
    ``depth``: block levels opened below the drawn one; stages open with the level they hold).
    Built once per view; ``draw`` turns it into Graphviz, and the interactive page reads it.
    """

    def __init__(
        self,
        graph: OpGraph,
        *,
        block: str | None = None,
        expand: bool = False,
        depth: int | None = None,
        symbolic: bool = False,
        open: Iterable[str] | None = None,
        primitives: bool = False,
        fold: bool = True,
        scopes: Scopes | None = None,
    ) -> None:
        self.graph = graph
        self.scopes = scopes if scopes is not None else Scopes.of(graph)
        self.frames = self.scopes.frames
        self.symbolic = symbolic
        self.expand = expand
        self.composites = not primitives
        self.depth = depth if depth is not None else (1 << 30 if expand else 0)
        self.open = set(open) if open is not None else None
        self.base = 0
        self.block = block
        self.instance: str | None = None
        if block is not None:
            self.instance = instance_of(graph, block, self.scopes)
            if self.instance is None:
                raise KeyError(block)
            self.base = next(i + 1 for f in self.frames.values() for i, fr in enumerate(f) if fr.path == self.instance)
        self.groups: dict[str, Group] = {}
        self.of: dict[str, str] = {}  # primitive node -> group key
        self.edges: dict[tuple[str, str], Edge] = {}
        self._scope = [n for n in self.scopes.order if self.in_scope(n)]
        self._groups_of: dict[str, Group] = {}
        self._cuts: dict[tuple[Frame, ...], int] = {}  # frames -> index of the first closed one
        self._closed: dict[str, Group] = {}  # closed container -> its box
        folded = Fold()
        if fold:
            if self.instance not in self.scopes.folds:
                self.scopes.folds[self.instance] = self.fold_repeats()
            folded = self.scopes.folds[self.instance]
        self.alias = folded.alias
        self.repeats = folded.repeats
        self.first = folded.first
        self.build()

    def in_scope(self, node: str) -> bool:
        if self.instance is None:
            return True
        f = self.frames[node]
        return len(f) >= self.base and f[self.base - 1].path == self.instance

    def is_open(self, frames: tuple[Frame, ...], i: int) -> bool:
        if self.open is not None:
            return frames[i].path in self.open or (frames[i].kind == "aux" and i < self.base + self.depth)
        level = sum(1 for f in frames[self.base : i] if f.kind != "stage")  # stages are no level of their own
        return level < self.depth

    def group_of(self, node: str) -> Group:
        """The box a node is drawn in (made once per node and view)."""
        group = self._groups_of.get(node)
        if group is None:
            group = self._groups_of[node] = self._group_of(node)
        return group

    def _group_of(self, node: str) -> Group:
        record = self.graph.at(node)
        f = self.frames[node]
        if record.op == INPUT:
            return Group("@input", "Input", "io", ())
        cut = self._cuts.get(f)
        if cut is None:  # nodes in the same containers share one cut
            cut = self.base
            while cut < len(f) and self.is_open(f, cut):
                cut += 1
            self._cuts[f] = cut
        if cut < len(f):
            closed = f[cut]
            made = self._closed.get(closed.path)
            if made is not None:
                return made
            made = self._closed[closed.path] = Group(
                closed.path,
                closed.label if closed.kind == "stage" else _instance_label(closed),
                closed.kind,
                f[self.base : cut],
                block=closed.name,
                count=len(self.repeats.get(closed.path, [closed.path])),
                note=self.scopes.notes.get(closed.path, "") if closed.kind == "block" else "",
            )
            return made
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

    def members(self, path: str) -> list[str]:
        """The drawn nodes inside container ``path`` (a folded run: its first instance's), in order."""
        return [n for n in self._scope if n not in self.alias and any(f.path == path for f in self.frames[n])]

    def fold_repeats(self) -> Fold:
        """Fold each run of identical consecutive instances of one block into its first instance.

        An instance folds into the one before it when both are the same design: the same block with
        the same ops, parameters and shapes (so other parameters or other ``if:`` choices end a run),
        the earlier one feeds only the later one, and the later one reads only the earlier one (so an
        aux head tapping an instance ends a run too). Its nodes become aliases of the first
        instance's; the first instance is drawn once, ``×N``.
        """
        members: dict[str, list[str]] = {}
        info: dict[str, tuple[str | None, tuple[str, ...]]] = {}  # path -> (block, enclosing paths)
        for node in self._scope:
            f = self.frames[node]
            for i in range(self.base, len(f)):
                members.setdefault(f[i].path, []).append(node)
                info.setdefault(f[i].path, (f[i].name, tuple(fr.path for fr in f[:i])))
        siblings: dict[tuple[str, ...], list[str]] = {}
        for path, (name, parents) in info.items():
            if name is not None:
                siblings.setdefault(parents, []).append(path)
        outputs = set(self.graph.net.outputs.values())
        fold = Fold()
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
                fold.alias.update(zip(b, a, strict=True))
                first = fold.first.get(prev, prev)
                fold.first[cur] = first
                fold.repeats.setdefault(first, [first]).append(cur)
        return fold

    def _signature(self, nodes: list[str]) -> tuple[Any, ...]:
        g = self.graph
        return tuple(
            (g.at(n).op, g.at(n).params, self.shape(n).formula(), tuple(self.shape(s).formula() for s in g.inputs_of(n)))
            for n in nodes
        )

    def build(self) -> None:
        sinks: list[tuple[str, str, Shape]] = []  # (tail node, sink label, shape)
        net = self.graph.net
        outputs = {v: f"output {k}" if net.named_outputs and k in net.main else k for k, v in reversed(net.outputs.items())}
        inputs, readers = self.scopes.inputs, self.scopes.readers
        scoped = set(self._scope) if self.instance is not None else None
        for node in self._scope:
            if node not in self.alias:  # a folded repeat draws nothing of its own; its edges out start at the first
                tails = []
                for s in inputs[node]:
                    if scoped is None or s in scoped:
                        source = self.resolve(s)
                        tails.append((self._add(self.group_of(source), source), s))
                    else:
                        tails.append((self._add(self.external(s), s), s))
                g = self._add(self.group_of(node), node)
                for tail, src in tails:
                    if tail.key != g.key and (tail.key, g.key) not in self.edges:
                        # a skip connection: straight from outside the merge's block (or the drawn block) into it
                        skip = g.kind == "merge" and (tail.key.startswith("@in") or not set(g.frames) <= set(tail.frames))
                        self.edges[(tail.key, g.key)] = Edge(tail.key, g.key, self.shape(src), skip)
            leaves = scoped is not None and any(s not in scoped for s in readers[node])
            if leaves or node in outputs:
                sinks.append((self.resolve(node), outputs.get(node, "output"), self.shape(node)))
        for node, label, shape in sinks:
            sink = self._add(Group("@out." + label, label, "io", ()), None)
            self.edges.setdefault((self.of[node], sink.key), Edge(self.of[node], sink.key, shape, False))

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


def instance_of(graph: OpGraph, block: str, scopes: Scopes | None = None) -> str | None:
    """The container ``--block`` draws: a block instance or stage of that path, else the first instance
    of the block of that name; None when neither exists."""
    scopes = scopes if scopes is not None else Scopes.of(graph)
    if block in scopes.instances or block in scopes.stages:
        return block
    return next((p for p, name in scopes.instances.items() if name == block), None)


@functools.lru_cache(maxsize=4096)
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
) -> tuple[graphviz.Digraph, Layout]:
    """Draw a shaped OpGraph and return the drawing with the :class:`Layout` it drew."""
    view = Layout(graph, block=block, expand=expand, depth=depth, symbolic=symbolic, open=open, primitives=primitives, fold=fold)
    return draw(view, ids), view


def _title(view: Layout) -> str:
    graph = view.graph
    name = graph.net.name
    block = view.block
    if block is not None:
        labels = graph.net.block_labels
        stage = view.scopes.stages.get(view.instance or "")
        if stage is not None:
            title = f"{dot_text(stage.label)}: stage of {name}"
        else:
            what = view.scopes.instances.get(view.instance or "", block)
            title = f"{dot_text(labels.get(what, what))}: block {what} of {name}, drawn at {view.instance}"
    elif view.open is not None:
        title = f"{name}: " + ("network" if not view.open else f"network, {len(view.open)} block(s) open")
    else:
        title = f"{name}: " + (
            "network"
            if not view.expand
            else "every op"
            if view.depth >= 1 << 30
            else f"every op, blocks opened {view.depth} level{'s' if view.depth != 1 else ''} deep"
        )
    h, w = graph.net.input.size
    return title + (", shapes as C×H×W formulas" if view.symbolic else f", shapes C×H×W at input {h}×{w}")


def draw(view: Layout, ids: Mapping[str, str] | None = None) -> graphviz.Digraph:
    """A layout as a Graphviz drawing. ``ids`` maps box keys (``cluster:`` + a container's path for
    its frame, ``edge:`` + tail + NUL + head for an arrow) to SVG element ids, for the interactive page."""
    h, w = view.graph.net.input.size
    dot = graphviz.Digraph(
        name=view.graph.net.name,
        graph_attr={
            "label": label_text(_title(view)),
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
        text = "" if e.tail in labelled else _symbolic_label(e.shape, grids) if view.symbolic else e.shape.text(h, w)
        labelled.add(e.tail)
        attrs = {"label": label_text(" " + text) if text else "", "class": "shape" if text else "flow"}
        if e.skip:
            attrs.update({"penwidth": "2.2", "color": SHORTCUT, "class": attrs["class"] + " shortcut"})
        if ids is not None:
            attrs["id"] = ids["edge:" + e.tail + "\0" + e.head]
        dot.edge(_quote_id(e.tail), _quote_id(e.head), **attrs)
    _legend(dot, sorted({g.kind for g in view.groups.values()}, key=list(KIND_STYLE).index), any(e.skip for e in edges))
    return dot


def render(graph: OpGraph, **options: Unpack[RenderOptions]) -> graphviz.Digraph:
    """Draw a shaped OpGraph. Raises KeyError when ``block`` has no instance in the network."""
    return layout(graph, **options)[0]


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
    attrs = {"label": label_text(g.text), "fillcolor": KIND_STYLE[g.kind][0], "class": f"box kind-{g.kind}"}
    if g.kind in ("block", "stage"):
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


def _emit_groups(dot: graphviz.Digraph, view: Layout, ids: Mapping[str, str]) -> None:
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
                c.attr(
                    label=label_text(cluster_label(view, f)),
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


def cluster_label(view: Layout, f: Frame) -> str:
    """The title of an open container's frame: ``Inception-A ×4 (features.6 … features.9)``."""
    if f.kind == "stage":
        return f.label
    paths = view.repeats.get(f.path, [f.path])
    count = f" ×{len(paths)}" if len(paths) > 1 else ""
    note = view.scopes.notes.get(f.path, "")
    where = f.path if len(paths) == 1 else f"{paths[0]} … {paths[-1]}"
    return f"{f.label}{count}{', ' + note if note else ''} ({where})"


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


class RenderOptions(TypedDict, total=False):
    """What a drawing shows (``archspec render``'s options; see :class:`Layout`)."""

    block: str | None  # one block like the paper's figure: a block name, or an instance's or stage's path
    expand: bool  # every op, block instances as clusters
    depth: int | None  # with expand: open blocks nested up to this many levels
    symbolic: bool  # edges labelled with shape formulas in H and W
    primitives: bool  # a composite op as its primitives
    fold: bool  # one instance of a repeated block, marked ×N (default True)


def render_spec(graph: OpGraph, resolved: Resolved, **options: Unpack[RenderOptions]) -> graphviz.Digraph:
    """Draw a shaped graph; a ``block`` the network has no instance of is a located SpecError (at the
    block's definition when the spec defines it but never uses it, which is why ``resolved`` is given)."""
    block = options.get("block")
    if block is not None and instance_of(graph, block) is None:
        entry = resolved.blocks.get(block)
        if entry is not None:
            raise SpecError(
                f"block {block!r} is defined here but the network never uses it: nothing to draw",
                entry.source.loc(entry.yaml_path, key=True),
                code="unknown-op",
                hint="use it in network:, or draw another block",
            )
        raise SpecError(
            f"--block {block}: no block or block instance of that name in this spec",
            resolved.source.loc(("blocks",) if resolved.spec.blocks else ("network",), key=True),
            code="unknown-op",
            hint=_block_hint(graph, block),
        )
    return render(graph, **options)


def _block_hint(graph: OpGraph, block: str) -> str:
    """``did you mean`` over block names and instance paths, else both kinds listed (a few of each)."""
    scopes = Scopes.of(graph)
    names = sorted(set(scopes.instances.values()))
    paths = sorted([*scopes.instances, *scopes.stages], key=natural_key)
    guess = did_you_mean(block, names + paths)
    if guess:
        return guess
    if not names:
        return "this network uses no blocks; draw it without --block"
    shown = ", ".join(paths[:6]) + (", …" if len(paths) > 6 else "")
    return f"blocks in this network: {', '.join(names)}; or an instance by its path: {shown}"
