"""User-facing errors: one exception type, error codes declared once.

Every mistake in a spec becomes a :class:`SpecError` that knows where it happened
(file, line, column), which spec path it concerns, what went wrong and what to do.
Anything else escaping archspec is a bug in archspec.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

# Each code is declared once, with the one-line meaning that docs/errors.md expands on.
ERROR_CODES: dict[str, str] = {
    "yaml-syntax": "the file is not well-formed YAML",
    "yaml-unsafe": "a YAML feature archspec refuses (tags, too many aliases, too deep nesting)",
    "duplicate-key": "a mapping repeats a key",
    "schema": "a value has the wrong type or a key is unknown or missing",
    "unknown-op": "an op or block name that is not defined",
    "bad-op-args": "an op's arguments are malformed or out of range",
    "param": "a $parameter is undefined, unused or of the wrong kind",
    "name": "a module name is invalid or used twice",
    "shape-mismatch": "tensors that meet in a concat or residual add disagree in shape",
    "shape": "an op cannot accept its input shape",
    "input-too-small": "the input is smaller than the smallest size the network accepts",
    "use": "a `use:` import is missing, cyclic or leaves the spec tree",
    "limit": "a size, repeat count or parameter budget is exceeded",
    "override": "a --set override names a key that does not exist or has a bad value",
    "io": "a file cannot be read or written",
    "weights": "a --weights file does not fit the network (missing or unexpected keys, other shapes)",
    "partial-merge": "merged branches agree in size at some input sizes only (a warning; an error with --strict)",
    "gate-activation": "a gate whose body is one activation, x · act(x) (a warning; an error with --strict)",
    "residual-gate": "a residual adds a broadcast sigmoid's output, x + gate (a warning; an error with --strict)",
    "unread": "nothing reads a node's value (a later from: skips it): it is left out (a warning; an error with --strict)",
    "import": "archspec import cannot express a PyTorch module as a spec (an op, control flow or connectivity)",
}


@dataclass(frozen=True)
class Loc:
    """A position in a spec file; line and column are 1-based."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        # line 0 means the file as a whole (it is missing, too large, not a spec): no made-up 0:0
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


class SpecError(Exception):
    """A mistake in a spec (or in how archspec was asked to use it).

    ``str(err)`` is ``FILE:LINE:COL: error: MESSAGE [CODE]`` followed, when there is one,
    by a second line with the hint.
    """

    def __init__(
        self,
        message: str,
        loc: Loc | None = None,
        *,
        code: str = "schema",
        hint: str | None = None,
        path: str | None = None,
    ) -> None:
        if code not in ERROR_CODES:  # pragma: no cover - guards the table above
            raise ValueError(f"undeclared error code {code!r}")
        self.message = message
        self.loc = loc or Loc("<spec>", 0, 0)
        self.code = code
        self.hint = hint
        self.path = path
        super().__init__(self.format())

    @property
    def file(self) -> str:
        return self.loc.file

    @property
    def line(self) -> int:
        return self.loc.line

    @property
    def column(self) -> int:
        return self.loc.column

    def format(self) -> str:
        """The message as printed: text from the spec (names, file names) has its control characters,
        escape sequences and lone surrogates escaped, so it cannot drive the terminal or fail to encode."""
        where = f" (at {printable(self.path)})" if self.path else ""
        loc = Loc(printable(self.loc.file), self.loc.line, self.loc.column)
        text = f"{loc}: error: {printable(self.message)}{where} [{self.code}]"
        if self.hint:
            text += f"\n  hint: {printable(self.hint)}"
        return text


@dataclass(frozen=True)
class SpecWarning:
    """Something legal but likely unintended, located like an error; ``strict`` checks raise it."""

    message: str
    loc: Loc
    code: str
    hint: str | None = None

    def format(self) -> str:
        loc = Loc(printable(self.loc.file), self.loc.line, self.loc.column)
        text = f"{loc}: warning: {printable(self.message)} [{self.code}]"
        return text + (f"\n  hint: {printable(self.hint)}" if self.hint else "")

    def error(self) -> SpecError:
        return SpecError(self.message, self.loc, code=self.code, hint=self.hint)


def printable(text: str) -> str:
    """``text`` safe to print: characters that are not printable (control characters such as ESC,
    newlines, lone surrogates) are written as Python escapes (``\\x1b``, ``\\n``, ``\\udc80``)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' suffix for an unknown name, or None when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else None
