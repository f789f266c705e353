"""Short forms and parameters: ``conv 96 3x3 s2``, ``inception_a k=192 * 4``, ``$width``, ``${c // 16}``.

The lexer of a short form (a name, then tokens: bare numbers for the positional parameters, ``KxK``,
``sN``/``pN``/``dN``/``gN``, flags, ``key=value``, ``* N``, ``fixed``) and the substitution of a
block's ``$params`` and ``${...}`` expressions, each token located exactly in the YAML. The
expansion stage (graph.py) asks it for parsed references; it knows nothing of graphs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.language.expr import INPUT, ExprError, evaluate, uses_input
from archspec.language.load import Source, YamlPath
from archspec.language.model import KEYWORDS, MAX_REPEAT, ScaleSpec
from archspec.language.resolve import Resolved
from archspec.language.tokens import _INT, _TOKEN, read_token
from archspec.ops import REGISTRY
from archspec.ops.registry import Op

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_EXPR = re.compile(r"\$\{([^}]*)\}")

# Names every block instance defines besides its parameters (docs/language.md, "Block index"):
# its index among all instances of the same block in the network, in order (0, 1, …), and their
# number — the per-block drop rate of stochastic depth, ``${0.2 * block_index / block_count}``.
BLOCK_INDEX, BLOCK_COUNT = "block_index", "block_count"
BUILTIN_NAMES = (BLOCK_INDEX, BLOCK_COUNT)
BLOCK_IN = "block_in"  # the input channels of the innermost block instance (RegNet-Y's SE width: block_in // 4)
# The spec's multipliers (scale.width, scale.depth), readable everywhere (docs/language.md, "Multipliers"),
# for a spec that scales itself as its reference does: ${make_divisible(24 * width_mult, 8)}, ${ceil(n * depth_mult)}.
SCALE_NAMES = {"width_mult": "width", "depth_mult": "depth"}
_COUNTED = frozenset({BLOCK_COUNT, BLOCK_IN, INPUT})  # names whose reads the expansion counts (ShortForms.reads)


@dataclass
class Scope:
    source: Source
    env: dict[str, Any]
    blocks: tuple[tuple[str, str], ...] = ()  # (block name, instance path), outermost first
    unit: str | None = None
    used: set[str] | None = None  # $params referenced, to report unused ones
    index: int = -1  # the innermost block instance's index among that block's instances (block_index)
    from_input: frozenset[str] = frozenset()  # $params whose value was computed from `in` where the block was used
    counter: str = ""  # what block_index and block_count count: the block's name, or the counter it shares
    block_input: str | None = None  # the node the innermost block instance is applied to (block_in)


@dataclass
class Ref:
    """A parsed short form: op or block name, its arguments, and where each token sits."""

    name: str
    args: dict[str, Any]
    token_locs: dict[str, Loc]
    repeat: int
    loc: Loc
    fixed: bool = False  # keeps its channels under the width multiplier
    repeated: bool = False  # a repeat count was written ('* N'), even '* 1'
    from_input: frozenset[str] = frozenset()  # arguments computed from `in` (already scaled: not scaled again)
    from_count: bool = False  # an argument reads block_count
    # an op keeping its input's shape whatever its arguments (Op.keeps_shape), read without `in` and with no
    # block_index or block_count in its name or repeat count: its arguments may be read again in another
    # instance of its block (graph/instances.py)
    rereadable: bool = False
    indexed: bool = False  # an argument reads block_index or block_count
    text: str = ""  # the short form as written, and its place (to read it again)
    yp: YamlPath = ()


@functools.lru_cache(maxsize=4096)
def mentions_input(text: str) -> bool:
    """Whether a short form or value refers to `in` or `block_in`, input channels that carry the width
    multiplier already (``${in * 4}``, ``$in``, ``${block_in // 4}``)."""
    exprs = _EXPR.findall(text)
    return "$" in text and (
        any(uses_input(e) or _BLOCK_IN_WORD.search(e) for e in exprs) or re.search(r"\$(?:block_)?in(?!\w)", text) is not None
    )


_BLOCK_IN_WORD = re.compile(r"(?<![\w.])block_in(?!\w)", re.ASCII)


@functools.lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[tuple[str, int], ...]:
    """A short form's tokens and their offsets, once per distinct text."""
    return tuple((m.group(), m.start()) for m in _TOKEN.finditer(text))


@functools.lru_cache(maxsize=4096)
def _names_in(text: str) -> frozenset[str]:
    """The names one string refers to (a block's texts are read again in every instance)."""
    found = set(_PARAM.findall(text))
    for expr in _EXPR.findall(text):
        found.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr))
    return frozenset(found)


def referenced_params(node: Any) -> set[str]:
    """Every name a node's text refers to as ``$name`` or inside ``${...}`` (without expanding it)."""
    if isinstance(node, str):
        return set(_names_in(node)) if "$" in node else set()
    found: set[str] = set()
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "$" in item:
                found |= _names_in(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
        elif isinstance(item, BaseModel):
            todo.extend(getattr(item, name) for name in type(item).model_fields)
            todo.extend((item.model_extra or {}).values())
    return found


def _rereadable(op: Op | None, decided: bool) -> bool:
    """Ref.rereadable: an op keeping its input's shape, nothing but its arguments read from block_index, block_count
    or `in` (``decided``: its name or repeat count read them, or `in` was read), reading no earlier value by name."""
    return op is not None and op.keeps_shape and not decided and not op.reads_values


@dataclass
class ShortForms:
    """Parses the short forms of one resolved spec, caching what does not depend on $params.

    What ``in`` means is given with each call (``x``: the node the op being read is applied to);
    ``channels_of(x)`` gives its channels. Reads of ``in`` and ``block_count`` are counted, and a
    read that decides structure (a name, a repeat count, a block's argument) is flagged, so that
    the expansion knows which of its results depend on them (see archspec/graph/__init__.py)."""

    resolved: Resolved
    # block name → its number of instances; None on a first expansion, where block_count is
    # provisional (the expansion then replays the ops that read it, see archspec/graph)
    totals: dict[str, int] | None = None
    channels_of: Callable[[str], int] | None = None
    counted: bool = False  # block_count was looked up
    reads: list[int] = field(default_factory=lambda: [0, 0, 0])  # lookups of block_count, of `in`, of block_index
    reread: list[int] = field(default_factory=lambda: [0, 0])  # ... of block_count and block_index by rereadable Refs
    structural: list[bool] = field(default_factory=lambda: [False, False])  # ... where they decide structure
    _last_parse: tuple[Any, ...] | None = None
    _parses: dict[tuple[str, YamlPath, int], Ref] = field(default_factory=dict)  # short forms without $params
    _bound: dict[tuple[Any, ...], Ref] = field(default_factory=dict)  # ... and with them, by the values they read

    @property
    def scale(self) -> ScaleSpec:
        return self.resolved.spec.scale

    def parse(self, text: str, yp: YamlPath, scope: Scope, x: str | None) -> Ref:
        reads = self.reads
        count, index = reads[0], reads[2]
        ref = self._parse_kept(text, yp, scope, x)
        if ref.rereadable:
            self.reread[0] += reads[0] - count
            self.reread[1] += reads[2] - index
        return ref

    def _parse_kept(self, text: str, yp: YamlPath, scope: Scope, x: str | None) -> Ref:
        if "$" not in text:
            # the same text at the same place parses the same way in every instance of its block
            key0 = (text, yp, id(scope.source))  # sources live as long as the expander
            ref = self._parses.get(key0)
            if ref is None:
                ref = self._parses[key0] = self._parse(text, yp, scope, x)
            return ref
        # a chain parses each member twice (for its repeat count, then to expand it): remember the
        # last parse; the env is kept in the key's value so its id cannot be reused meanwhile
        key = (text, yp, id(scope.source), id(scope.env), x)  # `in` depends on the input
        hit = self._last_parse
        if hit is not None and hit[0] == key:
            return hit[1]
        ref = self._parse_bound(text, yp, scope, x)
        self._last_parse = (key, ref, scope.env)
        return ref

    def _parse_bound(self, text: str, yp: YamlPath, scope: Scope, x: str | None) -> Ref:
        """A short form with $params, parsed once per place and values of the names it reads: the block
        instances of a stage read the same values. Not where it reads `in`, block_in or block_count (they
        are counted, and decide what the expansion does again); a parse that raises is not kept. A kept
        parse marks the names it reads as used, as reading them does."""
        names = _names_in(text)
        if any(n in _COUNTED and n not in scope.env for n in names):
            return self._parse(text, yp, scope, x)
        env = scope.env
        values = repr([(n, env[n]) if n in env else (n, scope.index) if n == BLOCK_INDEX else n for n in sorted(names)])
        key = (text, yp, id(scope.source), scope.from_input, values)
        if BLOCK_INDEX in names:
            self.reads[2] += 1  # (a kept parse reads it too)
        ref = self._bound.get(key)
        if ref is None:
            ref = self._bound[key] = self._parse(text, yp, scope, x)
        elif scope.used is not None:
            scope.used.update(n for n in names if n in env)
        return ref

    def reparse(self, text: str, yp: YamlPath, scope: Scope, x: str | None) -> Ref:
        """Parse again, past the caches (block_count is known now)."""
        return self._parse(text, yp, scope, x)

    def no_block_count(self, before: tuple[int, int], loc: Loc) -> None:
        """A repeat count read since ``before`` must not use block_count (docs/language.md): the count
        of instances would depend on itself."""
        if self.reads[0] != before[0]:
            raise SpecError(
                "a repeat count cannot use $block_count",
                loc,
                code="param",
                hint="block_count may set values inside the blocks (a drop rate), not how many blocks there are",
            )

    def mark_structural(self, before: tuple[int, int]) -> None:
        """Flag the lookups of block_count and `in` made since ``before`` as deciding structure."""
        for k in (0, 1):
            if self.reads[k] != before[k]:
                self.structural[k] = True

    def _parse(self, text: str, yp: YamlPath, scope: Scope, x: str | None) -> Ref:
        base = scope.source.loc(yp)
        quote = _quote_offset(scope.source, base)
        tokens = _tokens(text)
        if not tokens:
            raise SpecError("empty op", base, code="bad-op-args", hint="write an op such as 'conv 64 3x3'")

        def at(offset: int) -> Loc:
            return Loc(base.file, base.line, base.column + quote + offset) if "\n" not in text else base

        start = (self.reads[0], self.reads[1], self.reads[2])
        before = start[:2]
        name, name_off = tokens[0]
        name = self.subst_text(name, at(name_off), scope, x)
        self.mark_structural(before)  # a name given by a $param
        decided = tuple(self.reads) != start  # the name read block_index, block_count or `in`
        op = REGISTRY.get(name)
        if op is None and name not in self.resolved.blocks:
            self.unknown(name, at(name_off))
        args: dict[str, Any] = {}
        locs: dict[str, Loc] = {}
        positional = list(op.positional) if op else []
        repeat = 1
        repeated = fixed = from_count = indexed = False
        from_input: set[str] = set()
        i = 1
        while i < len(tokens):
            raw, off = tokens[i]
            loc = at(off)
            token_start = (self.reads[0], self.reads[1], self.reads[2])
            before = token_start[:2]
            tok = self.subst_text(raw, loc, scope, x)
            i += 1
            if tok == "*" or tok.startswith("*"):
                count = tok[1:]
                if not count and i < len(tokens):
                    loc = at(tokens[i][1])
                    count = self.subst_text(tokens[i][0], loc, scope, x)
                    i += 1
                if not _INT.match(count or ""):
                    raise SpecError(
                        f"'*' must be followed by a repeat count, got {count!r}",
                        loc,
                        code="bad-op-args",
                        hint="write e.g. 'inception_a * 4'",
                    )
                self.no_block_count(before, loc)
                self.mark_structural(before)
                repeat = self.check_repeat(self.scale.repeats(self.check_repeat(int(count), loc)), loc)
                repeated = True
                decided = decided or tuple(self.reads) != token_start
                continue
            if tok == "fixed" and op is not None and op.channels is not None:
                fixed = True
                decided = decided or tuple(self.reads) != token_start
                continue
            key, value = self._token(tok, op, positional, loc, name)
            if key in args:
                raise SpecError(f"{name}: {key} given twice", loc, code="bad-op-args")
            args[key] = value
            locs[key] = loc
            from_count = from_count or self.reads[0] != before[0]
            indexed = indexed or self.reads[0] != token_start[0] or self.reads[2] != token_start[2]
            if op is None:  # a block's argument: it may decide the block's structure
                self.mark_structural(before)
            if mentions_input(raw) or (scope.from_input and referenced_params(raw) & scope.from_input):
                from_input.add(key)
        again = _rereadable(op, decided or repeated or bool(from_input) or self.reads[1] != start[1])
        return Ref(
            name, args, locs, repeat, at(name_off), fixed, repeated, frozenset(from_input), from_count, again, indexed, text, yp
        )

    def check_name(self, text: str, yp: YamlPath, scope: Scope) -> None:
        """The op or block a short form names exists: how far a branch that is not taken is checked
        (its arguments may hold only where it is taken). A name given by a $param is left to the instances."""
        tokens = _tokens(text)
        base = scope.source.loc(yp)
        if not tokens:
            raise SpecError("empty op", base, code="bad-op-args", hint="write an op such as 'conv 64 3x3'")
        name, offset = tokens[0]
        if "$" in name or name in REGISTRY or name in self.resolved.blocks:
            return
        quote = _quote_offset(scope.source, base)
        self.unknown(name, Loc(base.file, base.line, base.column + quote + offset) if "\n" not in text else base)

    def _token(self, tok: str, op: Op | None, positional: list[str], loc: Loc, name: str) -> tuple[str, Any]:
        return read_token(tok, op, positional, loc, name)

    def subst_text(self, text: str, loc: Loc, scope: Scope, x: str | None) -> str:
        if "$" not in text:
            return text

        def value(m: re.Match[str]) -> str:
            return str(self.lookup(m.group(1), loc, scope, x))

        def computed(m: re.Match[str]) -> str:
            return str(self.evaluate(m.group(1), loc, scope, x))

        text = _EXPR.sub(computed, text)
        if "${" in text:
            raise SpecError(f"unclosed '${{' in {text!r}", loc, code="param", hint="write an expression as ${width * 4}")
        return _PARAM.sub(value, text)

    def evaluate(self, text: str, loc: Loc, scope: Scope, x: str | None) -> int | float | bool:
        """The value of a ``${...}`` expression over the block's parameters: a number or, for a condition,
        true/false (see archspec/language/expr.py)."""
        if scope.used is not None:  # every parameter written counts as used, also where and/or/if skip it
            scope.used.update(n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if n in scope.env)
        try:
            return evaluate(text, lambda name: self.lookup(name, loc, scope, x))
        except ExprError as e:
            raise SpecError(
                f"in ${{{text}}}: {e}", loc, code="param", hint="e.g. ${width * 4}, ${c // 16}, ${make_divisible(c * 0.25, 8)}"
            ) from None

    def subst_value(self, value: Any, yp: YamlPath, scope: Scope, x: str | None) -> Any:
        if isinstance(value, str):
            m = _PARAM.fullmatch(value.strip())
            if m:
                return self.lookup(m.group(1), scope.source.loc(yp), scope, x)
            m = _EXPR.fullmatch(value.strip())
            if m:
                return self.evaluate(m.group(1), scope.source.loc(yp), scope, x)
            return self.subst_text(value, scope.source.loc(yp), scope, x)
        if isinstance(value, list):
            return [self.subst_value(v, yp + (i,), scope, x) for i, v in enumerate(value)]
        return value

    def lookup(self, name: str, loc: Loc, scope: Scope, x: str | None) -> Any:
        if name not in scope.env and name in BUILTIN_NAMES:
            return self.builtin(name, loc, scope)
        if name not in scope.env and name in SCALE_NAMES:
            value: float = getattr(self.scale, SCALE_NAMES[name])
            return value
        if name == BLOCK_IN and name not in scope.env:  # the innermost block instance's input channels
            if scope.block_input is None or self.channels_of is None:
                raise SpecError(
                    "'block_in' (the input channels of the enclosing block) is defined only inside a block",
                    loc,
                    code="param",
                    hint="use in for the input channels of the op itself",
                )
            self.reads[1] += 1
            return self.channels_of(scope.block_input)
        if name == INPUT:  # the input channels of the op or block being read
            if x is None or self.channels_of is None:
                raise SpecError(
                    "'in' (the input channels) is not defined here",
                    loc,
                    code="param",
                    hint="use in inside an op or block of the network, e.g. linear ${in * 4} per_pixel",
                )
            self.reads[1] += 1
            return self.channels_of(x)
        if name not in scope.env:
            hint = did_you_mean(name, scope.env) or (
                f"this block's parameters are {', '.join('$' + k for k in scope.env)}"
                if scope.env
                else "declare it under the block's 'params:'"
            )
            raise SpecError(f"undefined parameter ${name}", loc, code="param", hint=hint)
        if scope.used is not None:
            scope.used.add(name)
        return scope.env[name]

    def builtin(self, name: str, loc: Loc, scope: Scope) -> int:
        """block_index or block_count of the innermost block instance around ``loc``."""
        if not scope.blocks:
            raise SpecError(
                f"${name} is defined only inside a block",
                loc,
                code="param",
                hint="block_index and block_count number the instances of the block that uses them; "
                "write the expression in a block (blocks: ...) and use the block in the network",
            )
        if name == BLOCK_INDEX:
            self.reads[2] += 1
            return scope.index
        self.counted = True
        self.reads[0] += 1
        if self.totals is None:
            # provisional, on the first expansion only: larger than the index, so that i / N and
            # i / (N - 1) stay defined and below 1 until the real count is known
            return scope.index + 2
        return self.totals[scope.counter or scope.blocks[-1][0]]

    def check_repeat(self, value: Any, loc: Loc) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"a repeat count must be a whole number, got {value!r}", loc, code="bad-op-args")
        if value < 1 or value > MAX_REPEAT:
            raise SpecError(
                f"repeat count {value} is out of range", loc, code="limit", hint=f"repeat between 1 and {MAX_REPEAT} times"
            )
        return value

    def unknown(self, name: str, loc: Loc) -> None:
        blocks = list(self.resolved.blocks)
        if name.endswith(":") and len(name) > 1:  # `['proj: conv 8 1x1']`: the quotes made name and node one string
            hint: str | None = (
                f"to name a node, quote only its value: {name[:-1]}: 'conv ...' (the whole item in quotes is one op)"
            )
        else:
            hint = did_you_mean(name, list(REGISTRY) + blocks + list(KEYWORDS))
        if hint is None:
            hint = "ops: " + ", ".join(sorted(REGISTRY)) + ("; blocks: " + ", ".join(blocks) if blocks else "")
        raise SpecError(f"unknown op or block {name!r}", loc, code="unknown-op", hint=hint)


def _quote_offset(source: Source, loc: Loc) -> int:
    lines = source.lines
    if 0 < loc.line <= len(lines):
        line = lines[loc.line - 1]
        if 0 < loc.column <= len(line) and line[loc.column - 1] in "'\"":
            return 1
    return 0
