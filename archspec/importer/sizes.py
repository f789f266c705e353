"""Sizes a forward computes from its tensors' shapes, read symbolically: ``x.shape[-2:]``,
``x.size(2)``, ``(x.shape[2] - h) // 2``. The converter skips the fx nodes that compute them (they
are no op) and reads the ops they feed: ``F.interpolate(y, size=x.shape[-2:])`` is
``interpolate size_of=x`` and ``y[:, :, top : top + h, left : left + w]`` with the centre's offsets
is ``crop to=...`` (see forms.ValueReads). A form other than these stays refused where it is used.
"""

from __future__ import annotations

import operator
from typing import Any

import torch.fx as fx

# a size expression: ("c", k) an int, ("shape", v) a tensor's shape, ("dim", v, axis), ("hw", v) its
# height and width (shape[-2:]), or (op, a, b) for op in add, sub, mul, floordiv
Sym = tuple[Any, ...]
_ARITH = {operator.add: "add", operator.sub: "sub", operator.mul: "mul", operator.floordiv: "floordiv"}


def _rank(v: fx.Node) -> int:
    meta = v.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return len(shape) if shape is not None else 4


def sym(x: Any) -> Sym | None:
    """The size expression an fx argument computes, or None when it is not one (a tensor, a float)."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return ("c", x)
    if not isinstance(x, fx.Node):
        return None
    if x.op == "call_function" and x.target is getattr and x.args[1:] == ("shape",) and isinstance(x.args[0], fx.Node):
        return ("shape", x.args[0])
    if x.op == "call_method" and x.target == "size" and isinstance(x.args[0], fx.Node):
        if len(x.args) == 1 and not x.kwargs:
            return ("shape", x.args[0])
        axis = x.args[1] if len(x.args) > 1 else x.kwargs.get("dim")
        return ("dim", x.args[0], axis % _rank(x.args[0])) if isinstance(axis, int) else None
    if x.op == "call_function" and x.target is operator.getitem:
        base, index = sym(x.args[0]), x.args[1]
        if base is None or base[0] != "shape":
            return None
        v = base[1]
        if isinstance(index, int):
            return ("dim", v, index % _rank(v))
        if isinstance(index, slice) and index.stop is None and index.step is None and isinstance(index.start, int):
            if index.start % _rank(v) == 2 and _rank(v) == 4:
                return ("hw", v)
        return None
    if x.op == "call_function" and x.target in _ARITH and len(x.args) == 2:
        a, b = sym(x.args[0]), sym(x.args[1])
        return (_ARITH[x.target], a, b) if a is not None and b is not None else None
    return None


def is_size(node: fx.Node) -> bool:
    """Whether the node computes a size (an int or a shape), not a tensor."""
    return sym(node) is not None


def size_of(x: Any) -> fx.Node | None:
    """The tensor whose height and width ``x`` is: ``v.shape[-2:]``, ``v.size()[2:]`` or ``(v.shape[2], v.shape[3])``."""
    s = sym(x)
    if s is not None and s[0] == "hw":
        return s[1]
    if isinstance(x, (tuple, list)) and len(x) == 2:
        a, b = sym(x[0]), sym(x[1])
        if a is not None and b is not None and a[0] == b[0] == "dim" and a[1] is b[1] and (a[2], b[2]) == (2, 3):
            return a[1]
    return None


def centre_of(x: fx.Node, index: Any) -> fx.Node | None:
    """The tensor ``v`` when ``x[index]`` is the centre of ``x`` at ``v``'s height and width (U-Net's copy
    and crop, as archspec's ``crop`` takes it: ``x[:, :, top : top + h, left : left + w]`` with
    ``top = (x.shape[2] - h) // 2``, ``h = v.shape[2]``, and the same along the width)."""
    if not isinstance(index, tuple) or len(index) != 4:
        return None
    if any(not isinstance(s, slice) or (s.start, s.stop, s.step) != (None, None, None) for s in index[:2]):
        return None
    like: fx.Node | None = None
    for axis, s in ((2, index[2]), (3, index[3])):
        if not isinstance(s, slice) or s.step is not None:
            return None
        start, stop = sym(s.start), sym(s.stop)
        if start is None or stop is None or start[0] != "floordiv" or start[2] != ("c", 2) or start[1][0] != "sub":
            return None
        whole, part = start[1][1], start[1][2]
        if whole != ("dim", x, axis) or part[0] != "dim" or part[2] != axis:
            return None
        if stop not in (("add", start, part), ("add", part, start)):
            return None
        if like is not None and part[1] is not like:
            return None
        like = part[1]
    return like


__all__ = ["centre_of", "is_size", "size_of", "sym"]
