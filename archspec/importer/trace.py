"""Trace a PyTorch module with torch.fx and turn its graph into archspec's primitive ops.

Every fx node becomes a :class:`Prim` (an archspec op with its parameters and, for a module
call, its module path), or is passed through (``Identity``, ``contiguous``), or is refused
with an :class:`ImportRefused` naming the fx node, the module path and the source line.
BatchNorm modules (timm's BatchNormAct2d included) are leaves, so timm's norm+act layers are
one module each; conv → bn → act triples named ``X.conv`` / ``X.bn`` become one composite
``conv`` op at ``X``, the form archspec's ``conv`` has.
"""

from __future__ import annotations

import keyword
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from archspec.errors import Loc, SpecError

ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.SiLU: "silu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.GELU: "gelu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
}
ACT_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    torch.relu_: "relu",
    F.relu_: "relu",
    F.relu6: "relu6",
    F.silu: "silu",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.gelu: "gelu",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
}
ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "tanh": "tanh", "tanh_": "tanh"}
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def is_drop_path(m: nn.Module) -> bool:
    """Per-sample stochastic depth that draws as archspec's drop_path does: its own DropPath, and
    torchvision's StochasticDepth in "row" mode (one draw per sample); the "batch" mode is not it."""
    from archspec.runtime import DropPath

    if type(m) is DropPath:
        return True
    return (
        type(m).__name__ == "StochasticDepth"
        and type(m).__module__.startswith("torchvision.")
        and getattr(m, "mode", None) == "row"
    )


class ImportRefused(SpecError):
    """A module archspec cannot express as a spec; located at the source line when torch knows it."""

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        module: str | None = None,
        source: tuple[str, int] | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if node:
            where.append(f"fx node {node!r}")
        if module:
            where.append(f"module {module!r}")
        if where:
            message = f"{message} ({', '.join(where)})"
        loc = Loc(source[0], source[1], 0) if source else Loc("<module>", 0, 0)
        super().__init__(message, loc, code="import", hint=hint)
        self.node, self.module = node, module


@dataclass
class Prim:
    """One archspec op in the traced dataflow graph."""

    id: int
    op: str  # an archspec op name, or input / concat / add / scale
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # module path (a module call used once), for names
    inputs: list[int] = field(default_factory=list)
    node: str = ""  # the fx node's name, for messages
    stateful: bool = False  # has weights or buffers: its path must be reproduced
    source: tuple[str, int] | None = None  # the source line that made it, when torch knows it
    spec_path: str | None = None  # a network archspec built: the stateless op's path in its spec
    owner: str | None = None  # the module whose forward computes a function call (places a pathless op)


def _source_of(node: fx.Node) -> tuple[str, int] | None:
    """The innermost frame of the node's stack trace outside torch: the model's source line."""
    best = None
    for m in _FRAME.finditer(node.stack_trace or ""):
        if "/torch/" not in m.group(1) and "archspec/importer" not in m.group(1):
            best = (m.group(1), int(m.group(2)))
    return best


def _module_of(node: fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if stack:
        return list(stack.values())[-1][0] or None
    return str(node.target) if node.op == "call_module" else None


def _leaf_functions() -> tuple[Any, ...]:
    """Functions traced as one call: torchvision's ShuffleNet channel_shuffle (it computes with x.size())."""
    try:
        from torchvision.models.shufflenetv2 import channel_shuffle
    except ImportError:  # pragma: no cover - torchvision is optional
        return ()
    return (channel_shuffle,)


class _Tracer(fx.Tracer):
    def __init__(self) -> None:
        super().__init__(autowrap_functions=_leaf_functions())
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, nn.modules.batchnorm._BatchNorm) or is_drop_path(m) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure becomes one located message
        frames = [
            (f.filename, f.lineno)
            for f in _frames(e.__traceback__)
            if "/torch/" not in f.filename and "archspec/importer" not in f.filename
        ]
        module = next(reversed(tracer.module_stack), None) if getattr(tracer, "module_stack", None) else None
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImportRefused(
            f"torch.fx cannot trace the module: {what}",
            module=module or None,
            source=frames[-1] if frames else None,
            hint="Python control flow on tensor values (if x.sum() > 0, loops over sizes) "
            "has no branch-graph form; make it depend on constructor arguments only",
        ) from None
    try:
        return fx.GraphModule(tracer.root, graph)
    except SyntaxError:  # fx writes attribute names into Python code: `self.class`, `self.stem x`
        bad = next(
            (t for t in _targets(graph) if not all(s.isidentifier() and not keyword.iskeyword(s) for s in t.split("."))), None
        )
        raise ImportRefused(
            f"torch.fx cannot write the module's code: the attribute name {bad!r} is not a Python name",
            module=bad,
            hint="rename the attribute to a Python identifier that is not a keyword (e.g. stem_x, class_)",
        ) from None


def _targets(graph: fx.Graph) -> list[str]:
    """The module and attribute paths a traced graph reads (numbered children, nn.Sequential's, aside)."""
    paths = [str(n.target) for n in graph.nodes if n.op in ("call_module", "get_attr")]
    return [".".join(s for s in p.split(".") if not s.isdigit()) for p in paths]


def _frames(tb: Any) -> list[Any]:
    import traceback

    return list(traceback.extract_tb(tb))


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def _arg(node: fx.Node, i: int, name: str, default: Any) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


class Converter:
    """fx graph → Prims, in topological order."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.prims: list[Prim] = []
        self.value: dict[fx.Node, int] = {}  # fx node → prim id (a pass-through maps to its input's)
        self.calls: dict[str, int] = {}
        for n in gm.graph.nodes:
            if n.op == "call_module":
                self.calls[n.target] = self.calls.get(n.target, 0) + 1
        self.output: int | None = None
        self.fx_node: dict[int, fx.Node] = {}
        self.chunks: dict[fx.Node, tuple[fx.Node, int]] = {}  # x.chunk(n, 1): its input and n

    def refuse(self, node: fx.Node, message: str, hint: str | None = None) -> ImportRefused:
        return ImportRefused(message, node=node.name, module=_module_of(node), source=_source_of(node), hint=hint)

    def add(
        self,
        node: fx.Node,
        op: str,
        params: dict[str, Any] | None = None,
        inputs: list[int] | None = None,
        path: str | None = None,
        stateful: bool = False,
    ) -> int:
        prim = Prim(
            len(self.prims),
            op,
            params or {},
            path,
            inputs if inputs is not None else [self.input(node, 0)],
            node.name,
            stateful,
            _source_of(node),
        )
        if node.op != "call_module":
            prim.owner = _module_of(node)
        self.prims.append(prim)
        self.value[node] = prim.id
        self.fx_node[prim.id] = node
        return prim.id

    def input(self, node: fx.Node, i: int) -> int:
        arg = node.args[i] if i < len(node.args) else None
        if not isinstance(arg, fx.Node) or arg not in self.value:
            raise self.refuse(node, f"argument {i} is not a tensor this importer follows ({type(arg).__name__})")
        return self.value[arg]

    def run(self) -> list[Prim]:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if self.prims and not node.users:
                    continue  # an optional argument the forward does not use
                if self.prims:
                    raise self.refuse(node, "the module takes more than one input; a spec has one image input")
                self.prims.append(Prim(0, "input", node=node.name))
                self.value[node] = 0
            elif node.op == "call_module":
                self.module(node)
            elif node.op == "call_function":
                self.function(node)
            elif node.op == "call_method":
                self.method(node)
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, fx.Node) or out not in self.value:
                    raise self.refuse(
                        node,
                        "the module returns something other than one tensor (a tuple, a dict)",
                        hint="import the model in the form that returns the logits alone (e.g. without auxiliary heads)",
                    )
                self.output = self.value[out]
            elif node.op == "get_attr":
                if node.users:
                    raise self.refuse(
                        node, f"the forward reads the tensor attribute {node.target!r} directly; archspec ops own their tensors"
                    )
        return self.prims

    # ---- modules ---------------------------------------------------------------------------
    def module(self, node: fx.Node) -> None:
        target = str(node.target)
        m = self.modules[target]
        path = target if self.calls[target] == 1 else None
        named = path
        if isinstance(m, nn.Identity):
            self.value[node] = self.input(node, 0)
        elif type(m) is nn.Conv2d:
            self.conv(node, m, path)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m).__name__ in (
            "BatchNorm2d",
            "BatchNorm1d",
            "BatchNormAct2d",
        ):
            self.batchnorm(node, m, path)
        elif type(m) in ACTIVATIONS:
            if isinstance(m, nn.GELU) and m.approximate != "none":
                raise self.refuse(node, "GELU with approximate='tanh'; archspec's gelu is exact")
            self.add(node, ACTIVATIONS[type(m)], path=named)
        elif type(m) is nn.MaxPool2d:
            if m.return_indices or _pair(m.dilation) != (1, 1):
                raise self.refuse(node, "MaxPool2d with dilation or return_indices")
            self.add(
                node,
                "maxpool",
                {
                    "kernel": _pair(m.kernel_size),
                    "stride": _pair(m.stride or m.kernel_size),
                    "padding": _pair(m.padding),
                    "ceil": bool(m.ceil_mode),
                },
                path=named,
            )
        elif type(m) is nn.AvgPool2d:
            if m.divisor_override is not None:
                raise self.refuse(node, "AvgPool2d with divisor_override")
            self.add(
                node,
                "avgpool",
                {
                    "kernel": _pair(m.kernel_size),
                    "stride": _pair(m.stride or m.kernel_size),
                    "padding": _pair(m.padding),
                    "ceil": bool(m.ceil_mode),
                    "exclude_pad": not m.count_include_pad,
                },
                path=named,
            )
        elif type(m) is nn.AdaptiveAvgPool2d:
            self.adaptive(node, m.output_size, named)
        elif type(m) is nn.Flatten:
            if (m.start_dim, m.end_dim) != (1, -1):
                raise self.refuse(node, f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}); archspec flattens C×H×W")
            self.add(node, "flatten", path=named)
        elif type(m) is nn.Linear:
            self.add(
                node, "linear", {"out": m.out_features, "bias": m.bias is not None}, path=self._need(node, path), stateful=True
            )
        elif type(m) is nn.Dropout:
            self.add(node, "dropout", {"p": float(m.p)}, path=named)
        elif is_drop_path(m):
            self.add(node, "drop_path", {"p": float(m.p)}, path=named)
        elif type(m) is nn.LocalResponseNorm:
            self.add(node, "lrn", {"size": m.size, "alpha": float(m.alpha), "beta": float(m.beta), "k": float(m.k)}, path=named)
        else:
            raise self.refuse(
                node,
                f"no archspec op for module {type(m).__module__}.{type(m).__name__}",
                hint="see docs/import.md for the modules archspec import knows",
            )

    def conv(self, node: fx.Node, m: nn.Conv2d, path: str | None) -> None:
        if m.padding_mode != "zeros":
            raise self.refuse(node, f"Conv2d with padding_mode={m.padding_mode!r}; archspec pads with zeros")
        padding = m.padding
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            else:
                total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
                if any(t % 2 for t in total):
                    raise self.refuse(node, "Conv2d padding='same' with an even kernel pads unevenly")
                padding = tuple(t // 2 for t in total)
        self.add(
            node,
            "conv2d",
            {
                "out": m.out_channels,
                "kernel": _pair(m.kernel_size),
                "stride": _pair(m.stride),
                "padding": _pair(padding),
                "dilation": _pair(m.dilation),
                "groups": m.groups,
                "bias": m.bias is not None,
                "dw": m.groups > 1 and m.groups == m.in_channels,
            },  # depthwise: `dw`
            path=self._need(node, path),
            stateful=True,
        )

    def batchnorm(self, node: fx.Node, m: Any, path: str | None) -> None:
        if not m.track_running_stats or m.momentum is None:
            raise self.refuse(node, "BatchNorm without running statistics (or with cumulative momentum)")
        self.add(
            node,
            "bn",
            {"eps": float(m.eps), "momentum": float(m.momentum), "affine": bool(m.affine)},
            path=self._need(node, path),
            stateful=True,
        )
        drop, act = getattr(m, "drop", None), getattr(m, "act", None)
        if drop is not None and not isinstance(drop, nn.Identity):
            raise self.refuse(node, f"{type(m).__name__} with a dropout ({type(drop).__name__}) inside")
        if act is not None and not isinstance(act, nn.Identity):
            name = ACTIVATIONS.get(type(act))
            if name is None or (isinstance(act, nn.GELU) and act.approximate != "none"):
                raise self.refuse(node, f"{type(m).__name__} with activation {type(act).__name__}")
            self.add(node, name, inputs=[self.value[node]])

    def _need(self, node: fx.Node, path: str | None) -> str:
        if path is None:
            raise self.refuse(
                node, "a module with weights is called more than once (shared weights); a spec gives every op its own weights"
            )
        return path

    def adaptive(self, node: fx.Node, size: Any, path: str | None) -> None:
        size = _pair(size) if not isinstance(size, (tuple, list)) or None not in size else None
        if size is None:
            raise self.refuse(node, "adaptive pooling to a size with None in it")
        self.add(node, "adaptive_avgpool", {"size": size}, path=path)

    # ---- functions and methods -------------------------------------------------------------
    def function(self, node: fx.Node) -> None:
        t = node.target
        if t in ACT_FUNCTIONS:
            if t is F.gelu and node.kwargs.get("approximate", "none") != "none":
                raise self.refuse(node, "gelu with approximate='tanh'")
            self.add(node, ACT_FUNCTIONS[t])
        elif t is F.max_pool2d:
            self.max_pool(node)
        elif t is F.avg_pool2d:
            self.avg_pool(node)
        elif t is F.adaptive_avg_pool2d:
            self.adaptive(node, _arg(node, 1, "output_size", None), None)
        elif t is torch.flatten:
            self.flatten(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
        elif t is F.dropout:
            self.add(node, "dropout", {"p": float(_arg(node, 1, "p", 0.5))})
        elif self.channel_op(node):
            pass
        elif t is F.local_response_norm:
            self.add(
                node,
                "lrn",
                {
                    "size": int(_arg(node, 1, "size", None)),
                    "alpha": float(_arg(node, 2, "alpha", 1e-4)),
                    "beta": float(_arg(node, 3, "beta", 0.75)),
                    "k": float(_arg(node, 4, "k", 1.0)),
                },
            )
        elif t is torch.cat:
            self.concat(node)
        elif t in (operator.add, operator.iadd, torch.add, torch.Tensor.add, torch.Tensor.add_):
            self.binary_add(node)
        elif getattr(t, "__module__", None) == "archspec.runtime" and getattr(t, "__name__", "") == "check_input":
            self.value[node] = self.input(node, 0)  # the input guard of a network archspec built
        elif t is torch.mean:
            self.mean(node)
        elif t in (operator.mul, operator.imul, torch.mul):
            self.scale(node)
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

    def channel_op(self, node: fx.Node) -> bool:
        """ShuffleNet's channel split and shuffle; False for any other function."""
        t = node.target
        if t in _leaf_functions() or t in (F.channel_shuffle, torch.channel_shuffle):
            self.add(node, "channel_shuffle", {"groups": int(_arg(node, 1, "groups", None))})
        elif t is torch.narrow:
            dim, start, length = (_arg(node, i, k, None) for i, k in ((1, "dim"), (2, "start"), (3, "length")))
            if dim not in (1, -3) or not isinstance(start, int) or not isinstance(length, int):
                raise self.refuse(node, "torch.narrow other than along the channels by numbers")
            self.add(node, "channel_slice", {"start": start, "stop": start + length})
        elif t is operator.getitem and isinstance(node.args[0], fx.Node) and node.args[0] in self.chunks:
            self.chunk_part(node)
        else:
            return False
        return True

    def chunk_part(self, node: fx.Node) -> None:
        """x.chunk(n, 1)[i]: a channel_slice, from the channel count torch's shape propagation found."""
        chunked = node.args[0]
        assert isinstance(chunked, fx.Node)
        src, n = self.chunks[chunked]
        meta = src.meta.get("tensor_meta")
        i = node.args[1]
        if meta is None or not isinstance(i, int):
            raise self.refuse(node, "a channel split whose channel count is not known")
        channels = int(meta.shape[1])
        size = -(-channels // n)
        start = i * size
        self.add(node, "channel_slice", {"start": start, "stop": min(channels, start + size)}, inputs=[self.value[src]])

    def concat(self, node: fx.Node) -> None:
        tensors, dim = _arg(node, 0, "tensors", None), _arg(node, 1, "dim", 0)
        if dim not in (1, -3) or not isinstance(tensors, (list, tuple)):
            raise self.refuse(node, f"torch.cat along dim {dim}; archspec concatenates channels (dim 1)")
        ids = [self.value.get(x) if isinstance(x, fx.Node) else None for x in tensors]
        if any(i is None for i in ids):
            raise self.refuse(node, "torch.cat of something other than traced tensors")
        if len(ids) == 1:
            self.value[node] = ids[0]  # type: ignore[assignment]
        else:
            self.add(node, "concat", inputs=ids)  # type: ignore[arg-type]

    def max_pool(self, node: fx.Node) -> None:
        k = _arg(node, 1, "kernel_size", None)
        s = _arg(node, 2, "stride", None) or k
        if _pair(_arg(node, 4, "dilation", 1)) != (1, 1) or _arg(node, 6, "return_indices", False):
            raise self.refuse(node, "max_pool2d with dilation or return_indices")
        self.add(
            node,
            "maxpool",
            {
                "kernel": _pair(k),
                "stride": _pair(s),
                "padding": _pair(_arg(node, 3, "padding", 0)),
                "ceil": bool(_arg(node, 5, "ceil_mode", False)),
            },
        )

    def avg_pool(self, node: fx.Node) -> None:
        k = _arg(node, 1, "kernel_size", None)
        if _arg(node, 6, "divisor_override", None) is not None:
            raise self.refuse(node, "avg_pool2d with divisor_override")
        self.add(
            node,
            "avgpool",
            {
                "kernel": _pair(k),
                "stride": _pair(_arg(node, 2, "stride", None) or k),
                "padding": _pair(_arg(node, 3, "padding", 0)),
                "ceil": bool(_arg(node, 4, "ceil_mode", False)),
                "exclude_pad": not _arg(node, 5, "count_include_pad", True),
            },
        )

    def flatten(self, node: fx.Node, start: int, end: int) -> None:
        if (start, end) != (1, -1):
            raise self.refuse(node, f"flatten(start_dim={start}, end_dim={end}); archspec flattens C×H×W")
        self._flatten_or_pool(node)

    def _flatten_or_pool(self, node: fx.Node) -> None:
        src = self.input(node, 0)
        p = self.prims[src]
        # adaptive average pooling to 1×1, then flatten: one global_avgpool (a vector of C)
        if p.op == "adaptive_avgpool" and p.params["size"] == (1, 1) and len(self.fx_node[src].users) == 1:
            p.op, p.params = "global_avgpool", {}
            self.value[node] = src
            return
        self.add(node, "flatten")

    def binary_add(self, node: fx.Node) -> None:
        alpha = node.kwargs.get("alpha", 1)
        if len(node.args) != 2 or not all(isinstance(a, fx.Node) for a in node.args) or not isinstance(alpha, (int, float)):
            raise self.refuse(node, "an addition with a constant; archspec adds two branches")
        second = self.input(node, 1)
        if alpha != 1:  # torch.add(shortcut, body, alpha=s): the residual form archspec compiles to
            prim = Prim(len(self.prims), "scale", {"scale": float(alpha)}, None, [second], node.name)
            self.prims.append(prim)
            second = prim.id
        self.add(node, "add", inputs=[self.input(node, 0), second])

    def scale(self, node: fx.Node) -> None:
        a, b = node.args[0], node.args[1]
        if isinstance(a, fx.Node) and isinstance(b, (int, float)):
            tensor, factor = a, b
        elif isinstance(b, fx.Node) and isinstance(a, (int, float)):
            tensor, factor = b, a
        elif isinstance(a, fx.Node) and isinstance(b, fx.Node):
            # x · g(x): a gate (squeeze-and-excitation), recovered in structure.py
            self.add(node, "mul", inputs=[self.input(node, 0), self.input(node, 1)])
            return
        else:
            raise self.refuse(node, "a product with something other than a tensor or a number")
        self.value[tensor]  # noqa: B018 - a KeyError would be a bug: traced in order
        self.add(node, "scale", {"scale": float(factor)}, inputs=[self.value[tensor]])

    def mean(self, node: fx.Node) -> None:
        dims = _arg(node, 1, "dim", None)
        keep = _arg(node, 2, "keepdim", False)
        if not isinstance(dims, (tuple, list)) or sorted(d % 4 for d in dims) != [2, 3]:
            raise self.refuse(node, f"mean over dims {dims}; archspec averages over H and W only")
        if keep:
            self.add(node, "adaptive_avgpool", {"size": (1, 1)})
        else:
            self.add(node, "global_avgpool")

    def method(self, node: fx.Node) -> None:
        t = node.target
        if t in ACT_METHODS:
            self.add(node, ACT_METHODS[t])
        elif t == "contiguous":
            self.value[node] = self.input(node, 0)
        elif t == "flatten":
            self.flatten(node, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
        elif (
            t in ("view", "reshape")
            and len(node.args) == 3
            and node.args[2] == -1
            and isinstance(node.args[1], fx.Node)
            and _is_batch_size(node.args[1])
        ):
            self._flatten_or_pool(node)
        elif t == "size" and all(u.op == "call_method" and u.target in ("view", "reshape") for u in node.users):
            pass  # x.size(0) in x.view(x.size(0), -1): part of that flatten
        elif t == "mean":
            self.mean(node)
        elif (
            t == "chunk"
            and _arg(node, 2, "dim", 0) in (1, -3)
            and isinstance(_arg(node, 1, "chunks", None), int)
            and all(u.op == "call_function" and u.target is operator.getitem for u in node.users)
        ):
            self.input(node, 0)  # a traced tensor
            self.chunks[node] = (node.args[0], int(_arg(node, 1, "chunks", None)))  # type: ignore[assignment]
        elif t in ("add", "add_"):
            self.binary_add(node)
        elif t in ("mul", "mul_"):
            self.scale(node)
        else:
            raise self.refuse(
                node, f"no archspec op for tensor method .{t}()", hint="see docs/import.md for the methods archspec import knows"
            )


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
    for conv in prims:
        if (
            conv.op != "conv2d"
            or not conv.path
            or not conv.path.endswith(".conv")
            or len(users[conv.id]) != 1
            or conv.id == output
        ):
            continue
        base = conv.path[: -len(".conv")]
        bn = prims[users[conv.id][0]]
        if bn.op == "bn" and bn.path == base + ".bn" and bn.params["affine"]:
            norm: Prim | None = bn
        elif bn.op in ACTIVATIONS.values() and bn.path is not None and bn.path.startswith(base + "."):
            norm = None  # conv → activation, no BatchNorm: archspec's `conv ... no_bn` (a network it built)
        else:
            continue
        act, last = "none", norm
        after = users[norm.id] if norm is not None else [users[conv.id][0]]
        end = norm.id if norm is not None else conv.id
        if (
            len(after) == 1
            and end != output
            and prims[after[0]].op in ACTIVATIONS.values()
            and (prims[after[0]].path is None or str(prims[after[0]].path).startswith(base + "."))
        ):
            last = prims[after[0]]
            act = last.op
        params = dict(conv.params)
        if norm is not None:
            params.update(bn=True, eps=norm.params["eps"], momentum=norm.params["momentum"], act=act)
        else:
            params.update(bn=False, eps=1e-5, momentum=0.1, act=act)
        conv.op, conv.params, conv.path = "conv", params, base
        for index in {x.id for x in (norm, last) if x is not None}:
            prims[index].op, prims[index].params, prims[index].path, prims[index].stateful = "pass", {}, None, False


__all__ = ["ImportRefused", "Prim", "Converter", "trace", "fuse_composites"]
