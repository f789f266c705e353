"""Trace a PyTorch module with torch.fx; the importer's error and its unit of dataflow.

BatchNorm modules (timm's BatchNormAct2d included) and per-sample stochastic depth are leaves,
so timm's norm+act layers are one module each. Each fx node later becomes a :class:`Prim` (an
archspec op with its parameters and, for a module call, its module path; convert.py) or is
refused with an :class:`ImportRefused` naming the fx node, the module path and the source line.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx
import torch.nn as nn

from archspec.errors import Loc, SpecError

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
    within: str = ""  # the innermost module the fx node runs in (a module called twice: that module), for dag.py
    dense: bool = False  # a concat nested by nest_concats (DenseNet's form): series-parallel wherever it runs
    of: Prim | None = None  # op "share": a module with weights called again, the prim of its first call


def source_of(node: fx.Node) -> tuple[str, int] | None:
    """The innermost frame of the node's stack trace outside torch: the model's source line."""
    best = None
    for m in _FRAME.finditer(node.stack_trace or ""):
        if "/torch/" not in m.group(1) and "archspec/importer" not in m.group(1):
            best = (m.group(1), int(m.group(2)))
    return best


def module_of(node: fx.Node) -> str | None:
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
    def __init__(self, stack_traces: bool, leaves: frozenset[type]) -> None:
        super().__init__(autowrap_functions=_leaf_functions())
        self.record_stack_traces = stack_traces
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (
            type(m) in self.leaves
            or isinstance(m, nn.modules.batchnorm._BatchNorm)
            or is_drop_path(m)
            or super().is_leaf_module(m, qualname)
        )


def trace(model: nn.Module, stack_traces: bool = True, leaves: frozenset[type] = frozenset()) -> fx.GraphModule:
    """The module's fx graph. Without ``stack_traces`` its nodes carry no source lines (recording
    them is a good part of the trace's time): for an import that succeeds, they are never read.
    ``leaves``: module classes traced as one call, not through their forward (the classes an op is
    read from: timm's Conv2dSame pads at run time by its input's size, which fx cannot trace)."""
    tracer = _Tracer(stack_traces, leaves)
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


__all__ = ["ImportRefused", "Prim", "is_drop_path", "module_of", "source_of", "trace"]
