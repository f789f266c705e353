"""The traced fx graph → archspec's primitive ops, through a table built from the op registry.

Every op declares the torch forms it is read from (``Op.readers``: module classes, functions,
tensor methods) and reads its parameters from them (``Op.read``), next to its builder, so this
file names no op's module or arguments. :func:`readers` turns the declarations into one lookup
table; :class:`Converter` walks the fx graph and dispatches each node through it, as torch.fx's
Interpreter dispatches on a node's kind: an op with parameters is read by the op, a structural
form (a merge, a reshape, a pass-through) by the converter's ``read_<structural>`` method. The
few fx forms that are no op at all (``x.shape``, ``x.size(0)`` feeding a flatten, a tuple item)
are the converter's own. Composite ``conv`` ops are fused afterwards (:func:`fuse_composites`).
"""

from __future__ import annotations

import importlib
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from archspec.importer.forms import ChannelSplits, Merges, Rows, ValueReads, per_channel
from archspec.importer.prims import FunctionCall, ModuleCall, PrimWriter
from archspec.importer.sizes import is_size, size_of, sym
from archspec.importer.trace import Prim, module_of
from archspec.ops import REGISTRY, Op
from archspec.ops.conv import act_text
from archspec.ops.registry import Reader, Unreadable

Entry = tuple[Op, Reader]


@dataclass
class Readers:
    """Where each torch form leads: module class → op, function → op, tensor method name → op."""

    modules: dict[type, Entry]
    functions: dict[Any, Entry]
    methods: dict[str, Entry]
    # functions an op reading another value's size is read from (interpolate size_of=, crop to=): tried
    # first; a call in another form goes on to ``functions`` (F.interpolate by a factor is an upsample)
    valued: dict[Any, Entry]
    missing: list[str]  # targets whose package is not installed (timm's BatchNormAct2d without timm)
    unloaded: list[str]  # targets of a package this process has not imported: no model can hold them


def resolve(target: str) -> Any:
    """The object a dotted target names (the longest importable module prefix, then attributes)."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(target)


@cache
def _packages() -> frozenset[str]:
    """The top-level packages the registry's readers name."""
    return frozenset(r.target.split(".")[0] for op in REGISTRY.values() for r in op.readers if not r.target.startswith("Tensor."))


def readers() -> Readers:
    """The dispatch table, from every registry op's readers.

    A reader of a package this process has not imported (timm's classes, for a torchvision model)
    is left out rather than imported: a model whose class comes from a package has imported it, so
    the table is built again, once, when another of the readers' packages has been imported since.
    Importing timm only to learn its class names cost a second of every `archspec import`."""
    return _readers(frozenset(p for p in _packages() if p in sys.modules))


@cache
def _readers(loaded: frozenset[str]) -> Readers:
    table = Readers({}, {}, {}, {}, [], [])
    for op in REGISTRY.values():
        for reader in op.readers:
            if reader.target.startswith("Tensor."):
                table.methods[reader.target.removeprefix("Tensor.")] = (op, reader)
                continue
            if reader.target.split(".")[0] not in loaded:
                table.unloaded.append(reader.target)
                continue
            try:
                obj = resolve(reader.target)
            except (ImportError, AttributeError):
                table.missing.append(reader.target)  # an optional package's form: nothing to read it from
                continue
            if isinstance(obj, type) and issubclass(obj, nn.Module):
                table.modules[obj] = (op, reader)
            elif op.reads_values:
                table.valued[obj] = (op, reader)
            else:
                table.functions[obj] = (op, reader)
    return table


ACTIVATIONS = frozenset(name for name, op in REGISTRY.items() if op.kind == "act")


class Converter(PrimWriter):
    """fx graph → Prims, in topological order."""

    def __init__(self, gm: fx.GraphModule, built: bool = False) -> None:
        super().__init__(gm)
        self.built = built  # a network archspec built: it keeps what its spec wrote, `dropout 0.0` included
        self.table = readers()
        self.modules = dict(gm.named_modules())
        self.calls: dict[str, int] = {}
        self.first: dict[str, int] = {}  # a module called more than once → the prim of its first call
        for n in gm.graph.nodes:
            if n.op == "call_module":
                self.calls[n.target] = self.calls.get(n.target, 0) + 1
        self.output: int | None = None
        # a model returning several maps (a dict, list or tuple: IntermediateLayerGetter): each name, its
        # value and its fx node; `output` is then the last computed, whose chain holds the others
        self.outputs: list[tuple[str, int, fx.Node]] = []
        self.splits, self.merges, self.rows = ChannelSplits(self), Merges(self), Rows(self)  # structural forms (forms.py)
        self.values = ValueReads(self)

    def run(self) -> list[Prim]:
        for node in self.gm.graph.nodes:
            handler: Callable[[fx.Node], None] = getattr(self, "on_" + node.op)
            handler(node)
        return self.prims

    # ---- fx node kinds ---------------------------------------------------------------------
    def on_placeholder(self, node: fx.Node) -> None:
        if self.prims and not node.users:
            return  # an optional argument the forward does not use
        if self.prims:
            raise self.refuse(node, "the module takes more than one input; a spec has one image input")
        self.prims.append(Prim(0, "input", node=node.name))
        self.value[node] = 0

    def on_output(self, node: fx.Node) -> None:
        out = node.args[0]
        items = list(out.items()) if isinstance(out, dict) else list(enumerate(out)) if isinstance(out, (list, tuple)) else []
        several = len(items) > 1 or (isinstance(out, dict) and len(items) == 1)  # {'out': x}: torchvision's segmentation
        if several and all(isinstance(v, fx.Node) and v in self.value and isinstance(k, (str, int)) for k, v in items):
            self.outputs = [(str(k), self.value[v], v) for k, v in items]
            self.output = max(i for _, i, _ in self.outputs)
            return
        if not isinstance(out, fx.Node) or out not in self.value:
            raise self.refuse(
                node,
                "the module returns something other than one tensor (a tuple, a dict)",
                hint="import the model in the form that returns the logits alone (e.g. without auxiliary heads)",
            )
        self.output = self.value[out]

    def on_get_attr(self, node: fx.Node) -> None:
        if node.users and all(_scales(u) or (per_channel(u) and all(_is_mul(v) for v in u.users)) for u in node.users):
            return  # a tensor (or a vector viewed per channel) times a map: a layer scale, read by read_mul
        if node.users:
            raise self.refuse(
                node, f"the forward reads the tensor attribute {node.target!r} directly; archspec ops own their tensors"
            )

    def on_call_module(self, node: fx.Node) -> None:
        target = str(node.target)
        m = self.modules[target]
        entry = self.table.modules.get(type(m))
        if entry is None:
            raise self.refuse(
                node,
                f"no archspec op for module {type(m).__module__}.{type(m).__name__}",
                hint="see docs/import.md for the modules archspec import knows",
            )
        if self.calls[target] > 1 and entry[0].stateful:
            self.shared(node, entry, m, target)
            return
        self.read(node, entry, ModuleCall(m), target if self.calls[target] == 1 else None)

    def shared(self, node: fx.Node, entry: Entry, m: nn.Module, target: str) -> None:
        """A module with weights called more than once: its first call an op at its path, each later
        call a `share` of it (archspec's `{share: NAME}`: the same weights applied again)."""
        first = self.first.get(target)
        if first is not None:
            prim = self.prims[self.add(node, "share")]
            prim.of, prim.owner = self.prims[first], _caller(node)
            return
        self.read(node, entry, ModuleCall(m), target)
        made = self.value.get(node)
        if made is None or self.fx_node.get(made) is not node or not self.prims[made].stateful:
            raise self.refuse(
                node,
                "a module with weights is called more than once, and its first call is no one op with weights: "
                "archspec shares one op's weights (`share:`)",
            )
        self.first[target] = made

    def on_call_function(self, node: fx.Node) -> None:
        t = node.target
        valued = self.table.valued.get(t) if _hashable(t) else None
        if valued is not None and self.values.read(node, valued, FunctionCall(node, valued[1].args)):
            return
        if is_size(node) and _only_sizes(node):
            return  # x.shape[-2:], (x.shape[2] - h) // 2: read by the op it sizes (sizes.py)
        entry = self.table.functions.get(t) if _hashable(t) else None
        if entry is not None:
            op, reader = entry
            self.read(node, entry, FunctionCall(node, reader.args), None)
        elif t is operator.getitem and isinstance(node.args[0], fx.Node) and node.args[0] in self.splits.chunks:
            self.splits.chunk_part(node)
        elif (t is getattr and node.args[1:] == ("shape",)) or (t is operator.getitem and _is_batch_size(node)):
            if not all(_feeds_flatten(u) for u in node.users):
                raise self.refuse(node, "the forward computes with a tensor's shape")
        elif t is operator.getitem or t is getattr:
            raise self.refuse(node, "indexing or attribute access on a traced value (a tuple output, a slice)")
        else:
            name = getattr(t, "__name__", str(t))
            raise self.refuse(
                node,
                f"no archspec op for function {getattr(t, '__module__', '') or ''}.{name}",
                hint="see docs/import.md for the functions archspec import knows",
            )

    def on_call_method(self, node: fx.Node) -> None:
        t = str(node.target)
        entry = self.table.methods.get(t)
        if per_channel(node) and all(_is_mul(u) for u in node.users):
            return  # gamma.reshape(1, -1, 1, 1) in x.mul(...): read with the product, a layer scale (read_mul)
        if entry is not None:
            self.read(node, entry, FunctionCall(node, entry[1].args), None)
        elif t == "size" and all(u.op == "call_method" and u.target in ("view", "reshape") for u in node.users):
            pass  # x.size(0) in x.view(x.size(0), -1): part of that flatten
        elif t == "size" and _only_sizes(node):
            pass  # x.size()[-2:]: read by the op it sizes (sizes.py)
        else:
            raise self.refuse(
                node, f"no archspec op for tensor method .{t}()", hint="see docs/import.md for the methods archspec import knows"
            )

    # ---- reading one op --------------------------------------------------------------------
    def read(self, node: fx.Node, entry: Entry, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """An op read by its registry entry; a structural form by ``read_<structural>``."""
        op, reader = entry
        if reader.structural is not None:
            method: Callable[[fx.Node, Op, ModuleCall | FunctionCall, str | None], None]
            name = "read_" + reader.structural
            method = next(getattr(o, name) for o in (self, self.splits, self.merges, self.rows, self.values) if hasattr(o, name))
            method(node, op, call, path)
            return
        try:
            read = op.read(call)
        except Unreadable as e:
            raise self.refuse(node, str(e)) from None
        if read is None and self.built:
            read = {f: call.get(f) for f in op.positional}
        if read is None:  # the form computes nothing (nn.Dropout(0.0)): its output is its input
            self.read_passthrough(node, op, call, path)  # with its channels last where they are (timm's Mlp)
            return
        params = {**read, **dict(reader.sets)}
        if self._on_channels_last(node, op):
            params["per_pixel"] = True  # a linear layer on each pixel's channels (ConvNeXt's MLP)
        self.add(node, op.name, params, path=path, stateful=op.stateful)

    def read_passthrough(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        self.value[node] = self.input(node, 0)
        if node.args and node.args[0] in self.channels_last:
            self.channels_last.add(node)

    def _on_channels_last(self, node: fx.Node, op: Op) -> bool:
        """Whether the op's input has its channels last (between permutes), which then its output has too:
        an op acting on the last axis (linear, layer_norm) acts on the channels, an elementwise one (an
        activation, dropout) on every value; any other op there is refused."""
        if not node.args or node.args[0] not in self.channels_last:
            return False
        if not (op.channels_last_on_maps or op.kind == "act" or op.name in ("dropout", "drop_path")):
            raise self.refuse(
                node,
                f"{op.name} on a map whose channels were permuted last; archspec reads linear, layer_norm "
                "and elementwise ops there",
            )
        self.channels_last.add(node)
        return op.name == "linear"

    def read_permute(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """x.permute(0, 2, 3, 1) and back: no op, but the ops between act on each pixel's channels."""
        dims = call.get("dims")
        if node.op == "call_method" and len(node.args) > 2:
            dims = node.args[1:]  # x.permute(0, 2, 3, 1)
        dims = list(dims) if isinstance(dims, (tuple, list)) else None
        src = node.args[0]
        last = src in self.channels_last
        if dims == [0, 2, 3, 1] and not last:
            self.channels_last.add(node)
        elif dims != [0, 3, 1, 2] or not last:
            raise self.refuse(node, f"permute({dims}); archspec reads a map's channels moved last (0, 2, 3, 1) and back")
        self.value[node] = self.input(node, 0)

    def read_last_axis(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """nn.Linear, nn.LayerNorm: over the last axis, so over a vector or over a map's channels moved last;
        a LayerNorm over a map's width is refused (a Linear on a map fails the spec's shape check)."""
        src = node.args[0] if node.args else None
        meta = src.meta.get("tensor_meta") if isinstance(src, fx.Node) else None
        rank = len(meta.shape) if meta is not None and hasattr(meta, "shape") else None
        if op.name == "layer_norm" and src not in self.channels_last and rank != 2:
            raise self.refuse(node, "a LayerNorm over the last axis of a map (its width); archspec normalises the channels")
        self.read(node, (op, Reader("")), call, path)

    def read_norm_act(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """timm's BatchNormAct2d (GroupNormAct): the norm, then its own activation (no dropout)."""
        self.read(node, (op, Reader("")), call, path)
        assert isinstance(call, ModuleCall)
        drop, act = call.get("drop"), call.get("act")
        if drop is not None and not isinstance(drop, nn.Identity):
            raise self.refuse(node, f"{type(call.module).__name__} with a dropout ({type(drop).__name__}) inside")
        if act is not None and not isinstance(act, nn.Identity):
            entry = self.table.modules.get(type(act))
            if entry is None or entry[0].kind != "act":
                raise self.refuse(node, f"{type(call.module).__name__} with activation {type(act).__name__}")
            try:
                params = entry[0].read(ModuleCall(act))
            except Unreadable as e:
                raise self.refuse(node, str(e)) from None
            if params is not None:
                made = self.add(node, entry[0].name, params, inputs=[self.value[node]])
                # computed by the module holding the norm (timm's ConvBnAct: conv, bn1 and its act): it closes that part
                self.prims[made].owner = (path or module_of(node) or "").rpartition(".")[0] or None

    def read_flatten(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        start, end = call.get("start_dim", 0 if node.op != "call_module" else 1), call.get("end_dim", -1)
        if (start, end) != (1, -1):
            raise self.refuse(node, f"flatten(start_dim={start}, end_dim={end}); archspec flattens C×H×W")
        self.flatten_or_pool(node, path)

    def read_view(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """x.view(x.size(0), -1) (or reshape): a flatten."""
        args = node.args
        if len(args) == 3 and args[2] == -1 and isinstance(args[1], fx.Node) and _is_batch_size(args[1]):
            self.flatten_or_pool(node, None)
        else:
            raise self.refuse(node, f"no archspec op for tensor method .{node.target}()", hint="see docs/import.md")

    def flatten_or_pool(self, node: fx.Node, path: str | None) -> None:
        src = self.input(node, 0)
        pool = src
        # dropout between the pool and the flatten (torchvision's Inception-v3) drops the same C values
        # (its batch size read for the view, facenet's x.view(x.shape[0], -1), is no second use)
        while self.prims[pool].op == "dropout" and len(_uses(self.fx_node[pool])) == 1:
            pool = self.prims[pool].inputs[0]
        p = self.prims[pool]
        # adaptive average pooling to 1×1, then flatten: one global_avgpool (a vector of C)
        if p.op == "adaptive_avgpool" and p.params["size"] == (1, 1) and len(self.fx_node[pool].users) == 1:
            p.op, p.params = "global_avgpool", {}
            self.value[node] = src
            return
        self.add(node, "flatten", path=path)


def _only_sizes(node: fx.Node) -> bool:
    """A size expression whose every use is another one, or an op that reads a value's size (an
    interpolation to its height and width, a crop at its centre): no op of its own."""
    for u in node.users:
        if is_size(u) and _only_sizes(u):
            continue
        if u.op == "call_function" and u.target is operator.getitem and isinstance(u.args[1], tuple):
            continue  # a slice's bounds: read as a crop, else refused there
        if any(size_of(a) is not None or sym(a) is not None for a in (*u.args, *u.kwargs.values())):
            if u.op == "call_function" and getattr(u.target, "__name__", "") == "interpolate":
                continue
        return False
    return True


def _uses(node: fx.Node) -> list[fx.Node]:
    """The nodes that read a value, but for reads of its batch size (x.shape[0], x.size(0))."""
    return [u for u in node.users if not _is_batch_size(u) and not _reads_shape(u)]


def _reads_shape(node: fx.Node) -> bool:
    """x.shape or x.size(), whose every use is its batch size."""
    shape = (node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",)) or (
        node.op == "call_method" and node.target == "size" and len(node.args) == 1
    )
    return shape and bool(node.users) and all(_is_batch_size(u) for u in node.users)


def _caller(node: fx.Node) -> str | None:
    """The module whose forward calls a module (the one before it in the call's module stack)."""
    stack = [path for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
    if stack and stack[-1] == str(node.target):
        stack = stack[:-1]
    return stack[-1] or None if stack else None


def _scales(node: fx.Node) -> bool:
    """A product of a map and a tensor attribute: x * t, or archspec's own scale_channels(x, t) (`layer_scale flat`)
    and weighted_sum(x, w, ...) (`weighted_sum K`), each an op at the tensor's path."""
    from archspec.runtime import scale_channels, weighted_sum

    return _is_mul(node) or (node.op == "call_function" and node.target in (scale_channels, weighted_sum))


def _is_mul(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in (operator.mul, operator.imul, torch.mul)) or (
        node.op == "call_method" and node.target in ("mul", "mul_")
    )


def _hashable(t: Any) -> bool:
    try:
        hash(t)
    except TypeError:
        return False
    return True


def _is_batch_size(node: fx.Node) -> bool:
    """x.size(0) or x.shape[0]."""
    if node.op == "call_method" and node.target == "size":
        return node.args[1:] == (0,)
    return (
        node.op == "call_function"
        and node.target is operator.getitem
        and node.args[1:] == (0,)
        and isinstance(node.args[0], fx.Node)
        and node.args[0].op == "call_function"
        and node.args[0].target is getattr
        and node.args[0].args[1:] == ("shape",)
    )


def _feeds_flatten(node: fx.Node) -> bool:
    """A use of x.shape / x.shape[0] that is part of x.view(x.shape[0], -1)."""
    if node.op == "call_function" and node.target is operator.getitem:
        return bool(_is_batch_size(node)) and all(_feeds_flatten(u) for u in node.users)
    return bool(node.op == "call_method" and node.target in ("view", "reshape") and len(node.args) == 3 and node.args[2] == -1)


def fuse_composites(prims: list[Prim], output: int) -> None:
    """conv2d at X.conv → bn at X.bn (→ activation) becomes one composite `conv` at X, in place.

    Each link must be the only reader of the previous op's output. The fused prims keep their
    ids; the bn and activation become pass-throughs (op ``pass``) of the composite.
    """
    users: dict[int, list[int]] = {p.id: [] for p in prims}
    for p in prims:
        for i in p.inputs:
            users[i].append(p.id)
    shared = {p.of.id for p in prims if p.of is not None}  # a module called again stays one op: `share:` names it
    for conv in prims:
        if conv.op != "conv2d" or not conv.path or not conv.path.endswith(".conv") or len(users[conv.id]) != 1:
            continue
        if conv.id in shared or users[conv.id][0] in shared:
            continue
        if conv.id != output:
            _fuse(prims, users, conv, output)


def _fuse(prims: list[Prim], users: dict[int, list[int]], conv: Prim, output: int) -> None:
    assert conv.path is not None
    base = conv.path[: -len(".conv")]
    bn = prims[users[conv.id][0]]
    if bn.op == "bn" and bn.path == base + ".bn" and bn.params["affine"]:
        norm: Prim | None = bn
    elif _act_text(bn) is not None and bn.path is not None and bn.path.startswith(base + "."):
        norm = None  # conv → activation, no BatchNorm: archspec's `conv ... no_bn` (a network it built)
    else:
        return
    act, last = "none", norm
    after = users[norm.id] if norm is not None else [users[conv.id][0]]
    end = norm.id if norm is not None else conv.id
    if (
        len(after) == 1
        and end != output
        and _act_text(prims[after[0]]) is not None  # leaky_relu 0.1 too: act=leaky_relu(0.1)
        and (prims[after[0]].path is None or str(prims[after[0]].path).startswith(base + "."))
    ):
        last = prims[after[0]]
        act = _act_text(last) or "none"
    params = dict(conv.params)
    if norm is not None:
        params.update(bn=True, eps=norm.params["eps"], momentum=norm.params["momentum"], act=act)
    else:
        params.update(bn=False, act=act)  # no BatchNorm: its eps and momentum are the defaults, unused
    conv.op, conv.params, conv.path = "conv", params, base
    for index in {x.id for x in (norm, last) if x is not None}:
        prims[index].op, prims[index].params, prims[index].path, prims[index].stateful = "pass", {}, None, False


def _act_text(prim: Prim) -> str | None:
    """A composite conv's `act=` for an activation prim (``leaky_relu(0.1)``); None for another op, or an
    activation `act=` cannot say (prelu per_channel)."""
    return act_text(prim.op, prim.params) if prim.op in ACTIVATIONS else None


__all__ = ["ACTIVATIONS", "Converter", "FunctionCall", "ModuleCall", "Readers", "fuse_composites", "readers", "resolve"]
