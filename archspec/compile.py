"""OpGraph (with shapes) → torch.nn.Module whose forward is straight-line torch.fx code.

The module tree is built from the nodes' module paths, so state_dict keys are exactly the
paths the spec names (``features.6.branch1.0.conv.weight``). Stateless ops become calls of
torch functions in the generated code. A network with auxiliary heads gets two generated
functions over the same modules: training mode returns a dict of all outputs, eval mode
computes and returns the main output alone.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
from typing import Any, cast

import networkx as nx
import torch
import torch.fx as fx
import torch.nn as nn

from archspec import runtime
from archspec.features import output_info
from archspec.frozen import is_frozen
from archspec.fxsource import Recorder, Unwritable, Value, lazy_graph_module
from archspec.initialize import SkipInit, initialize
from archspec.inplace import in_place_target
from archspec.ir import INPUT, OpGraph
from archspec.ops import REGISTRY, Op
from archspec.shapes import accepted
from archspec.sizes import Accepted


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent = root
    *parents, leaf = path.split(".")
    for part in parents:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(leaf, module)


def _set_parameter(root: nn.Module, path: str, tensor: torch.Tensor) -> None:
    """Register ``tensor`` as an ``nn.Parameter`` of the module above ``path`` (containers made as needed)."""
    parent_path, _, leaf = path.rpartition(".")
    if parent_path:
        try:
            parent = root.get_submodule(parent_path)
        except AttributeError:
            _set_module(root, parent_path, nn.Module())
            parent = root.get_submodule(parent_path)
    else:
        parent = root
    parent.register_parameter(leaf, nn.Parameter(tensor))


def build_modules(graph: OpGraph, device: str = "cpu", initialized: set[int] | None = None) -> tuple[nn.Module, dict[str, str]]:
    """The module tree, its tensors allocated on ``device`` but not initialised (see :func:`initialize`).

    Returns the tree and, for each node that calls a module, that module's path. With ``initialized``,
    a layer whose constructor sets constant values (a norm's γ=1, β=0, statistics; ``Op.constant_init``)
    is copied with its prototype's values instead, and its id added there (``initialize`` skips it).
    """
    root = nn.Module()
    targets: dict[str, str] = {}
    taken: set[str] = set()
    defaults = (torch.get_default_dtype(), torch.get_default_device())  # what a constructor's tensors take
    nodes = [n for n in graph.ordered() if graph.at(n).op != INPUT]
    for node in nodes:
        record = graph.at(node)
        op = REGISTRY[record.op]
        if record.shares is not None and (op.parameter_only or op.stateful):  # a `share:`: the original's module
            targets[node] = record.path
        elif op.parameter_only:  # one tensor, not a module: it starts at the op's value, here
            preds = [graph.at(p).out for p in graph.inputs_of(node)]
            shape, value = op.parameter(record.params, preds, record.out)
            _set_parameter(root, record.path, torch.full(shape, value, device=device))
            targets[node] = record.path
            taken.add(record.path)
        elif op.stateful:
            preds = [graph.at(p).out for p in graph.inputs_of(node)]
            # a layer depends on its shapes' channels and rank only, never on the input size
            key = (op, type(op).module, record.params, defaults, *((s.channels, s.is_map) for s in [*preds, record.out]))
            proto, owned = _PROTOTYPES.get(key) or _prototype(key, op, record.params, preds, record.out)
            with_values = initialized is not None and op.constant_init and device == "cpu" and owned is not None
            if owned is not None:
                module = _instantiate(proto, owned, device, with_values)
            else:
                module = copy.deepcopy(proto).to_empty(device=device)
            if with_values:
                initialized.add(id(module))  # type: ignore[union-attr]
            _set_module(root, record.path, module)
            targets[node] = record.path
            taken.add(record.path)
    # Stateless modules (dropout) after every layer is placed: a module so that model.train()/eval()
    # switches it. It holds no state, so when a layer already has its path (unnamed nested lists
    # restart at 0) it takes a free name instead of replacing that layer.
    for node in nodes:
        record = graph.at(node)
        op = REGISTRY[record.op]
        if op.train_module or op.stateless_module:
            path = record.path or op.name
            if any(".".join(path.split(".")[:i]) in taken for i in range(1, path.count(".") + 1)):
                path = path.replace(".", "_")  # under a layer (c.0 beside layer c): never a child of that layer
            base, n = path, 1
            while path in taken or _occupied(root, path):
                n += 1
                path = f"{base}_{n}"
            _set_module(root, path, op.train_module_of(record.params))
            targets[node] = path
            taken.add(path)
    return root, targets


# Each distinct layer's prototype (op and its constructor, parameters, torch's default dtype and device,
# channels and rank of its inputs and output) → the layer and, for a plain one, the attributes each copy
# must own (see _owned). Kept across builds, as a Python module's compiled code is: a prototype is never
# changed (only copied), and rebuilding a network or building a sweep's variants meets the same layers
# again. Bounded: the oldest go.
_PROTOTYPES: dict[tuple[Any, ...], tuple[nn.Module, tuple[str, ...] | None]] = {}
MAX_PROTOTYPES = 2048


def _prototype(key: tuple[Any, ...], op: Op, params: Any, preds: list[Any], out: Any) -> tuple[nn.Module, tuple[str, ...] | None]:
    if op.constant_init:  # its tensors are copied anew from these: where the prototype's live is moot
        proto = op.module(params, preds, out)
    else:
        with SkipInit():
            proto = op.module(params, preds, out, device="meta")
    # a plain layer keeps all its tensors in its registries and has no children
    plain = not proto._modules and not any(isinstance(v, torch.Tensor) for v in vars(proto).values())
    entry = _PROTOTYPES[key] = proto, _owned(proto) if plain else None
    while len(_PROTOTYPES) > MAX_PROTOTYPES:
        _PROTOTYPES.pop(next(iter(_PROTOTYPES)), None)
    return entry


def _owned(proto: nn.Module) -> tuple[str, ...]:
    """The attributes of ``proto`` that each copy must own: its registries and hook tables (dicts, sets, lists)."""
    return tuple(k for k, v in vars(proto).items() if isinstance(v, (dict, list, set)))


def _instantiate(proto: nn.Module, owned: tuple[str, ...], device: str, values: bool = False) -> nn.Module:
    """A new layer equal to the plain layer ``proto`` (built on ``meta``), with fresh uninitialised tensors
    (with ``values``: copies of the prototype's, which is then on the CPU).

    Building a zoo network makes hundreds of layers out of a few dozen distinct ones, and
    ``nn.Module.__init__`` with its per-attribute bookkeeping costs several times this copy:
    the object's dict is copied one level deep (so the registries and hooks named in ``owned``
    are its own) and every parameter and buffer is a new tensor on ``device``.
    """
    source = vars(proto)
    state = source.copy()
    for k in owned:  # (a third of the time of testing every value's type again, per layer)
        state[k] = source[k].copy()
    params, buffers = state["_parameters"], state["_buffers"]
    for name, p in params.items():
        if p is not None:
            tensor = p.detach().clone() if values else torch.empty(p.shape, dtype=p.dtype, device=device)
            params[name] = nn.Parameter(tensor, p.requires_grad)
    for name, b in buffers.items():
        if b is not None:
            buffers[name] = b.clone() if values else torch.empty(b.shape, dtype=b.dtype, device=device)
    module = proto.__class__.__new__(proto.__class__)
    module.__dict__.update(state)
    return module


def _occupied(root: nn.Module, path: str) -> bool:
    """A module, or a tensor a module holds (a layer scale), has this path."""
    try:
        root.get_submodule(path)
        return True
    except AttributeError:
        parent, _, leaf = path.rpartition(".")
        try:
            return leaf in root.get_submodule(parent)._parameters
        except AttributeError:
            return False


def _stays_channels_last(graph: OpGraph, node: str, results: set[str]) -> bool:
    """Whether every reader of a per-pixel layer's value runs channels-last itself (another per-pixel layer,
    or an activation read only by such layers: ConvNeXt's Linear → GELU → Linear), so its layout is
    never seen by anything else and needs no copy."""

    def per_pixel(n: str) -> bool:
        return REGISTRY[graph.at(n).op].channels_last_on_maps

    if node in results:
        return False
    for s in graph.succ[node]:
        if per_pixel(s):
            continue
        if (
            REGISTRY[graph.at(s).op].kind != "act"
            or s in results
            or not graph.succ[s]
            or not all(per_pixel(t) for t in graph.succ[s])
        ):
            return False
    return True


def _channels_first(g: Recorder, node: str, x: Value) -> Value:
    """A channels-first copy of ``x`` for ``node``'s kernel (a part of its op, as the per-pixel permutes are)."""
    copy = g.call_method("contiguous", (x,))
    copy.meta.update(archspec_node=node, archspec_part=True)
    return copy


def _accepted(graph: OpGraph, outputs: list[str]) -> Accepted:
    """The sizes shapes.py found for eval (the main output) or training (every output); others worked out."""
    net = graph.net
    if outputs == list(net.main_outputs().values()):
        return net.accepted
    if set(outputs) == set(net.outputs.values()):
        return net.train_accepted
    return accepted(graph, outputs)


def _call(g: Recorder, op: Op, params: Any, args: tuple[Value, ...], i: int | None, name: str) -> Value:
    """A stateless op's call, named ``name``: its function over the inputs, or its in-place form overwriting
    input ``i`` (``in_place_target`` asked the op which input that is)."""
    fn, kwargs = op.function(params)
    call_args: tuple[Any, ...] = args
    first = op.in_place_input(params) if i is None else i
    if op.variadic:
        call_args = (list(args),)  # one argument: the list of inputs
    elif first is not None:
        # the operand the in-place form overwrites comes first in either form, so the result takes its memory
        # layout (torch's elementwise ops follow their first operand): a residual sum is body + shortcut, as
        # torchvision's ``result += input``; the same numbers (a sum of two is exact whichever comes first)
        call_args = (args[first], *args[:first], *args[first + 1 :])  # with the function's keywords
        if i is not None:
            in_place = op.in_place(params)
            assert in_place is not None  # in_place_target found the op's in-place form
            fn = in_place
    if getattr(torch.Tensor, getattr(fn, "__name__", ""), None) is fn:  # a Tensor method: x.add_(y)
        return g.create_node("call_method", fn.__name__, call_args, kwargs, name)  # (TorchScript cannot call Tensor.add_)
    return g.create_node("call_function", fn, call_args, kwargs, name)


def _per_pixel_call(
    g: Recorder,
    graph: OpGraph,
    node: str,
    args: tuple[Value, ...],
    target: str,
    users: dict[str, int],
    results: set[str],
    channels_last: set[Value],
) -> Value:
    """A layer acting on the last axis (``channels_last_on_maps``) called on a C×H×W map; ``channels_last``
    gains its result when that stays channels-last for readers other than such layers."""
    record = graph.at(node)
    src = graph.inputs_of(node)[0]
    if (
        args[0].meta.get("archspec_channels_first")
        # the permute is src's own (not reached through an identity, whose input may have other readers)
        and args[0].meta.get("archspec_node") == src
        and users[src] == 1
        and src not in results
        and graph.at(src).blocks == record.blocks
    ):
        last = cast(Value, args[0].args[0])  # the previous layer's channels-last output: the permutes cancel
        g.erase_node(args[0])  # (its permute back, never copied: src is not returned)
    else:
        last = g.create_node("call_method", "permute", (args[0], [0, 2, 3, 1]), name=f"{node}_channels_last")
    layer = g.create_node("call_module", target, (last, *args[1:]), name=f"{node}_layer")
    last.meta.update(archspec_node=node, archspec_part=True)
    layer.meta.update(archspec_node=node, archspec_part=True)
    result = g.call_method("permute", (layer, [0, 3, 1, 2]))
    if node in results:  # handed back channels-first
        result.meta.update(archspec_node=node, archspec_part=True)
        result = g.call_method("contiguous", (result,))
    elif not _stays_channels_last(graph, node, results):
        # no copy back to channels-first: later convs and sums take this layout and keep it, as in
        # torchvision's ConvNeXt (its LayerNorm2d and blocks' permutes), whose blocks run channels-last
        result.meta["archspec_channels_last"] = True  # (export copies it, see export.channels_first)
        channels_last.add(result)
    result.meta.update(archspec_channels_first=True, archspec_part=True)
    return result


def build_fx_graph(graph: OpGraph, targets: dict[str, str], outputs: dict[str, str]) -> fx.Graph:
    """Straight-line code computing ``outputs`` (name → node); a dict when there are several."""
    return record_forward(graph, targets, outputs).to_fx()


def record_forward(graph: OpGraph, targets: dict[str, str], outputs: dict[str, str]) -> Recorder:
    """:func:`build_fx_graph`'s nodes, recorded (archspec/fxsource.py) to write its code or build it later."""
    needed: set[str] = set()
    for out in outputs.values():
        needed |= nx.ancestors(graph, out) | {out}
    g = Recorder()
    env: dict[str, Value] = {}
    succ = graph._succ  # (networkx's own adjacency dicts: graph.succ[n] makes a view per call)
    users = {n: sum(1 for s in succ[n] if s in needed) for n in needed}
    results = set(outputs.values())
    spec_input = graph.net.input
    sizes = _accepted(graph, list(outputs.values()))  # the input sizes at which these outputs can be computed
    bounds = sizes.min_size + sizes.guard_args()
    channels_last: set[Value] = set()  # values that may be channels-last (see _stays_channels_last)
    for node in graph.ordered():
        if node not in needed:
            continue
        record = graph.at(node)
        if record.op == INPUT:
            x = g.placeholder("x")
            env[node] = g.call_function(runtime.check_input, (x, spec_input.channels, *bounds))
            env[node].meta["archspec_node"] = node
            continue
        op = REGISTRY[record.op]
        args = tuple(env[p] for p in graph.inputs_of(node))
        per_pixel = node in targets and op.channels_last_on_maps and graph.at(graph.inputs_of(node)[0]).out.is_map
        from_channels_last = not per_pixel and any(a in channels_last for a in args)
        if from_channels_last and op.channels_first_input:
            args = (_channels_first(g, node, args[0]), *args[1:])
        if node in targets and op.parameter_only:  # x · the tensor at the op's path
            tensor = g.create_node("get_attr", targets[node], name=f"{node}_tensor")
            tensor.meta.update(archspec_node=node, archspec_part=True)
            fn, kwargs = op.function(record.params)
            result = g.create_node("call_function", fn, (*args, tensor), kwargs, node)
        elif per_pixel:
            result = _per_pixel_call(g, graph, node, args, targets[node], users, results, channels_last)
        elif node in targets:
            result = g.create_node("call_module", targets[node], args, name=node)
        elif op.passthrough:
            env[node] = args[0]
            continue
        else:
            result = _call(g, op, record.params, args, in_place_target(graph, node, users, results), node)
        if from_channels_last:
            channels_last.add(result)
        if result.name != node:  # readable names in model.code, fx's code generation uniquifies them if needed
            result.name = node  # (named at creation where it can be: renaming a node costs more than creating it)
        result.meta["archspec_node"] = node  # the OpGraph node, for later stages (codegen)
        env[node] = result
    if len(outputs) == 1 and not (graph.net.named_outputs and set(outputs) <= set(graph.net.main)):
        g.output(env[next(iter(outputs.values()))])
    else:
        g.output({name: env[n] for name, n in outputs.items()})
    return g


# The forward recorded for each graph compiled lately: a graph that archspec/memo.py keeps is compiled
# again by every rebuild, into the same record (its module paths are the graph's). A record is never
# changed once made (its forwards only read it), so the models built from one graph share it. Keyed by
# the graph's identity, the graph held with it (its id is not reused meanwhile); bounded: the oldest go.
_RECORDS: dict[int, tuple[OpGraph, int, dict[str, str], dict[str, str], Recorder]] = {}
MAX_RECORDS = 32


def _recorded(graph: OpGraph, targets: dict[str, str], outputs: dict[str, str]) -> Recorder:
    """:func:`record_forward`'s record, made once per graph, its module paths and outputs."""
    hit = _RECORDS.get(id(graph))
    if hit is not None and hit[0] is graph and hit[1:4] == (len(graph), targets, outputs):
        return hit[4]
    record = record_forward(graph, targets, outputs)
    _RECORDS[id(graph)] = (graph, len(graph), dict(targets), dict(outputs), record)
    while len(_RECORDS) > MAX_RECORDS:
        _RECORDS.pop(next(iter(_RECORDS)), None)
    return record


class AuxModel(nn.Module):
    """A network with auxiliary heads: train mode returns every output in a dict, eval mode the main one.

    Both modes run straight-line generated code; the two GraphModules share this module's children,
    so the state_dict has the spec's paths and nothing else.
    """

    def __init__(
        self, root: nn.Module, train_graph: fx.Graph, eval_graph: fx.Graph, name: str, aux_weights: dict[str, float]
    ) -> None:
        super().__init__()
        for child_name, child in root.named_children():
            self.add_module(child_name, child)
        for tensor_name, tensor in root._parameters.items():  # a layer scale at the top level
            self.register_parameter(tensor_name, tensor)
        self._train_gm: fx.GraphModule
        self._eval_gm: fx.GraphModule
        object.__setattr__(self, "_train_gm", fx.GraphModule(self, train_graph, class_name=name + "Train"))
        object.__setattr__(self, "_eval_gm", fx.GraphModule(self, eval_graph, class_name=name))
        self.aux_weights = dict(aux_weights)
        self._archspec_class = name

    def _get_name(self) -> str:  # print(model) names the network, as the GraphModule of one without aux heads does
        return self._archspec_class

    def forward(self, x: torch.Tensor) -> Any:
        return self._train_gm(x) if self.training else self._eval_gm(x)

    def inference(self) -> fx.GraphModule:
        """The eval-mode network alone (main output; shares this module's layers), e.g. for export."""
        return self._eval_gm

    @property
    def code(self) -> str:
        return self._eval_gm.code

    @property
    def train_code(self) -> str:
        return self._train_gm.code


@functools.lru_cache(maxsize=1024)
def class_name_of(spec_name: str) -> str:
    """The Python class name of a spec's network: CamelCase of its name (inception_v4 → InceptionV4)."""
    return "".join(p.capitalize() for p in spec_name.split("_")) or "Network"


def init_schemes(graph: OpGraph) -> dict[str, Any]:
    """Module path → the ``init:`` scheme of its op: a module-path pattern that matches it (the most
    specific), else its op name; each looked up in the innermost block's table first, the spec's last."""
    tables = graph.net.init
    schemes: dict[str, Any] = {}
    for _, record in graph.records():
        if record.op == INPUT or not REGISTRY[record.op].stateful or REGISTRY[record.op].parameter_only:
            continue  # a layer scale starts at the value its op gives
        chain = [tables.get(name, {}) for name, _ in reversed(record.blocks)] + [tables.get("", {})]
        patterns = (
            s for t in chain for key, s in t.items() if ("." in key or "*" in key) and fnmatch.fnmatchcase(record.path, key)
        )
        scheme = next(patterns, None) or next((t[record.op] for t in chain if record.op in t), None)
        if scheme is not None:
            schemes[record.path] = scheme
    return schemes


def name_containers(model: nn.Module, graph: OpGraph) -> None:
    """Make each plain container of the built model a :class:`runtime.Container` named for what it is
    (its block's class name, else ``Sequential``), in place: same children, tensors and state."""
    blocks: dict[str, str] = {}  # instance path → its block's class name (an inner block at the same path wins)
    last: tuple[tuple[str, str], ...] | None = None
    for _, r in graph.records():
        if r.blocks != last:  # (the ops of one block instance in a row name the same instances again)
            last = r.blocks
            for name, path in r.blocks:
                blocks[path] = class_name_of(name)

    def visit(parent: nn.Module, prefix: str) -> None:
        for key, child in list(parent._modules.items()):
            if child is None:
                continue
            path = f"{prefix}.{key}" if prefix else key
            if type(child) is nn.Module:  # the same object, its class made Container: no second module built
                child.__class__ = runtime.Container  # (a Container holds nothing more than its name)
                object.__setattr__(child, "_archspec_class", blocks.get(path, "Sequential"))  # a plain attribute
            if isinstance(child, runtime.Container):
                visit(child, path)

    visit(model, "")


def _graph_module(root: nn.Module, record: Recorder, class_name: str) -> fx.GraphModule:
    """``fx.GraphModule(root, record.to_fx())``, the same module, made faster in two ways.

    torch.fx copies each container on the way to every module the graph calls into new ``nn.Module``
    objects; here the GraphModule adopts ``root``'s containers themselves, their children put in the
    order the graph first calls them (the order fx's copy has). Where ``root`` holds something the
    graph never reads (fx's copy would leave it out), fx makes its copy as before. And the forward's
    code is written from the record, the fx graph built only when something reads it
    (archspec/fxsource.py), unless the record holds what that writer leaves to fx."""
    if not _order_as_called(root, record.nodes):
        return fx.GraphModule(root, record.to_fx(), class_name=class_name)
    try:
        gm: fx.GraphModule = lazy_graph_module(record, class_name)
    except Unwritable:
        empty = fx.Graph()
        empty.output(None)
        gm = fx.GraphModule(nn.Module(), empty, class_name=class_name)
        gm.graph = record.to_fx()  # generates and compiles the forward
    for name, child in root._modules.items():
        gm.add_module(name, child)
    for name, tensor in root._parameters.items():  # a layer scale at the top level
        gm.register_parameter(name, tensor)
    return gm


def _order_as_called(root: nn.Module, nodes: list[Value]) -> bool:
    """Put every container's children in the order ``nodes`` first read them (the module or tensor at
    each ``call_module``/``get_attr`` target); False, changing nothing, when ``root`` holds a module
    or tensor that the graph never reads, or a buffer."""
    seen: dict[int, tuple[nn.Module, dict[str, None], dict[str, None]]] = {id(root): (root, {}, {})}
    for node in nodes:
        if node.op not in ("call_module", "get_attr"):
            continue
        parent = root
        *parts, leaf = node.target.split(".")
        for part in parts:
            entry = seen.get(id(parent)) or seen.setdefault(id(parent), (parent, {}, {}))
            entry[1][part] = None
            parent = parent._modules[part]  # type: ignore[assignment]
        entry = seen.get(id(parent)) or seen.setdefault(id(parent), (parent, {}, {}))
        (entry[1] if leaf in parent._modules else entry[2])[leaf] = None
    for container, children, tensors in seen.values():
        if len(children) != len(container._modules) or len(tensors) != len(container._parameters) or container._buffers:
            return False
    for container, children, _ in seen.values():  # (container → its children, and tensors, as read)
        modules = container._modules
        if list(children) != list(modules):
            ordered = [(k, modules[k]) for k in children]
            modules.clear()
            modules.update(ordered)
    return True


def compile_graph(graph: OpGraph) -> nn.Module:
    copied: set[int] = set()  # the norm layers, copied with their constant starting values
    root, targets = build_modules(graph, initialized=copied)  # else uninitialised: initialize() fills each tensor once
    # Not overlapped with the code generation below: the drawing threads need the GIL between
    # tensors, and a busy main thread would hold them up for longer than the overlap saves.
    initialize(root, init_schemes(graph), copied)
    if graph.net.frozen:  # (the spec's frozen:) after initialising: the draws set every tensor alike
        for name, p in root.named_parameters():
            if is_frozen(name, graph.net.frozen):
                p.requires_grad_(False)
    outputs = graph.net.outputs
    class_name = class_name_of(graph.net.name)
    main = graph.net.main_outputs()
    if len(outputs) == len(main):
        model: nn.Module = _graph_module(root, _recorded(graph, targets, main), class_name)
    else:
        eval_graph, train_graph = build_fx_graph(graph, targets, main), build_fx_graph(graph, targets, outputs)
        model = AuxModel(root, train_graph, eval_graph, class_name, graph.net.aux_weights)
        # modules used only by the aux heads must be owned too
    name_containers(model, graph)
    if graph.net.named_outputs:
        object.__setattr__(model, "feature_info", output_info(graph))  # not a module or tensor: a plain attribute
    return model
