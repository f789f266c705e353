"""Channel arithmetic in specs: ``${width * 4}``, ``${c // 16}``, ``${make_divisible(c * 0.25, 8)}``.

An expression is parsed with Python's ``ast`` and evaluated by walking the tree over a short
whitelist: numbers, block parameters, ``in`` (the input channels of the op or block it is written in:
``${in * 4}``), ``+ - * / // %``, unary minus, and the functions in
:data:`FUNCTIONS`. Nothing is ever passed to ``eval``; anything else (attributes, subscripts,
strings, ``**``, comprehensions) is refused with a message saying what is allowed. Results are
bounded so an expression cannot make a huge number.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

MAX_LENGTH = 200
MAX_MAGNITUDE = 1 << 40


class ExprError(ValueError):
    """An expression that is malformed or uses something outside the whitelist."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``), and one multiple up when rounding lost more than ``1 - round_limit`` of it: the rule of
    MobileNetV2/V3 and EfficientNet (torchvision's ``_make_divisible``, timm's ``make_divisible``)."""
    if divisor < 1:
        raise ExprError("make_divisible needs a divisor of at least 1")
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "make_divisible": make_divisible,
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "ceil": math.ceil,
    "floor": math.floor,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
ALLOWED = "numbers, parameters, in (the input channels), + - * / // %, parentheses and " + ", ".join(FUNCTIONS)
INPUT = "in"  # the input channels; a Python keyword, so the parser sees it under another name
_INPUT_NAME = "__archspec_in__"
_INPUT_WORD = re.compile(r"(?<![\w.])in(?!\w)", re.ASCII)


def uses_input(text: str) -> bool:
    """Whether an expression's text refers to ``in``, the input channels."""
    return _INPUT_WORD.search(text) is not None


def evaluate(text: str, lookup: Callable[[str], Any]) -> int | float:
    """The value of ``text``; ``lookup(name)`` gives a parameter's value (and raises for unknown ones),
    ``lookup("in")`` the input channels."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"an expression may be at most {MAX_LENGTH} characters")
    if _INPUT_NAME in text:
        raise ExprError(f"{_INPUT_NAME!r} is not allowed in an expression; use {ALLOWED}")
    try:
        tree = ast.parse(_INPUT_WORD.sub(_INPUT_NAME, text.strip()), mode="eval")
    except SyntaxError:
        raise ExprError(f"not an arithmetic expression: {text.strip()!r}") from None
    return _bounded(_eval(tree.body, lookup))


def _bounded(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ExprError(f"an expression must give a number, got {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ExprError("an expression must give a finite number")
    if abs(v) > MAX_MAGNITUDE:
        raise ExprError(f"the value {v} is too large")
    return v


def _eval(node: ast.AST, lookup: Callable[[str], Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        return _bounded(lookup(INPUT if node.id == _INPUT_NAME else node.id))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, lookup), _eval(node.right, lookup)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ExprError("division by zero")
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand, lookup)
        return -value if isinstance(node.op, ast.USub) else value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
            and all(k.arg is not None for k in node.keywords)):
        args = [_eval(a, lookup) for a in node.args]
        kwargs = {str(k.arg): _eval(k.value, lookup) for k in node.keywords}
        try:
            return _bounded(FUNCTIONS[node.func.id](*args, **kwargs))
        except (TypeError, ValueError) as e:
            raise ExprError(f"{node.func.id}: {e}") from None
    written = re.sub(rf"\b{_INPUT_NAME}\b", INPUT, ast.unparse(node))
    raise ExprError(f"{written!r} is not allowed in an expression; use {ALLOWED}")
