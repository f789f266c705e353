"""How things are spelled in the generated file: literals, identifiers, class names, and the layout
of long expressions. Text from a spec reaches the file only through :func:`text_literal`,
:func:`quote` and :func:`literal` (``ascii()``/``repr()`` underneath).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from archspec import runtime
from archspec.compile import class_name_of

LINE = 120  # the longest line written
IDENT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
# argument names where torch accepts one int for a square pair
PAIR_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_size", "output_padding"}
# variable names the forward cannot use
RESERVED = {"self", "torch", "nn", "F", "check_input", "pad_same", "center_crop"} | set(dir(builtins))
# Layers of archspec's own (runtime.py) that the compiled model uses: the file writes each one's class,
# its source copied from runtime.py, so the file still needs only torch.
RUNTIME_LAYERS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (
        runtime.DropPath,
        runtime.Conv2dSame,
        runtime.StdConv2d,
        runtime.InterpolateLike,
        runtime.FrozenBatchNorm2d,
        runtime.ChannelConv,
        runtime.GlobalResponseNorm,
        runtime.ScalarAffine,
    )
}
# Functions of archspec's own (runtime.py) that the compiled model calls: the file writes each one used,
# its source copied from runtime.py, and calls it by its bare name.
RUNTIME_FUNCTIONS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn
    for fn in (
        runtime.center_crop,
        runtime.branch_sum,
        runtime.branch_select,
        runtime.attention_pool,
        runtime.scale_channels,
        runtime.weighted_sum,
        runtime.space_to_depth,
    )
}
# class names the file cannot define: its imports, its runtime layers, keywords (a block named `none` → None)
# and builtins
RESERVED_CLASSES = {"torch", "nn", "F", "pad_same", *RUNTIME_LAYERS, *RUNTIME_FUNCTIONS, *keyword.kwlist, *dir(builtins)}


# ---- literals ------------------------------------------------------------------------------------
def quote(text: str) -> str:
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
        plain = (
            all(line.isprintable() for line in text.split("\n"))
            and "\\" not in text
            and '"""' not in text
            and not text.startswith('"')
            and not text.endswith('"')
        )
    except UnicodeEncodeError:
        plain = False
    if plain:
        return f'"""{text}"""'
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return ascii(text)
    pad = " " * (indent + 4)
    return "(\n" + "".join(f"{pad}{ascii(line)}\n" for line in lines) + " " * indent + ")"


def literal(v: Any) -> str:
    """A value (None, bool, int, float, str, and tuples and lists of them) as source that reads back equal."""
    if isinstance(v, tuple) and len(v) == 1:
        return f"({literal(v[0])},)"
    if isinstance(v, (tuple, list)):
        inner = ", ".join(literal(i) for i in v)
        return f"({inner})" if isinstance(v, tuple) else f"[{inner}]"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else f"float({str(v)!r})"
    if isinstance(v, str):
        return quote(v)
    text = repr(v)
    try:  # only values whose repr is a plain literal that reads back equal (None, bools, ints)
        same = ast.literal_eval(text) == v
    except (ValueError, SyntaxError):
        same = False
    if not same:
        raise TypeError(f"cannot write {type(v).__name__} {text} as a literal")
    return text


def compact(name: str, v: Any) -> Any:
    """A square pair of a pair argument as one int (``kernel_size=3``, not ``(3, 3)``), and a Conv1d's
    one-element tuple too."""
    if name in PAIR_ARGS and isinstance(v, tuple) and (len(v) == 1 or (len(v) == 2 and v[0] == v[1])):
        return v[0]
    return v


# ---- names ---------------------------------------------------------------------------------------
def identifier(name: str) -> str:
    """A variable name for a branch or row name: ``branch1_1a``; reserved words get a trailing ``_``."""
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = "v_" + text
    if keyword.iskeyword(text) or text in RESERVED:
        text += "_"
    return text


def camel(name: str) -> str:
    """A class name from a block or op name: ``inception_a`` → ``InceptionA``."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", name) if p) or "Layer"


def standalone_class_name(spec_name: str) -> str:
    """The class name of the standalone file: the compiled model's, unless that would shadow an import,
    a keyword or a builtin (a network named `f` gives FNet, not F)."""
    name = class_name_of(spec_name)
    return name + "Net" if name in RESERVED_CLASSES else name


@dataclass
class ClassNames:
    """The class names of one file: each new class takes a free one (``InceptionA``, ``InceptionA2``)."""

    taken: set[str] = field(default_factory=lambda: set(RESERVED_CLASSES))

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}{k}"
        self.taken.add(name)
        return name


# ---- expressions and their layout ----------------------------------------------------------------
@dataclass
class Call:
    """``func(arg, key=value, ...)``; an arg is an expression or (key, expression)."""

    func: str
    args: list[Any] = field(default_factory=list)


@dataclass
class Mapping:
    """``{"key": expression, ...}``."""

    items: list[tuple[str, Any]]


def flat(e: Any) -> str:
    """An expression on one line."""
    if isinstance(e, str):
        return e
    if isinstance(e, Call):
        parts = [f"{a[0]}={flat(a[1])}" if isinstance(a, tuple) else flat(a) for a in e.args]
        return f"{e.func}({', '.join(parts)})"
    return "{" + ", ".join(f"{quote(k)}: {flat(v)}" for k, v in e.items) + "}"


def layout(e: Any, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines for an expression: on one line when it fits, else one argument per line (black style)."""
    pad = " " * indent
    one = pad + prefix + flat(e) + suffix
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
        lines += layout(v, indent + 4, f"{quote(k)}: ", ",")
    return lines + [pad + "}" + suffix]
