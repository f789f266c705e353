"""The tokens of a short form: how ``conv 96 3x3 s2 p1 eps=0.001 * 2`` splits, and which field each
token sets. The lexer (shortform.py) reads a whole short form with them; ``--set`` on a short
form (overrides.py) rewrites one with them; the writer (archspec/ops/write.py) is their inverse.
Below the spec reader: it knows only the op registry.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

import yaml

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.ops.registry import Op

_TOKEN = re.compile(r"(?:\$\{[^}]*\}|\S)+")  # whitespace separates tokens, except inside ${...}
_INT = re.compile(r"^-?\d+$")
_FLOAT = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE]-?\d+)$")
_GRID = re.compile(r"^(\d+)x(\d+)$")
_LETTER = re.compile(r"^([spdg])(\d+)(?:,(\d+))?$")
_LETTER_FIELD = {"s": "stride", "p": "padding", "d": "dilation", "g": "groups"}
_KEYVAL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_YAML_WORDS = re.compile(r"\A(?:yes|no|true|false|on|off|null|y|n)\Z", re.IGNORECASE)
_DECIMAL = re.compile(r"\A-?(?:0|[1-9][0-9]*)\Z")


def scalar(text: str) -> Any:
    """The value of ``key=value`` in a short form, as YAML reads the text (``k=3``, ``act=silu``,
    ``size=[2, 2]``). A decimal integer or a plain word is read here; the rest by PyYAML, once per
    distinct text (tokens repeat across a network's instances)."""
    if not text:
        return None
    if _DECIMAL.match(text):
        return int(text)
    if _WORD.match(text) and not _YAML_WORDS.match(text):
        return text
    value = _yaml_scalar(text)
    return copy.deepcopy(value) if isinstance(value, (list, dict)) else value


@functools.lru_cache(maxsize=4096)
def _yaml_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def read_token(tok: str, op: Op | None, positional: list[str], loc: Loc, name: str) -> tuple[str, Any]:
    """The (field, value) one token after the name sets (a positional field is taken off ``positional``)."""
    if m := _KEYVAL.match(tok):
        return m.group(1), scalar(m.group(2))
    if op is None:
        raise SpecError(
            f"block arguments are written key=value, got {tok!r}", loc, code="bad-op-args", hint=f"e.g. '{name} k=192'"
        )
    if _INT.match(tok) or _FLOAT.match(tok):
        if not positional:
            raise SpecError(
                f"{name} takes no {'more ' if op.positional else ''}bare numbers, got {tok!r}",
                loc,
                code="bad-op-args",
                hint=short_form_hint(op),
            )
        value: Any = int(tok) if _INT.match(tok) else float(tok)
        return positional.pop(0), value
    if m := _GRID.match(tok):
        if op.grid is None:
            raise SpecError(f"{name} takes no kernel size, got {tok!r}", loc, code="bad-op-args", hint=short_form_hint(op))
        return op.grid, (int(m.group(1)), int(m.group(2)))
    if (m := _LETTER.match(tok)) and _LETTER_FIELD[m.group(1)] in op.Params.model_fields:
        first = int(m.group(2))
        value = first if m.group(1) == "g" else (first, int(m.group(3)) if m.group(3) else first)
        return _LETTER_FIELD[m.group(1)], value
    if tok in op.flags:
        return op.flags[tok]
    if _WORD.match(tok) and tok in op.Params.model_fields and op.Params.model_fields[tok].annotation is bool:
        return tok, True
    choices = list(op.flags) + [f for f, i in op.Params.model_fields.items() if i.annotation is bool]
    hint = did_you_mean(tok, choices) or short_form_hint(op)
    raise SpecError(f"{name} does not understand {tok!r}", loc, code="bad-op-args", hint=hint)


def tokens(text: str) -> list[tuple[str, int]]:
    """The tokens of a short form and their offsets: whitespace separates them, except inside ``${...}``."""
    return [(m.group(), m.start()) for m in _TOKEN.finditer(text)]


def token_field(tok: str, op: Op | None, positional: list[str]) -> str | None:
    """The field a token of an op's short form sets, without substituting its ``$params``: ``key=...``
    its key, ``s$stride`` its letter's field, a flag its field; a bare number, ``$param`` or ``${...}``
    the next positional field (else the grid field); None for the repeat count, ``fixed`` and words
    that set nothing (the lexer's error). ``positional`` loses the field a bare token takes."""
    if m := _KEYVAL.match(tok):
        return m.group(1)
    if op is None:
        return None
    if "$" not in tok:
        try:
            return read_token(tok, op, positional, Loc("<short form>", 1, 1), op.name)[0]
        except SpecError:
            return None
    if len(tok) > 1 and tok[0] in _LETTER_FIELD and tok[1] == "$" and _LETTER_FIELD[tok[0]] in op.Params.model_fields:
        return _LETTER_FIELD[tok[0]]
    if tok.startswith("$"):
        return positional.pop(0) if positional else op.grid
    return None


def short_form_hint(op: Op) -> str:
    if op.short_form:
        return "short form: " + op.short_form
    return f"{op.name} takes no arguments" if not op.Params.model_fields else f"options: {', '.join(op.Params.model_fields)}"
