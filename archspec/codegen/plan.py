"""What one generated class is made of, decided before a line is written.

From the compiler's own products for the graph — the module tree (``build_modules``, on the
``meta`` device) and the torch.fx graph (``build_fx_graph``) — a :class:`Plan` finds:

- the instances of a spec block that come out as identical code (Inception-A × 4), each written as
  one call of a shared class (its text written by another class writer over the instance's graph,
  re-rooted at its path: :func:`instance_graph`);
- the composite ops of the spec (``conv`` = Conv2d → BatchNorm → ReLU), each a :class:`Helper`
  class taking its layers, so the forward calls it once;
- the stateless ops at a numbered slot (the pool opening ``branch3``), written as the layer the
  registry names for them so the container is an ``nn.Sequential``.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch.fx as fx
import torch.nn as nn

from archspec import runtime
from archspec.codegen.calls import function_call, registry_layer
from archspec.codegen.text import IDENT, ClassNames, camel, text_literal
from archspec.compile import build_fx_graph, build_modules
from archspec.ir import INPUT, Node, OpGraph
from archspec.ops import REGISTRY
from archspec.shapes import accepted

PLACEHOLDER = "ArchspecBlockClass"  # a block class's name until it is known


@dataclass
class Helper:
    """A chain of ops written as one op in the spec (``conv``): one class, its layers passed in."""

    name: str
    spec_op: str  # the op as the spec names it
    ops: list[str]  # the primitive ops it expands to
    children: list[str]  # its layers' attribute names
    body: list[str]  # expressions computing ``x`` from ``x``, one per op; the last one is returned

    def source(self) -> list[str]:
        args = ", ".join(f"{c}: nn.Module" for c in self.children)
        lines = [
            f"class {self.name}(nn.Module):",
            "    " + text_literal(f"The spec's `{self.spec_op}`: {' → '.join(self.ops)}.", 4),
            "",
            f"    def __init__(self, {args}) -> None:",
            "        super().__init__()",
        ]
        lines += [f"        self.{c} = {c}" for c in self.children]
        lines += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        lines += [f"        x = {b}" for b in self.body[:-1]] + [f"        return {self.body[-1]}"]
        return lines


def is_guard(n: fx.Node) -> bool:
    """The fx node of the input guard (``runtime.check_input``)."""
    return n.target is runtime.check_input


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(n.all_input_nodes)
    return seen


def instance_graph(g: OpGraph, name: str, path: str, members: list[fx.Node]) -> OpGraph:
    """The OpGraph of one block instance (its fx nodes ``members``), re-rooted at its path: its one
    outside input is the new input, its module paths are relative to ``path``."""
    inside = set(members)
    (ext,) = {i for m in members for i in m.all_input_nodes if i not in inside}
    ext_id = INPUT if ext.op == "placeholder" or is_guard(ext) else ext.meta["archspec_node"]
    (out,) = [m for m in members if any(u not in inside for u in m.users)]
    ids = [m.meta["archspec_node"] for m in members]
    # identities inside the instance have no fx node: keep them, so that what reads them reads
    # their input inside the block rather than the block's input
    ids += [i for i, r in g.records() if r.op in REGISTRY and REGISTRY[r.op].passthrough and r.blocks[:1] == ((name, path),)]

    def reroot(p: str) -> str:
        return p[len(path) + 1 :] if p.startswith(path + ".") else ("" if p == path else p)

    sub = OpGraph()
    sub.put(INPUT, replace(g.at(ext_id), op=INPUT, params=None, path="", unit=INPUT, order=0, blocks=()))
    for i in ids:
        r = g.at(i)
        sub.put(i, replace(r, path=reroot(r.path), origin=reroot(r.origin), unit="", blocks=r.blocks[1:]))
    for i in ids:
        for p in g.pred[i]:
            sub.add_edge(p if p in sub else INPUT, i, **g.edges[p, i])
    sizes = accepted(sub, [out.meta["archspec_node"]])  # the sizes the block's output is computable at
    sub.net = replace(
        g.net,
        outputs={"logits": out.meta["archspec_node"]},
        main=("logits",),
        named_outputs=False,
        name=name,
        accepted=sizes,
        train_accepted=sizes,
    )
    return sub


class Plan:
    """The module tree, the fx graph, and how their parts are grouped into calls (see the module doc).

    ``helper_classes`` and ``names`` are shared by every class of one file: a helper class is written
    once, and class names never clash.
    """

    def __init__(self, graph: OpGraph, helper_classes: dict[tuple[str, ...], Helper], names: ClassNames) -> None:
        self.graph = graph
        self.root, targets = build_modules(graph, device="meta")  # layers are read, never run
        self.outputs: dict[str, str] = graph.net.outputs
        self.fx = build_fx_graph(graph, targets, self.outputs)
        self.fx_of = {n.meta["archspec_node"]: n for n in self.fx.nodes if "archspec_node" in n.meta}
        self.main = set().union(
            *(_ancestors(self.fx_node(n)) for n in graph.net.main_outputs().values())
        )  # what eval mode computes
        self.names = names
        self.helper_classes = helper_classes  # (children, body) → helper, for the whole file
        self.groups: dict[str, list[fx.Node]] = {}  # origin path → its chain of fx nodes
        self.group_of: dict[fx.Node, str] = {}
        self.helpers: dict[str, Helper] = {}  # origin path → helper
        self.blocks: dict[str, tuple[list[fx.Node], str]] = {}  # instance path → its fx nodes, its class
        self.block_of: dict[fx.Node, str] = {}
        self.block_classes: dict[str, str] = {}  # class name → source
        self.filled: dict[fx.Node, str] = {}  # stateless ops written as layers, to fill a numbered container

    # ---- reading the graphs ------------------------------------------------------------------------
    def fx_node(self, node: str) -> fx.Node:
        """The fx node computing an OpGraph node's value; an identity has none: its input's."""
        seen = 0
        while node not in self.fx_of:
            (node,) = self.graph.pred[node]  # an identity: exactly one input
            seen += 1
            if seen > len(self.graph):  # pragma: no cover - a cycle cannot pass expansion
                raise AssertionError("identity cycle")
        return self.fx_of[node]

    def record(self, n: fx.Node) -> Node:
        """The OpGraph record of an fx node."""
        return self.graph.at(n.meta["archspec_node"])

    def ops(self) -> list[fx.Node]:
        """The nodes computing ops: calls, and the parts of one op (a layer's permutes, a tensor it reads)."""
        return [
            n
            for n in self.fx.nodes
            if (n.op in ("call_module", "call_function") or n.meta.get("archspec_part")) and not is_guard(n)
        ]

    # ---- repeated blocks as classes ----------------------------------------------------------------
    def inside_block(self, path: str) -> bool:
        """Whether ``path`` lies inside a block instance the file writes as a class (the class makes its own modules)."""
        return any(path.startswith(f"{b}.") for b in self.blocks)

    def find_blocks(self, write_class: Callable[[OpGraph, str], str]) -> None:
        """Instances of a spec block that come out as the same code share one class (InceptionA × 4).

        ``write_class(graph, doc)`` writes the class of an instance's graph (:func:`instance_graph`) with
        that docstring, named ``PLACEHOLDER``."""
        instances: dict[tuple[str, str], list[fx.Node]] = {}
        for n in self.ops():
            stack = self.record(n).blocks
            if stack:
                instances.setdefault(stack[0], []).append(n)
        sources: dict[str, dict[str, list[tuple[str, list[fx.Node]]]]] = {}  # block → class text → instances
        for (name, path), members in instances.items():
            if self._encapsulated(path, members):
                label = next((u.label for u in self.graph.net.units if u.path == path), name)
                doc = f"{label}: block `{name}` of the spec." if label != name else f"Block `{name}` of the spec."
                text = write_class(instance_graph(self.graph, name, path, members), doc)
                sources.setdefault(name, {}).setdefault(text, []).append((path, members))
        for name, texts in sources.items():
            for text, group in texts.items():
                if len(group) < 2:
                    continue  # written inline: a class pays off when it is reused
                cls = self.names.fresh(camel(name))
                self.block_classes[cls] = text.replace(PLACEHOLDER, cls)
                for path, members in group:
                    self.blocks[path] = (members, cls)
                    for m in members:
                        self.block_of[m] = path

    def _encapsulated(self, path: str, members: list[fx.Node]) -> bool:
        """One input, one output read outside, and the module at ``path`` holds exactly its layers."""
        inside = set(members)
        if not path or len({i for m in members for i in m.all_input_nodes if i not in inside}) != 1:
            return False
        if sum(1 for m in members if any(u not in inside for u in m.users)) != 1:
            return False
        try:
            owner = self.root.get_submodule(path)
        except AttributeError:
            return False
        layers = {f"{path}.{k}" for k, m in owner.named_modules() if k and type(m) is not nn.Module}
        called = {str(m.target) for m in members if m.op == "call_module"}
        # and the tensors its containers hold (layer scales) are its own: a shortcut's beside it is not (seed 64602045)
        held = {f"{path}.{k}" for k, _ in owner.named_parameters() if not any(f"{path}.{k}".startswith(f"{q}.") for q in layers)}
        read = {str(m.target) for m in members if m.op == "get_attr"}
        return type(owner) is nn.Module and layers == called and held <= read

    # ---- composite ops as helpers ------------------------------------------------------------------
    def find_groups(self) -> None:
        members: dict[str, list[fx.Node]] = {}
        for n in self.ops():
            if n not in self.block_of:
                r = self.record(n)
                if r.origin != r.path and r.origin:
                    members.setdefault(r.origin, []).append(n)
        for origin, chain in members.items():
            if self.inside_block(origin):
                continue  # (a share: of a block instance's part: its class built the parts, each called by its path)
            if len(chain) > 1 and self._is_chain(origin, chain):
                self.groups[origin] = chain
                for n in chain:
                    self.group_of[n] = origin
                self.helpers[origin] = self._helper(origin, chain)

    def _is_chain(self, origin: str, chain: list[fx.Node]) -> bool:
        for i, n in enumerate(chain):
            if i and n.all_input_nodes != [chain[i - 1]]:
                return False
            if i < len(chain) - 1 and set(n.users) != {chain[i + 1]}:
                return False
            if i == 0 and len(n.all_input_nodes) != 1:
                return False
        children = [str(n.target)[len(origin) + 1 :] for n in chain if n.op == "call_module"]
        if any(not str(n.target).startswith(origin + ".") for n in chain if n.op == "call_module"):
            return False
        try:
            owner = self.root.get_submodule(origin)
        except AttributeError:
            return False
        return (
            type(owner) is nn.Module
            and list(owner._modules) == children
            and all(IDENT.match(c) and not keyword.iskeyword(c) for c in children)
        )

    def _helper(self, origin: str, chain: list[fx.Node]) -> Helper:
        children, body, ops = [], [], []
        for n in chain:
            ops.append(self.record(n).op)
            if n.op == "call_module":
                child = str(n.target)[len(origin) + 1 :]
                children.append(child)
                body.append(f"self.{child}(x)")
            else:
                body.append(function_call(n.target, ["x"], dict(n.kwargs)))  # type: ignore[arg-type]
        key = tuple(children) + ("|",) + tuple(body)
        helper = self.helper_classes.get(key)
        if helper is None:
            name = self.names.fresh(camel("_".join(ops)))
            spec_op = self.record(chain[0]).text.split(" ", 1)[0]
            helper = Helper(name, spec_op, ops, children, body)
            self.helper_classes[key] = helper
        return helper

    # ---- stateless ops at numbered slots as layers -------------------------------------------------
    def fill_gaps(self) -> None:
        """A stateless op at a numbered slot (``branch3.0``, a pool before ``branch3.1``) becomes the layer
        the registry names for it (``nn.AvgPool2d``), so the container is an nn.Sequential."""
        for n in self.fx.nodes:
            if n.op != "call_function" or n in self.group_of or n in self.block_of or len(n.all_input_nodes) != 1 or is_guard(n):
                continue
            record = self.record(n)
            parent, _, index = record.path.rpartition(".")
            if not (parent and index.isdigit()):
                continue
            if parent in self.blocks or self.inside_block(parent):
                continue  # inside a block instance the file writes as a class: the class makes its own modules
            try:
                owner = self.root.get_submodule(parent)
            except AttributeError:
                continue
            keys = list(owner._modules)
            if type(owner) is not nn.Module or index in keys or index in owner._parameters or not all(k.isdigit() for k in keys):
                continue  # (a tensor already named like the slot: a layer scale)
            layer = registry_layer(record, n.target)
            if layer is not None:
                owner._modules[index] = layer
                owner._modules = dict(sorted(owner._modules.items(), key=lambda kv: int(kv[0])))
                self.filled[n] = record.path
