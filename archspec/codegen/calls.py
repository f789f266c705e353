"""Torch objects as source: a layer as its constructor call, a function call with its arguments, and
the layer the registry names for a stateless op. Layers are read from their attributes and built on
the ``meta`` device; nothing here runs a layer on data.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.node import _get_qualified_name

from archspec.codegen.text import RUNTIME_FUNCTIONS, RUNTIME_LAYERS, Call, compact, flat, literal
from archspec.ir import Node
from archspec.ops import REGISTRY

# keyword defaults of the torch pooling functions, left out of generated calls
_FUNCTION_DEFAULTS: dict[str, Any] = {"padding": 0, "ceil_mode": False, "count_include_pad": True}


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
        args.append((p, compact(p.name, value)))
    return args


def layer_call(module: nn.Module) -> Call:
    """``nn.Conv2d(3, 32, 3, stride=2, bias=False)`` for a torch layer (``DropPath(0.1)`` for a layer of
    :data:`RUNTIME_LAYERS`, whose class the file defines), checked by rebuilding it."""
    cls = type(module)
    own = RUNTIME_LAYERS.get(cls.__name__) is cls
    if getattr(nn, cls.__name__, None) is not cls and not own:
        raise TypeError(f"cannot write {cls.__qualname__} as source: not a torch.nn layer")
    call = Call(cls.__name__ if own else f"nn.{cls.__name__}")
    args = _init_args(module)
    for p, value in args:
        if p.default is not p.empty and value == compact(p.name, p.default):
            continue
        positional = p.default is p.empty and p.kind is not p.KEYWORD_ONLY
        call.args.append(literal(value) if positional else (p.name, literal(value)))
    with torch.device("meta"):
        rebuilt = eval(flat(call), {"nn": nn, **RUNTIME_LAYERS})  # noqa: S307 - text we just wrote from a torch layer
    if [v for _, v in _init_args(rebuilt)] != [v for _, v in args]:
        raise TypeError(f"cannot write {cls.__name__} as source: {flat(call)} builds {rebuilt!r}, not {module!r}")
    return call


def _function_name(fn: Callable[..., Any]) -> str:
    """The public spelling of a torch function: F.max_pool2d, torch.cat (not torch._C._nn...)."""
    short = getattr(fn, "__name__", "")
    if short and RUNTIME_FUNCTIONS.get(short) is fn:  # written into the file (codegen/file.py)
        return short
    if short and getattr(F, short, None) is fn:
        return f"F.{short}"
    if short and getattr(torch, short, None) is fn:
        return f"torch.{short}"
    return _get_qualified_name(fn).replace("torch.nn.functional.", "F.")


def function_call(fn: Callable[..., Any], args: list[str], kwargs: dict[str, Any]) -> str:
    """``F.max_pool2d(x, kernel_size=3, stride=2)``: ``args`` are source already, ``kwargs`` values."""
    name = _function_name(fn)
    parts = list(args)
    for key, value in kwargs.items():
        if key in _FUNCTION_DEFAULTS and compact(key, value) == _FUNCTION_DEFAULTS[key]:
            continue
        parts.append(f"{key}={literal(compact(key, value))}")
    return f"{name}({', '.join(parts)})"


def registry_layer(record: Node, target: Any) -> nn.Module | None:
    """The torch layer computing a stateless op (``nn.AvgPool2d`` for ``F.avg_pool2d``), as the registry's
    ``Op.layer`` names it, built from the keyword arguments of ``Op.function``; None when the op has none,
    when the call is another form (its in-place one), or when the layer cannot be written as source."""
    op = REGISTRY[record.op]
    if op.layer is None:
        return None
    fn, kwargs = op.function(record.params)
    if target is not fn:
        return None
    try:
        layer = getattr(nn, op.layer)(**kwargs)
        layer_call(layer)
    except (TypeError, ValueError):
        return None
    return layer
