"""Channel arithmetic in specs: ``${width * 4}``, ``${c // 16}``, ``${make_divisible(c * 0.25, 8)}``.

An expression is parsed with Python's ``ast`` and evaluated by walking the tree over a short
whitelist: numbers, block parameters, ``in`` (the input channels of the op or block it is written in:
``${in * 4}``), ``+ - * / // % **``, unary minus, the functions in :data:`FUNCTIONS`, and conditions —
comparisons (``== != < <= > >=``), ``and``, ``or``, ``not`` and ``A if COND else B`` — which give
true or false (``if: ${s == 1 and cin == out}``). Nothing is ever passed to ``eval``; anything else
(attributes, subscripts, strings, comprehensions) is refused with a message saying what is
allowed. Every number is bounded — each one written, each parameter, each intermediate result and
each function's argument and result, not only the final value (at most :data:`MAX_MAGNITUDE`, finite;
``round``'s digit count at most :data:`MAX_DIGITS` either way) — so no expression can make a huge
number or run long (a power is bounded before it is computed), and true/false is never silently used as a
number. A function outside its domain (``sqrt`` of a negative number, ``log`` of 0) is an error, never a
complex number or infinity.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable
from typing import Any

MAX_LENGTH = 200
MAX_MAGNITUDE = 1 << 40
MAX_DIGITS = 12  # round(x, n): |n| beyond the digits of MAX_MAGNITUDE changes nothing but the time taken


class ExprError(ValueError):
    """An expression that is malformed or uses something outside the whitelist."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``), and one multiple up when rounding lost more than ``1 - round_limit`` of it: the rule of
    MobileNetV2/V3 and EfficientNet (torchvision's ``_make_divisible``, timm's ``make_divisible``)."""
    if divisor < 1:
        raise ExprError("make_divisible: needs a divisor of at least 1")
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


def _round(value: float, ndigits: int | None = None) -> float:
    """Python's ``round``, with the digit count bounded (``round(5, -10**9)`` computes 10 to that power)."""
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_DIGITS):
        raise ExprError(f"round: the digit count {ndigits} is out of range (a whole number from -{MAX_DIGITS} to {MAX_DIGITS})")
    return round(value, ndigits)


def _sqrt(value: float) -> float:
    """The square root (NF-ResNet's β = 1/sqrt(expected variance)); of a negative number, an error."""
    if value < 0:
        raise ExprError(f"sqrt of a negative number ({value:g})")
    return math.sqrt(value)


def _log(value: float, base: float = math.e) -> float:
    """The natural logarithm, or to ``base`` (RegNet's quantised widths: round(log(u / w0, wm))); of a number
    that is not positive, or to a base that is not positive or is 1, an error."""
    if value <= 0:
        raise ExprError(f"log of a number that is not positive ({value:g})")
    if base <= 0 or base == 1:
        raise ExprError(f"log to the base {base:g} (a base is positive and not 1)")
    return math.log(value, base)


def _power(base: Any, exponent: Any) -> Any:
    """``base ** exponent``, bounded before it is computed (``10 ** 10 ** 9`` must not run); a whole number to a
    whole power of at least 0 stays whole, as in Python. Errors: 0 to a negative power, a negative number to a
    fractional one (a complex number in Python)."""
    if base == 0 and exponent < 0:
        raise ExprError(f"0 to a negative power ({exponent:g})")
    if base < 0 and not float(exponent).is_integer():
        raise ExprError(f"a negative number to a fractional power (({base:g}) ** {exponent:g})")
    try:
        magnitude = math.pow(abs(base), exponent)
    except OverflowError:
        magnitude = math.inf
    if magnitude > MAX_MAGNITUDE:
        raise ExprError(f"the value of {base:g} ** {exponent:g} is too large (at most {MAX_MAGNITUDE} either way)")
    return base**exponent


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "make_divisible": make_divisible,
    "min": min,
    "max": max,
    "round": _round,
    "int": int,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": _sqrt,
    "log": _log,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
ALLOWED = (
    "numbers, parameters, in (the input channels), + - * / // % **, parentheses, "
    + ", ".join(FUNCTIONS)
    + ", comparisons (== != < <= > >=), and, or, not, and A if CONDITION else B"
)
INPUT = "in"  # the input channels; a Python keyword, so the parser sees it under another name
_INPUT_NAME = "__archspec_in__"
_INPUT_WORD = re.compile(r"(?<![\w.])in(?!\w)", re.ASCII)


def uses_input(text: str) -> bool:
    """Whether an expression's text refers to ``in``, the input channels."""
    return _INPUT_WORD.search(text) is not None


def evaluate(text: str, lookup: Callable[[str], Any]) -> int | float | bool:
    """The value of ``text``, a number or (a condition) true/false; ``lookup(name)`` gives a
    parameter's value (and raises for unknown ones), ``lookup("in")`` the input channels."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"an expression may be at most {MAX_LENGTH} characters")
    if _INPUT_NAME in text:
        raise ExprError(f"{_INPUT_NAME!r} is not allowed in an expression; use {ALLOWED}")
    value = _compiled(text.strip())(lookup)
    return value if isinstance(value, bool) else _bounded(value)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> ast.Expression:
    """The syntax tree of an expression, once per distinct text (a block's expressions repeat in every
    instance). The trees are only read."""
    try:  # as written first: there `in` can only be Python's membership test (`e in 1`), refused below
        return ast.parse(text, mode="eval")
    except SyntaxError:
        try:
            return ast.parse(_INPUT_WORD.sub(_INPUT_NAME, text), mode="eval")
        except SyntaxError:
            raise ExprError(f"not an arithmetic expression: {text!r}") from None


Lookup = Callable[[str], Any]
Compiled = Callable[[Lookup], Any]


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Compiled:
    """An expression's tree turned once into nested closures, each evaluating one node: what walking the
    tree computes, with the same checks in the same order and the same errors, without dispatching
    on every node's type at every evaluation (a block's expressions run once per instance)."""
    return _compile(_parse(text).body)


def _compile(node: ast.AST) -> Compiled:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        constant = node.value
        return lambda lookup: _bounded(constant)  # 1e999 is infinity; a huge literal must not reach int() or round()
    if isinstance(node, ast.Name):
        name = INPUT if node.id == _INPUT_NAME else node.id
        return lambda lookup: _parameter(lookup(name))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand, negate = _number(node.operand), isinstance(node.op, ast.USub)
        return lambda lookup: _bounded(-operand(lookup) if negate else operand(lookup))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        test = _condition(node.operand)
        return lambda lookup: not test(lookup)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        return _comparison(node)
    if isinstance(node, ast.BoolOp):
        tests, conjunction = [_condition(v) for v in node.values], isinstance(node.op, ast.And)
        if conjunction:  # short-circuits like Python
            return lambda lookup: all(t(lookup) for t in tests)
        return lambda lookup: any(t(lookup) for t in tests)
    if isinstance(node, ast.IfExp):
        cond, body, orelse = _condition(node.test), _compile(node.body), _compile(node.orelse)
        return lambda lookup: body(lookup) if cond(lookup) else orelse(lookup)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and all(k.arg is not None for k in node.keywords)
    ):
        return _call(node.func.id, node)
    message = f"{_written(node)!r} is not allowed in an expression; use {ALLOWED}"

    def refuse(lookup: Lookup) -> Any:  # only where evaluation reaches it, as the tree walk refused it
        raise ExprError(message)

    return refuse


def _parameter(value: Any) -> Any:
    return value if isinstance(value, bool) else _bounded(value)  # a parameter may hold true/false


def _binary(node: ast.BinOp) -> Compiled:
    left, right, fn = _number(node.left), _number(node.right), _BINARY[type(node.op)]
    divides = isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod))

    def binary(lookup: Lookup) -> Any:
        a, b = left(lookup), right(lookup)
        if divides and b == 0:
            raise ExprError("division by zero")
        return _bounded(fn(a, b))

    return binary


def _comparison(node: ast.Compare) -> Compiled:
    operands = [_number(node.left)] + [_number(c) for c in node.comparators]
    tests = [_COMPARE[type(op)] for op in node.ops]

    def compare(lookup: Lookup) -> bool:
        values = [f(lookup) for f in operands]  # every operand first, as the tree walk did
        return all(t(a, b) for t, a, b in zip(tests, values, values[1:], strict=False))

    return compare


def _call(name: str, node: ast.Call) -> Compiled:
    fn = FUNCTIONS[name]
    args = [_number(a) for a in node.args]
    kwargs = [(str(k.arg), _number(k.value)) for k in node.keywords]

    def call(lookup: Lookup) -> Any:
        values = [a(lookup) for a in args]
        named = {k: v(lookup) for k, v in kwargs}
        try:
            return _bounded(fn(*values, **named))
        except ExprError:  # the function's own message names it
            raise
        except (TypeError, ValueError) as e:
            raise ExprError(f"{name}: {e}") from None

    return call


def _number(node: ast.AST) -> Compiled:
    """An operand of arithmetic or of a comparison: a number, never true/false."""
    value = _compile(node)

    def number(lookup: Lookup) -> Any:
        v = value(lookup)
        if isinstance(v, bool):
            raise ExprError(f"{_written(node)!r} is true or false, not a number")
        return v

    return number


def _condition(node: ast.AST) -> Compiled:
    """An operand of and/or/not and the test of A if TEST else B: true or false, never a number."""
    value = _compile(node)

    def condition(lookup: Lookup) -> bool:
        v = value(lookup)
        if not isinstance(v, bool):
            raise ExprError(f"{_written(node)!r} is a number, not true or false; compare it, e.g. {_written(node)} > 1")
        return v

    return condition


def _bounded(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ExprError(f"an expression must give a number, got {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ExprError(f"{v} is not a finite number")
    if abs(v) > MAX_MAGNITUDE:
        raise ExprError(f"the value {v:g} is too large (at most {MAX_MAGNITUDE} either way)")
    return v


def _written(node: ast.AST) -> str:
    """An expression's part as the spec writes it (``in``, not the name the parser saw)."""
    return re.sub(rf"\b{_INPUT_NAME}\b", INPUT, ast.unparse(node))
