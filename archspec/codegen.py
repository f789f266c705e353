"""OpGraph → a standalone Python module: one ``nn.Module`` class that imports only torch.

The stage reuses the compiler's own products — the module tree (``build_modules``) and the
torch.fx graph (``build_fx_graph``) — and writes them out as source a person would write:

- ``__init__`` builds the module tree as one nested expression: ``nn.Sequential`` where children
  are numbered 0..n-1, ``nn.ModuleDict`` elsewhere, so every ``state_dict`` key is the spec's path
  (``features.6.branch1.0.conv.weight``). Each torch layer is written as its constructor call,
  read back from the layer's ``__init__`` signature and attributes and checked by rebuilding it.
- A composite op of the spec (``conv`` = Conv2d → BatchNorm → ReLU) becomes a small helper class
  taking its layers, so the forward calls it once. A stateless op at a numbered slot (the pool
  opening ``branch3``) becomes its torch layer, so the container is an ``nn.Sequential``.
- Instances of a spec block that come out as identical code (Inception-A × 4) share one class,
  written once by a Writer over the instance's re-rooted subgraph.
- ``forward`` is straight-line code: variables named after branches, reused when a value dies,
  the input guard inlined, auxiliary heads computed under ``if self.training:`` and returned in a
  dict next to ``logits`` (as the compiled model does).
"""

from __future__ import annotations

import ast
import builtins
import inspect
import keyword
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.node import _get_qualified_name

from archspec import __version__, runtime
from archspec.compile import build_fx_graph, build_modules, class_name_of
from archspec.ops import REGISTRY
from archspec.sizes import accepted

LINE = 120
PROBE_ELEMENTS = 1 << 20  # the largest tensor a layer is tried on while writing the file
_PLACEHOLDER = "ArchspecBlockClass"  # a block class's name until it is known
_IDENT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
# keyword defaults of the torch pooling functions, left out of generated calls
_FUNCTION_DEFAULTS: dict[str, Any] = {"padding": 0, "ceil_mode": False, "count_include_pad": True}
# argument names where torch accepts one int for a square pair
_PAIR_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_size"}
_RESERVED = {"self", "torch", "nn", "F"} | set(dir(builtins))
# class names the file cannot define: its imports, keywords (a block named `none` → None) and builtins
_RESERVED_CLASSES = {"torch", "nn", "F", *keyword.kwlist, *dir(builtins)}


def _quote(text: str) -> str:
    """``ascii(text)``, in double quotes when that needs no more escapes (the style of the file)."""
    r = ascii(text)
    return '"' + r[1:-1] + '"' if r.startswith("'") and '"' not in text else r


def text_literal(text: str, indent: int = 0) -> str:
    """A Python string literal whose value is ``text``: the only way spec text reaches generated code.

    Plain text (printable, UTF-8 encodable, no backslash, no triple quote, no quote at either end)
    is written between triple quotes, as a docstring reads best; anything else by ``ascii()``, which
    escapes quotes, backslashes, control characters and lone surrogates alike (text of several
    lines as one ``ascii()`` literal per line in parentheses, ``indent`` spaces in).
    """
    try:
        text.encode("utf-8")
        plain = (all(line.isprintable() for line in text.split("\n")) and "\\" not in text
                 and '"""' not in text and not text.startswith('"') and not text.endswith('"'))
    except UnicodeEncodeError:
        plain = False
    if plain:
        return f'"""{text}"""'
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return ascii(text)
    pad = " " * (indent + 4)
    return "(\n" + "".join(f"{pad}{ascii(line)}\n" for line in lines) + " " * indent + ")"


# ---- expressions and their layout --------------------------------------------------------------
@dataclass
class Call:
    """``func(arg, key=value, ...)``; an arg is an expression or (key, expression)."""

    func: str
    args: list[Any] = field(default_factory=list)


@dataclass
class Mapping:
    items: list[tuple[str, Any]]


def _flat(e: Any) -> str:
    if isinstance(e, str):
        return e
    if isinstance(e, Call):
        parts = [f"{a[0]}={_flat(a[1])}" if isinstance(a, tuple) else _flat(a) for a in e.args]
        return f"{e.func}({', '.join(parts)})"
    return "{" + ", ".join(f"{_quote(k)}: {_flat(v)}" for k, v in e.items) + "}"


def layout(e: Any, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines for an expression: on one line when it fits, else one argument per line (black style)."""
    pad = " " * indent
    one = pad + prefix + _flat(e) + suffix
    if len(one) <= LINE or isinstance(e, str):
        return [one]
    if isinstance(e, Call):
        lines = [pad + prefix + e.func + "("]
        for a in e.args:
            if isinstance(a, tuple):
                lines += layout(a[1], indent + 4, f"{a[0]}=", ",")
            else:
                lines += layout(a, indent + 4, "", ",")
        return lines + [pad + ")" + suffix]
    lines = [pad + prefix + "{"]
    for k, v in e.items:
        lines += layout(v, indent + 4, f"{_quote(k)}: ", ",")
    return lines + [pad + "}" + suffix]


def _literal(v: Any) -> str:
    if isinstance(v, tuple) and len(v) == 1:
        return f"({_literal(v[0])},)"
    if isinstance(v, (tuple, list)):
        inner = ", ".join(_literal(i) for i in v)
        return f"({inner})" if isinstance(v, tuple) else f"[{inner}]"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else f"float({str(v)!r})"
    if isinstance(v, str):
        return _quote(v)
    text = repr(v)
    try:  # only values whose repr is a plain literal that reads back equal (None, bools, ints)
        same = ast.literal_eval(text) == v
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise TypeError(f"cannot write {type(v).__name__} {text} as a literal")
    return text


def _compact(name: str, v: Any) -> Any:
    if name in _PAIR_ARGS and isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    return v


# ---- layers as constructor calls ---------------------------------------------------------------
def _init_args(module: nn.Module) -> list[tuple[inspect.Parameter, Any]]:
    """The layer's constructor arguments, read back from its attributes (square pairs as one int)."""
    cls = type(module)
    args = []
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.name in ("device", "dtype") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(module, p.name):
            if p.default is p.empty:
                raise TypeError(f"cannot write {cls.__name__} as source: no attribute {p.name!r}")
            continue
        value = getattr(module, p.name)
        if isinstance(value, torch.Tensor) or (value is None and isinstance(p.default, bool)):
            value = value is not None  # bias=False is stored as bias=None
        args.append((p, _compact(p.name, value)))
    return args


def layer_call(module: nn.Module) -> Call:
    """``nn.Conv2d(3, 32, 3, stride=2, bias=False)`` for a torch layer, checked by rebuilding it."""
    cls = type(module)
    if getattr(nn, cls.__name__, None) is not cls:
        raise TypeError(f"cannot write {cls.__qualname__} as source: not a torch.nn layer")
    call = Call(f"nn.{cls.__name__}")
    args = _init_args(module)
    for p, value in args:
        if p.default is not p.empty and value == _compact(p.name, p.default):
            continue
        positional = p.default is p.empty and p.kind is not p.KEYWORD_ONLY
        call.args.append(_literal(value) if positional else (p.name, _literal(value)))
    with torch.device("meta"):
        rebuilt = eval(_flat(call), {"nn": nn})  # noqa: S307 - text we just wrote from a torch layer
    if [v for _, v in _init_args(rebuilt)] != [v for _, v in args]:
        raise TypeError(f"cannot write {cls.__name__} as source: {_flat(call)} builds {rebuilt!r}, not {module!r}")
    return call


def _function_name(fn: Callable[..., Any]) -> str:
    """The public spelling of a torch function: F.max_pool2d, torch.cat (not torch._C._nn...)."""
    short = getattr(fn, "__name__", "")
    if short and getattr(F, short, None) is fn:
        return f"F.{short}"
    if short and getattr(torch, short, None) is fn:
        return f"torch.{short}"
    return _get_qualified_name(fn).replace("torch.nn.functional.", "F.")


def function_call(fn: Callable[..., Any], args: list[str], kwargs: dict[str, Any]) -> str:
    name = _function_name(fn)
    parts = list(args)
    for key, value in kwargs.items():
        if key in _FUNCTION_DEFAULTS and _compact(key, value) == _FUNCTION_DEFAULTS[key]:
            continue
        parts.append(f"{key}={_literal(_compact(key, value))}")
    return f"{name}({', '.join(parts)})"


# ---- composite ops as helper classes -----------------------------------------------------------
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
        lines = [f"class {self.name}(nn.Module):",
                 "    " + text_literal(f"The spec's `{self.spec_op}`: {' → '.join(self.ops)}.", 4), "",
                 f"    def __init__(self, {args}) -> None:", "        super().__init__()"]
        lines += [f"        self.{c} = {c}" for c in self.children]
        lines += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        lines += [f"        x = {b}" for b in self.body[:-1]] + [f"        return {self.body[-1]}"]
        return lines


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", name) if p) or "Layer"


class Writer:
    """Writes one spec's compiled form as source; ``source()`` returns the module text."""

    def __init__(self, graph: nx.DiGraph, spec_file: str = "", *, block: bool = False,
                 helper_classes: dict[tuple[str, ...], Helper] | None = None, taken: set[str] | None = None) -> None:
        """``block``: write one block instance's class (graph re-rooted at it): no guard, no nested classes."""
        self.graph = graph
        if "probe_size" not in graph.graph:
            graph.graph["probe_size"] = accepted(graph, graph.graph["outputs"].values()).min_size
        self.spec_file = spec_file or graph.graph.get("file", "")
        self.block_mode = block
        self.root, targets = build_modules(graph, device="meta")  # layers are read, never run
        self.outputs: dict[str, str] = graph.graph["outputs"]
        self.fx = build_fx_graph(graph, targets, self.outputs)
        self.class_name = standalone_class_name(graph.graph["name"])
        self.fx_of = {n.meta["archspec_node"]: n for n in self.fx.nodes if "archspec_node" in n.meta}
        logits = self.fx_node(self.outputs["logits"])
        self.main = self._ancestors(logits)
        self.groups: dict[str, list[fx.Node]] = {}  # origin path → its chain of fx nodes
        self.group_of: dict[fx.Node, str] = {}
        self.helpers: dict[str, Helper] = {}  # origin path → helper
        self.helper_classes: dict[tuple[str, ...], Helper] = {} if helper_classes is None else helper_classes
        # class names in the file, and names a class cannot take
        self.taken: set[str] = {self.class_name, *_RESERVED_CLASSES} if taken is None else taken
        self.blocks: dict[str, tuple[list[fx.Node], str]] = {}  # instance path → its fx nodes, its class
        self.block_of: dict[fx.Node, str] = {}
        self.block_classes: dict[str, str] = {}  # class name → source
        self.kinds: dict[str, str] = {"": "self"}  # module path → seq | dict | helper | layer
        self.filled: dict[fx.Node, str] = {}  # stateless ops written as layers, to fill a numbered container
        self.alias: dict[fx.Node, fx.Node] = {}  # the input guard's result is the input itself
        self.guard: tuple[Any, ...] = ()  # channels, min H, min W[, max H, max W[, conditions]]
        self.readers: dict[fx.Node, int] = {}  # how many forward lines read a value
        if not block:
            self._find_blocks()
        self._find_groups()
        self._fill_gaps()

    # ---- analysis --------------------------------------------------------------------------
    def fx_node(self, node: str) -> fx.Node:
        """The fx node computing an OpGraph node's value; an identity has none: its input's."""
        seen = 0
        while node not in self.fx_of:
            (node,) = self.graph.pred[node]  # an identity: exactly one input
            seen += 1
            if seen > len(self.graph):  # pragma: no cover - a cycle cannot pass expansion
                raise AssertionError("identity cycle")
        return self.fx_of[node]

    @staticmethod
    def _ancestors(node: fx.Node) -> set[fx.Node]:
        seen, todo = set(), [node]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(n.all_input_nodes)
        return seen

    def _data(self, n: fx.Node) -> dict[str, Any]:
        return self.graph.nodes[n.meta["archspec_node"]]

    def _ops(self) -> list[fx.Node]:
        """The nodes computing ops: calls, and the parts of one op (a layer's permutes, a tensor it reads)."""
        return [n for n in self.fx.nodes
                if (n.op in ("call_module", "call_function") or n.meta.get("archspec_part"))
                and n.target is not runtime.check_input]

    # ---- repeated blocks as classes ------------------------------------------------------------
    def _find_blocks(self) -> None:
        """Instances of a spec block that come out as the same code share one class (InceptionA × 4)."""
        instances: dict[tuple[str, str], list[fx.Node]] = {}
        for n in self._ops():
            stack = self._data(n)["blocks"]
            if stack:
                instances.setdefault(stack[0], []).append(n)
        sources: dict[str, dict[str, list[tuple[str, list[fx.Node]]]]] = {}  # block → class text → instances
        for (name, path), members in instances.items():
            if self._encapsulated(path, members):
                text = self._block_source(name, path, members)
                sources.setdefault(name, {}).setdefault(text, []).append((path, members))
        for name, texts in sources.items():
            for text, group in texts.items():
                if len(group) < 2:
                    continue  # written inline: a class pays off when it is reused
                cls = self._class_name(_camel(name))
                self.block_classes[cls] = text.replace(_PLACEHOLDER, cls)
                for path, members in group:
                    self.blocks[path] = (members, cls)
                    for m in members:
                        self.block_of[m] = path

    def _class_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}{k}"
        self.taken.add(name)
        return name

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
        return type(owner) is nn.Module and layers == called

    def _block_source(self, name: str, path: str, members: list[fx.Node]) -> str:
        """The class of one block instance, written by a Writer over the instance re-rooted at its path."""
        g = self.graph
        inside = set(members)
        (ext,) = {i for m in members for i in m.all_input_nodes if i not in inside}
        ext_id = "input" if ext.op == "placeholder" or ext.target is runtime.check_input else ext.meta["archspec_node"]
        (out,) = [m for m in members if any(u not in inside for u in m.users)]
        ids = [m.meta["archspec_node"] for m in members]
        # identities inside the instance have no fx node: keep them, so that what reads them reads
        # their input inside the block rather than the block's input
        ids += [i for i, d in g.nodes(data=True)
                if d["op"] in REGISTRY and REGISTRY[d["op"]].passthrough and d["blocks"][:1] == ((name, path),)]

        def reroot(p: str) -> str:
            return p[len(path) + 1:] if p.startswith(path + ".") else ("" if p == path else p)

        sub = nx.DiGraph()
        sub.add_node("input", **{**g.nodes[ext_id], "op": "input", "params": None, "path": "", "unit": "input",
                                 "order": 0, "blocks": ()})
        for i in ids:
            d = g.nodes[i]
            sub.add_node(i, **{**d, "path": reroot(d["path"]), "origin": reroot(d["origin"]), "unit": "",
                               "blocks": d["blocks"][1:]})
        for i in ids:
            for p in g.pred[i]:
                sub.add_edge(p if p in sub else "input", i, **g.edges[p, i])
        sub.graph.update(g.graph)
        sub.graph.update(outputs={"logits": out.meta["archspec_node"]}, name=name, min_size=(1, 1),
                         probe_size=g.graph.get("probe_size"))
        writer = Writer(sub, block=True, helper_classes=self.helper_classes, taken=self.taken)
        label = next((u.label for u in g.graph.get("units", []) if u.path == path), name)
        doc = f"{label}: block `{name}` of the spec." if label != name else f"Block `{name}` of the spec."
        return writer.class_source(_PLACEHOLDER, doc)

    # ---- composite ops as helpers --------------------------------------------------------------
    def _find_groups(self) -> None:
        members: dict[str, list[fx.Node]] = {}
        for n in self._ops():
            if n not in self.block_of:
                d = self._data(n)
                if d["origin"] != d["path"] and d["origin"]:
                    members.setdefault(d["origin"], []).append(n)
        for origin, chain in members.items():
            if len(chain) > 1 and self._is_chain(origin, chain):
                self.groups[origin] = chain
                for n in chain:
                    self.group_of[n] = origin
                self.helpers[origin] = self._helper(origin, chain)

    def _fill_gaps(self) -> None:
        """A stateless op at a numbered slot (``branch3.0``, a pool before ``branch3.1``) becomes a layer
        (``nn.AvgPool2d``) when torch has one that computes the same, so the container is an nn.Sequential."""
        for n in self.fx.nodes:
            if (n.op != "call_function" or n in self.group_of or n in self.block_of or len(n.all_input_nodes) != 1
                    or n.target is runtime.check_input):
                continue
            path = self._data(n)["path"]
            parent, _, index = path.rpartition(".")
            if not (parent and index.isdigit()):
                continue
            try:
                owner = self.root.get_submodule(parent)
            except AttributeError:
                continue
            keys = list(owner._modules)
            if (type(owner) is not nn.Module or index in keys or index in owner._parameters
                    or not all(k.isdigit() for k in keys)):
                continue  # (a tensor already named like the slot: a layer scale)
            layer = self._as_layer(n)
            if layer is not None:
                owner._modules[index] = layer
                owner._modules = dict(sorted(owner._modules.items(), key=lambda kv: int(kv[0])))
                self.filled[n] = path

    def _as_layer(self, n: fx.Node) -> nn.Module | None:
        """``nn.AvgPool2d(**kwargs)`` for ``F.avg_pool2d(x, **kwargs)``, if it gives the same on the op's input."""
        fn = n.target
        cls = getattr(nn, _camel(getattr(fn, "__name__", "")), None)
        if getattr(fn, "__name__", "_").endswith("_") or not isinstance(cls, type) or not issubclass(cls, nn.Module):
            return None
        try:
            layer = cls(**n.kwargs)
            layer_call(layer)
        except (TypeError, ValueError):
            return None
        (src,) = n.all_input_nodes
        source = "input" if src.op == "placeholder" or src.target is runtime.check_input else src.meta["archspec_node"]
        shape = self.graph.nodes[source].get("shape")
        if shape is None:
            return None
        # at the smallest input every output accepts, never at the spec's size: writing the file must
        # not allocate the network's activations (an 8192×8192 spec would take gigabytes)
        h, w = self.graph.graph.get("probe_size") or self.graph.graph["min_size"]
        dims = shape.at(h, w)
        if min(dims) < 1 or math.prod(dims) > PROBE_ELEMENTS:
            return None
        x = torch.randn(2, *dims)
        with torch.no_grad():
            return layer if torch.equal(layer(x), fn(x, *n.args[1:], **n.kwargs)) else None  # type: ignore[operator]

    def _is_chain(self, origin: str, chain: list[fx.Node]) -> bool:
        for i, n in enumerate(chain):
            if i and n.all_input_nodes != [chain[i - 1]]:
                return False
            if i < len(chain) - 1 and set(n.users) != {chain[i + 1]}:
                return False
            if i == 0 and len(n.all_input_nodes) != 1:
                return False
        children = [str(n.target)[len(origin) + 1:] for n in chain if n.op == "call_module"]
        if any(not str(n.target).startswith(origin + ".") for n in chain if n.op == "call_module"):
            return False
        try:
            owner = self.root.get_submodule(origin)
        except AttributeError:
            return False
        return type(owner) is nn.Module and list(owner._modules) == children and all(
            _IDENT.match(c) and not keyword.iskeyword(c) for c in children)

    def _helper(self, origin: str, chain: list[fx.Node]) -> Helper:
        children, body, ops = [], [], []
        for n in chain:
            ops.append(self._data(n)["op"])
            if n.op == "call_module":
                child = str(n.target)[len(origin) + 1:]
                children.append(child)
                body.append(f"self.{child}(x)")
            else:
                body.append(function_call(n.target, ["x"], dict(n.kwargs)))  # type: ignore[arg-type]
        key = tuple(children) + ("|",) + tuple(body)
        helper = self.helper_classes.get(key)
        if helper is None:
            name = self._class_name(_camel("_".join(ops)))
            spec_op = str(self._data(chain[0])["text"]).split(" ", 1)[0]
            helper = Helper(name, spec_op, ops, children, body)
            self.helper_classes[key] = helper
        return helper

    # ---- __init__ ----------------------------------------------------------------------------
    def module_expr(self, path: str, module: nn.Module) -> Any:
        if path in self.blocks:
            self.kinds[path] = "layer"
            return Call(self.blocks[path][1])
        if path in self.helpers:
            self.kinds[path] = "helper"
            helper = self.helpers[path]
            return Call(helper.name, [self.module_expr(f"{path}.{c}", module._modules[c]) for c in helper.children])
        if type(module) is not nn.Module:
            self.kinds[path] = "layer"
            return layer_call(module)
        keys = list(module._modules)
        if keys == [str(i) for i in range(len(keys))]:
            self.kinds[path] = "seq"
            return Call("nn.Sequential", [self.module_expr(f"{path}.{k}", m) for k, m in module._modules.items()])
        self.kinds[path] = "dict"
        return Call("nn.ModuleDict", [Mapping([(k, self.module_expr(f"{path}.{k}", m))
                                               for k, m in module._modules.items()])])

    def access(self, path: str) -> str:
        text, parent = "self", ""
        for seg in path.split("."):
            kind = self.kinds[parent]
            if kind == "seq":
                text += f"[{seg}]"
            elif kind == "self" and not _IDENT.match(seg):
                text = f"getattr(self, {_quote(seg)})"
            elif kind == "dict" and (not _IDENT.match(seg) or keyword.iskeyword(seg) or hasattr(nn.ModuleDict, seg)):
                text += f"[{_quote(seg)}]"
            else:
                text += f".{seg}"
            parent = f"{parent}.{seg}" if parent else seg
        return text

    def param_access(self, path: str) -> str:
        """A tensor held by a module (a layer scale), by attribute: containers index their modules only."""
        parent, _, leaf = path.rpartition(".")
        owner = self.access(parent) if parent else "self"
        return f"{owner}.{leaf}" if _IDENT.match(leaf) and not keyword.iskeyword(leaf) else f"getattr({owner}, {_quote(leaf)})"

    def init_lines(self) -> list[str]:
        lines = ["    def __init__(self) -> None:", "        super().__init__()"]
        for name, module in self.root._modules.items():
            expr = self.module_expr(name, module)
            if _IDENT.match(name):
                lines += layout(expr, 8, f"self.{name} = ")
            else:
                lines += layout(expr, 8, f"self.add_module({_quote(name)}, ", ")")
        # tensors held by a module rather than a layer (parameter_only ops), at the value the op starts them at
        for node, data in self.graph.nodes(data=True):
            if data["op"] not in REGISTRY or not REGISTRY[data["op"]].parameter_only or any(
                    data["path"].startswith(b + ".") for b in self.blocks):
                continue  # (a block's class makes its own)
            preds = [self.graph.nodes[p]["shape"] for p in self.graph.pred[node]]
            shape, value = REGISTRY[data["op"]].parameter(data["params"], preds, data["shape"])
            parent, _, leaf = data["path"].rpartition(".")
            owner = self.access(parent) if parent else "self"
            tensor = f"nn.Parameter(torch.full({_literal(tuple(shape))}, {_literal(float(value))}))"
            if _IDENT.match(leaf) and not keyword.iskeyword(leaf):
                lines.append(f"        {owner}.{leaf} = {tensor}")
            else:
                lines.append(f"        {owner}.register_parameter({_quote(leaf)}, {tensor})")
        return lines

    # ---- forward -----------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        steps: list[Step] = []
        alias = self.alias
        for n in self.fx.nodes:
            if n.op in ("placeholder", "output") or (n in self.group_of and self.groups[self.group_of[n]][0] is not n):
                continue
            if n.op == "get_attr" and n not in self.block_of:
                continue  # a tensor a module holds is read where it is used (param_access)
            if n.target is runtime.check_input:
                alias[n] = n.args[0]  # type: ignore[assignment]
                self.guard = tuple(n.args[1:])
                continue
            ins = [alias.get(i, i) for i in n.all_input_nodes if i.op != "get_attr"]
            aux = n not in self.main
            if n in self.block_of:
                path = self.block_of[n]
                members = self.blocks[path][0]
                if n is members[0]:
                    inside = set(members)
                    (ext,) = {alias.get(i, i) for m in members for i in m.all_input_nodes if i not in inside}
                    (out,) = [m for m in members if any(u not in inside for u in m.users)]
                    steps.append(Step([ext], out, self._render_call(path, ext), self._candidate(path, out, False), aux,
                                      path, True))
                continue
            if n in self.group_of:
                origin = self.group_of[n]
                out = self.groups[origin][-1]
                steps.append(Step(ins, out, self._render_module(origin, n), self._candidate(origin, n), aux, origin,
                                  True))
                continue
            d = self._data(n)
            layer = n.op == "call_module" or n in self.filled
            target = str(n.target) if n.op == "call_module" else d["path"]
            render = self._render_module(target, n) if layer else self._render_function(n, alias)
            steps.append(Step(ins, n, render, self._candidate(d["path"], n), aux, target, layer))
        return _schedule(self._collapse_sequentials(steps))

    def _collapse_sequentials(self, steps: list[Step]) -> list[Step]:
        """A Sequential whose layers run one after another, nothing else reading between, is called once."""
        readers: dict[fx.Node, int] = {}
        for s in steps:
            for v in s.inputs:
                readers[v] = readers.get(v, 0) + 1
        seqs = sorted((p for p, k in self.kinds.items() if k == "seq"), key=lambda p: -p.count("."))
        for path in seqs:
            by_path = {s.path: s for s in steps if s.module}
            n = len(self.root.get_submodule(path)._modules)
            chain = [by_path.get(f"{path}.{i}") for i in range(n)]
            if any(c is None for c in chain) or len({c.aux for c in chain if c}) != 1:
                continue
            links = zip(chain, chain[1:], strict=False)
            if not all(b.inputs == [a.output] and readers[a.output] == 1 for a, b in links if a and b):
                continue
            first, last = chain[0], chain[-1]
            assert first is not None and last is not None
            merged = Step(first.inputs, last.output, self._render_call(path, first.inputs[0]), first.candidate,
                          first.aux, path, True)
            drop = {id(c) for c in chain}
            steps = [merged if s is first else s for s in steps if s is first or id(s) not in drop]
        return steps

    def _render_module(self, path: str, n: fx.Node) -> Callable[[Callable[[fx.Node], str]], str]:
        return self._render_call(path, self.alias.get(n.all_input_nodes[0], n.all_input_nodes[0]))

    def _render_call(self, path: str, arg: fx.Node) -> Callable[[Callable[[fx.Node], str]], str]:
        access = self.access(path)

        def render(var: Callable[[fx.Node], str]) -> str:
            return f"{access}({var(arg)})"

        return render

    def _render_function(self, n: fx.Node, alias: dict[fx.Node, fx.Node]) -> Callable[[Callable[[fx.Node], str]], str]:
        def render(var: Callable[[fx.Node], str]) -> str:
            def arg(a: Any) -> str:
                if isinstance(a, fx.Node):
                    return var(alias.get(a, a))
                if isinstance(a, (list, tuple)):
                    return "[" + ", ".join(arg(i) for i in a) + "]"
                return _literal(a)

            if n.op == "call_method":  # body.add_(shortcut)
                first, *rest = [arg(a) for a in n.args]
                return f"{first}.{n.target}({', '.join(rest)})"
            return function_call(n.target, [arg(a) for a in n.args], dict(n.kwargs))  # type: ignore[arg-type]

        return render

    def _candidate(self, path: str, n: fx.Node, merge: bool = True) -> tuple[str | None, bool]:
        """The branch name a value is called by, and whether it is the op's own name (not a branch's)."""
        d = self._data(n)
        if merge and REGISTRY[d["op"]].kind == "merge":
            path = path.rpartition(".")[0] if "." in path else ""
        unit = d["unit"]
        rel = path[len(unit) + 1:] if path.startswith(unit + ".") else ("" if path == unit else path)
        segs = [s for s in rel.split(".") if s and not s.isdigit()]
        if not segs:
            return None, False
        return segs[0], rel == segs[0]

    def forward_lines(self) -> list[str]:
        steps = self.steps()
        end = len(steps)
        last: dict[fx.Node, int] = {}
        for i, s in enumerate(steps):
            for v in s.inputs:
                last[v] = i
        outputs = {name: self.fx_node(node) for name, node in self.outputs.items()}
        outputs = {k: self.alias.get(v, v) for k, v in outputs.items()}
        for v in outputs.values():
            last[v] = end
        placeholder = next(n for n in self.fx.nodes if n.op == "placeholder")
        names: dict[fx.Node, str] = {placeholder: "x"}
        names.update((n, self.param_access(str(n.target))) for n in self.fx.nodes if n.op == "get_attr")
        holder: dict[str, fx.Node] = {"x": placeholder}

        def free(name: str, i: int) -> bool:
            return name not in holder or last.get(holder[name], -1) <= i

        lines: list[str] = []
        lines += [] if self.block_mode else _guard_lines(*self.guard)
        for s in steps:
            for v in s.inputs:
                self.readers[v] = self.readers.get(v, 0) + 1
        in_aux = False
        for i, s in enumerate(steps):
            name = self._name(s, i, names, free)
            code = s.render(lambda v: names[v])
            names[s.output] = name
            holder[name] = s.output
            if s.aux and not in_aux:
                lines.append("        if self.training:")
            in_aux = s.aux
            pad = " " * (12 if s.aux else 8)
            if i == len(steps) - 1 and len(outputs) == 1 and s.output == outputs["logits"] and not s.aux:
                lines += layout(code, 8, "return ")  # the last line computes the result
                return ["    def forward(self, x: torch.Tensor) -> torch.Tensor:"] + lines
            lines += layout(code, len(pad), f"{name} = ")
        if len(outputs) > 1:
            items = ", ".join(f"{_quote(k)}: {names[v]}" for k, v in outputs.items())
            lines += ["        if self.training:", f"            return {{{items}}}"]
        lines.append(f"        return {names[outputs['logits']]}")
        ret = "torch.Tensor | dict[str, torch.Tensor]" if len(outputs) > 1 else "torch.Tensor"
        return [f"    def forward(self, x: torch.Tensor) -> {ret}:"] + lines

    def _name(self, s: Step, i: int, names: dict[fx.Node, str], free: Callable[[str, int], bool]) -> str:
        cand, own = s.candidate
        first = s.inputs[0] if s.inputs else None
        first_name = names.get(first) if first is not None else None
        first_dies = first_name is not None and free(first_name, i)
        unit = self._data(s.output)["unit"]
        fallback = _identifier(unit) if unit in self.outputs and unit != "logits" else "x"
        fallbacks = {fallback, "out"}
        if cand is not None and own and first_dies and first_name in fallbacks and self.readers[first] == 1:
            return first_name  # a single op continuing the main line: x = op(x)
        if cand is None:
            if first_dies and first_name in fallbacks:
                return first_name
            options = [fallback, "out"]
            shared = _shared_branch([names[v] for v in s.inputs if v in names])
            if shared is not None:
                options.insert(0, shared)
        else:
            options = [_identifier(cand)]
        for option in options:
            if free(option, i):
                return option
        k = 2
        while not free(f"{options[-1]}_{k}", i):
            k += 1
        return f"{options[-1]}_{k}"

    # ---- the file ------------------------------------------------------------------------------
    def class_source(self, class_name: str, doc: str) -> str:
        lines = [f"class {class_name}(nn.Module):", "    " + text_literal(doc, 4), "", *self.init_lines(), "",
                 *self.forward_lines()]
        return "\n".join(lines)

    def source(self) -> str:
        name = self.graph.graph["name"]
        inp = self.graph.graph["input"]
        h, w = inp.size
        min_h, min_w = self.graph.graph["min_size"]
        heads = [k for k in self.outputs if k != "logits"]
        doc = [
            f"{self.class_name}: the network of spec `{name}`, as a standalone PyTorch module.",
            "",
            f"Generated by archspec {__version__} from {self.spec_file or 'a spec'}; it needs only torch.",
            f"Input: (N, {inp.channels}, H, W), {h}×{w} in the spec, at least {min_h}×{min_w}.",
            "State-dict keys are the spec's module paths, so weights saved from the archspec model load",
            "with strict=True.",
        ]
        if heads:
            doc.append(f"In training mode forward returns a dict: logits and the auxiliary heads {', '.join(heads)}.")
        main = self.class_source(self.class_name, f"The `{name}` network.")
        classes = list(self.block_classes.values()) + [main]
        helpers = ["\n".join(h.source()) for h in self.helper_classes.values()
                   if any(f"{h.name}(" in c for c in classes)]
        classes = helpers + classes
        imports = ["import torch"]
        if any("F." in c for c in classes):
            imports.append("import torch.nn.functional as F")
        imports.append("from torch import nn")
        return text_literal("\n".join(doc) + "\n") + "\n\n" + "\n".join(imports) + "\n\n\n" + "\n\n\n".join(classes) + "\n"


@dataclass
class Step:
    """One line of forward: a value computed from others."""

    inputs: list[fx.Node]
    output: fx.Node
    render: Callable[[Callable[[fx.Node], str]], str]
    candidate: tuple[str | None, bool]
    aux: bool
    path: str  # the module it calls, or the op's path
    module: bool = False  # a call of the module at ``path`` on the one input


def _schedule(steps: list[Step]) -> list[Step]:
    """Main-line steps in order; each auxiliary step as soon as its inputs exist (so taps stay short-lived)."""
    order: list[Step] = []
    defined: set[fx.Node] = set()
    pending = [s for s in steps if s.aux]

    def flush() -> None:
        progress = True
        while progress:
            progress = False
            for s in list(pending):
                if all(i in defined or i.op == "placeholder" for i in s.inputs):
                    order.append(s)
                    defined.add(s.output)
                    pending.remove(s)
                    progress = True

    flush()
    for s in steps:
        if not s.aux:
            order.append(s)
            defined.add(s.output)
            flush()
    return order + pending


def _shared_branch(names: list[str]) -> str | None:
    """The branch that several values split from: branch1 for branch1_1a and branch1_1b."""
    if len(names) < 2:
        return None
    prefix = os.path.commonprefix(names).rstrip("_")
    m = re.fullmatch(r"(.*\d)_\d+", prefix)
    stem = m.group(1) if m else prefix
    return stem if re.fullmatch(r"[A-Za-z_]\w*\d", stem) and stem not in names else None


def _identifier(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = "v_" + text
    if keyword.iskeyword(text) or text in _RESERVED:
        text += "_"
    return text


def standalone_class_name(spec_name: str) -> str:
    """The class name of the standalone file: the compiled model's, unless that would shadow an import,
    a keyword or a builtin (a network named `f` gives FNet, not F)."""
    name = class_name_of(spec_name)
    return name + "Net" if name in _RESERVED_CLASSES else name


def generate(graph: nx.DiGraph, spec_file: str = "") -> str:
    """The source text of a standalone module defining the spec's network as one nn.Module class."""
    return Writer(graph, spec_file).source()


def _guard_lines(channels: int, min_h: int, min_w: int, max_h: int | None = None, max_w: int | None = None,
                 conditions: list[tuple[int, int, int, int, int]] | None = None) -> list[str]:
    """The input check as plain code: sizes, and (rarely) a maximum or sizes where branches agree."""
    tests = ["x.dim() != 4", f"x.shape[1] != {channels}", f"x.shape[2] < {min_h}", f"x.shape[3] < {min_w}"]
    want = f"H >= {min_h} and W >= {min_w}"
    if max_h is not None:
        tests.append(f"x.shape[2] > {max_h}")
        want += f", H <= {max_h}"
    if max_w is not None:
        tests.append(f"x.shape[3] > {max_w}")
        want += f", W <= {max_w}"
    for axis, a1, m1, a2, m2 in conditions or []:
        dim = f"x.shape[{2 + axis}]"
        first = str(a1) if m1 == 0 else f"({dim} + {a1}) // {m1}"
        second = str(a2) if m2 == 0 else f"({dim} + {a2}) // {m2}"
        tests.append(f"{first} != {second}")
    agree = ' " (and sizes where merged branches agree)"' if conditions else ""
    if len(tests) == 4:
        head = ["        if " + " or ".join(tests) + ":"]
    else:
        head = ["        if ("] + [f"            {t}{' or' if i < len(tests) - 1 else ''}" for i, t in enumerate(tests)]
        head += ["        ):"]
    return head + [
        "            raise ValueError(",
        f'                "expected input of shape (N, {channels}, H, W) with {want}"',
        *([f"               {agree}"] if agree else []),
        '                f", got {tuple(x.shape)}"',
        "            )",
    ]
