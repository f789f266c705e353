"""The short-form writer: an op's parameters written back as ``conv 64 3x3 s2 p1 no_bias``.

It is the inverse of the lexer (archspec/language/tokens.py, shortform.py), driven by the same declarations of
the op (:attr:`Op.positional`, :attr:`Op.grid`, :attr:`Op.flags`, its pydantic model's fields and
defaults), so adding an op adds no writing rule anywhere: bare numbers for the positional fields,
``HxW`` for the grid field, ``sN``/``pN``/``dN``/``gN`` for stride, padding, dilation and groups,
a flag word where one sets the value, a boolean field's own name for true, ``key=value`` for the
rest. A field equal to its default is left out (the model's default, or the spec's ``defaults:``
when given). tests/test_shortform_write.py proves ``parse(write(p)) == p`` for every op and every
option the fuzzer draws. Torch-free.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from pydantic import BaseModel


class WrittenOp(Protocol):
    """What the writer reads of an op (archspec/ops/registry.py's ``Op``, which calls the writer from
    ``Op.short``): its name, its parameters' model and how its short form spells them."""

    @property
    def name(self) -> str: ...
    @property
    def Params(self) -> type[BaseModel]: ...  # noqa: N802 - the registry's own attribute name
    @property
    def positional(self) -> tuple[str, ...]: ...
    @property
    def grid(self) -> str | None: ...
    @property
    def flags(self) -> Mapping[str, tuple[str, Any]]: ...


# the letter tokens of the lexer (archspec/language/tokens.py, _LETTER_FIELD), field → letter
LETTERS = {"stride": "s", "padding": "p", "dilation": "d", "groups": "g"}
_NUMBER = re.compile(r"^-?(\d+|\d+\.\d*|\.\d+|\d+(\.\d*)?[eE]-?\d+)$")  # what the lexer reads as a bare number
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:[.-][A-Za-z0-9_]+)*$")  # a word, or a module path (size_of=fpn.inner.2)
_PATH = re.compile(r"^[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*$")  # a module path that may start with a number (size_of=1)
# an activation with its number (a conv's act=leaky_relu(0.1), archspec/ops/conv.py): one token, a YAML string
NUMBER = r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"  # a number as a short form writes it
_WITH_NUMBER = re.compile(rf"^[A-Za-z_][A-Za-z0-9_]*\({NUMBER}\)$")  # act=leaky_relu(0.1)
_MISSING = object()


def number_text(v: int | float) -> str:
    """An int as is; a float as short as it reads back exactly (0.001, 1e-06, 2, 0.30000000000000004)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"not a number: {v!r}")
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {v!r}")
    text = f"{v:g}"
    if float(text) != v:
        text = repr(v)
    return text


def value_text(v: Any) -> str:
    """A value as the lexer's ``key=value`` reads it (YAML scalars; pairs without spaces)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return number_text(v)
    if isinstance(v, (tuple, list)):
        if len(v) == 2 and v[0] == v[1]:
            return value_text(v[0])
        return "[" + ",".join(value_text(x) for x in v) + "]"
    if isinstance(v, str) and (_WORD.match(v) or _WITH_NUMBER.match(v)):
        return v
    if isinstance(v, str) and _PATH.match(v):
        # a numbered module (size_of=1, to=0.conv): bare unless the lexer would read a float (1.5, 1e3), which
        # YAML's quotes keep a string; a whole number reads back as the path it numbers (the field converts it)
        return f"'{v}'" if _NUMBER.match(v) and not v.isdigit() else v
    raise ValueError(f"cannot write {v!r} in a short form")


def _pair_text(v: Any) -> str | None:
    """A symmetric or asymmetric pair as the letter tokens take it (2, or 2,1); None for anything else."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return str(v[0]) if v[0] == v[1] else f"{v[0]},{v[1]}"
    return None


def _grid_text(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v}x{v}"
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return f"{v[0]}x{v[1]}"
    return None


def values_of(op: WrittenOp, p: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The op's field values from its params model or a mapping (missing fields: their defaults)."""
    if isinstance(p, BaseModel):
        return {k: getattr(p, k) for k in type(p).model_fields}
    return dict(p)


@functools.cache
def _model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Each field's default (``_MISSING`` for a required one), once per model: pydantic copies a
    default on every ``get_default``, and the writer only compares them."""
    return {
        name: _MISSING if info.is_required() else info.get_default(call_default_factory=True)
        for name, info in model.model_fields.items()
    }


def write(
    op: WrittenOp,
    p: BaseModel | Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    refs: Mapping[str, str] | None = None,
    omit: Collection[str] = (),
) -> str:
    """The short form of ``op`` with parameters ``p``.

    ``defaults`` (a spec's ``defaults:`` for this op) replace the model's defaults: a field equal to
    them is left out, one equal to the model's default but not to them is written. ``refs`` maps a
    field to the text standing for its value (``$stride``: a block parameter), written where the
    value would be. ``omit`` names fields to leave out whatever their value (a conv's BatchNorm eps
    when it has no BatchNorm).
    """
    fields = op.Params.model_fields
    values = values_of(op, p)
    refs = refs or {}
    defaults = defaults or {}

    model_defaults = _model_defaults(op.Params)

    def baseline(name: str) -> Any:
        if name in defaults:
            return defaults[name]
        return model_defaults[name]

    def needed(name: str) -> bool:
        if name in refs:
            return True
        if name in omit or name not in values:
            return False
        base = baseline(name)
        return base is _MISSING or not _same(values[name], base)

    tokens = [op.name]
    done: set[str] = set()
    _positional(op, values, refs, needed, tokens, done)
    if op.grid is not None and op.grid in fields and op.grid not in done:
        text = refs.get(op.grid) or _grid_text(values.get(op.grid))
        if text is not None and (op.grid in refs or op.grid in values):
            tokens.append(text)
            done.add(op.grid)
    flags = {(f, _key(v)): word for word, (f, v) in op.flags.items()}
    for name in fields:
        if name in done or not needed(name):
            continue
        tokens.append(_token(name, values.get(name), refs.get(name), flags, fields[name].annotation is bool))
    return " ".join(tokens)


def _positional(
    op: WrittenOp, values: Mapping[str, Any], refs: Mapping[str, str], needed: Any, tokens: list[str], done: set[str]
) -> None:
    """The positional fields up to the last one that must be written, as bare numbers; from the first
    one that is not a number, the rest are left to ``key=value`` (a bare number after it would fill it)."""
    last = max((i for i, f in enumerate(op.positional) if needed(f)), default=-1)
    for name in op.positional[: last + 1]:
        if name in refs:
            tokens.append(refs[name])
        else:
            v = values.get(name)
            if isinstance(v, (tuple, list)) and v and len(set(v)) == 1 and _one_number_reads_as(op, values, name, v):
                v = v[0]  # `pad 1` for padding (1, 1, 1, 1)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not _NUMBER.match(number_text(v)):
                return
            tokens.append(number_text(v))
        done.add(name)


def _one_number_reads_as(op: WrittenOp, values: Mapping[str, Any], name: str, v: Any) -> bool:
    """The field, given one number, reads back as the same tuple (the op's model widens it)."""
    try:
        read = op.Params.model_validate({**values, name: v[0]})
    except ValueError:
        return False
    return _same(getattr(read, name), v)


def _token(name: str, v: Any, ref: str | None, flags: dict[tuple[str, Any], str], boolean: bool) -> str:
    if name in LETTERS:
        if ref is not None:
            return LETTERS[name] + ref
        word = flags.get((name, _key(v)))
        if word is not None:
            return word
        text = _pair_text(v) if name != "groups" or isinstance(v, int) else None
        if text is not None and (name != "groups" or "," not in text):
            return LETTERS[name] + text
    if ref is not None:
        return f"{name}={ref}"
    word = flags.get((name, _key(v)))
    if word is not None:
        return word
    if boolean and v is True:
        return name  # a boolean field's own name sets it true
    return f"{name}={value_text(v)}"


def _key(v: Any) -> Any:
    """A hashable, type-aware key: True and 1 differ."""
    return (type(v).__name__, tuple(v) if isinstance(v, list) else v)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return _as_pair(a) == _as_pair(b)
    return bool(a == b)


def _as_pair(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return tuple(v)
    return (v, v)
