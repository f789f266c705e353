"""``--set KEY=VALUE`` overrides: dotted paths into the raw spec, values parsed as YAML.

Overrides are applied to the loaded tree before validation, so every later stage (and every
error) sees the overridden spec. A path that does not exist is a SpecError with a hint.

Besides keys and list indices, a key may address a list item by its op, block or module name
when that name is unique in the list (``network.features.inception_a``), and reach into a
short form: ``.repeat`` sets its ``* N`` count, any other name a ``name=value`` argument
(``network.features.reduction_a.k=200``). Missing optional keys (``scale.width``, ``defaults.*``,
a block's ``params``) are created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.language.load import MAX_DEPTH, MAX_NODES, Source, YamlPath, load_text
from archspec.language.model import Spec

_KEYVAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WORD = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_assignment(text: str) -> tuple[str, Any]:
    """'a.b=VALUE' → ('a.b', parsed VALUE).

    VALUE is read by the same loader as spec files (no tags, bounded aliases and nesting, located
    errors), its positions at ``--set KEY:1:COL``.
    """
    if "=" not in text:
        raise SpecError(
            f"--set expects KEY=VALUE, got {text!r}",
            Loc(f"--set {text}", 1, 1),
            code="override",
            hint="e.g. --set input.size=[331,331]",
        )
    key, _, raw = text.partition("=")
    key = key.strip()
    if not raw.strip():
        return key, ""
    where = f"--set {key}"
    try:
        source = load_text(raw, where)
    except SpecError as e:
        shift = len(key) + 1 if e.line == 1 else 0  # columns count from the start of KEY=VALUE
        raise SpecError(e.message, Loc(where, max(e.line, 1), e.column + shift), code=e.code, hint=e.hint) from None
    return key, source.data


def _check_value(key: str, value: Any) -> None:
    """Values passed from Python (``overrides={...}``) are bounded like files: nesting and size."""
    where = Loc(f"--set {key}", 1, len(key) + 2)
    todo: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    while todo:
        item, depth = todo.pop()
        count += 1
        if count > MAX_NODES:
            raise SpecError(f"the value holds more than {MAX_NODES} items", where, code="limit")
        if depth > MAX_DEPTH:
            raise SpecError(
                f"the value nests deeper than {MAX_DEPTH} levels", where, code="yaml-unsafe", hint="flatten the structure"
            )
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise SpecError(f"a mapping key in the value is {type(k).__name__}, not text", where, code="override")
                todo.append((v, depth + 1))
        elif isinstance(item, (list, tuple)):
            todo.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise SpecError("the value holds a lone surrogate", where, code="override") from None
        elif not (item is None or isinstance(item, (bool, int, float))):
            raise SpecError(
                f"a value of type {type(item).__name__} cannot be part of a spec",
                where,
                code="override",
                hint="use strings, numbers, booleans, None, lists and dicts",
            )


def _split(key: str) -> list[str | int]:
    parts: list[str | int] = []
    if not key:
        raise SpecError("empty override key", Loc("--set ", 1, 1), code="override", hint="e.g. --set input.size=[331,331]")
    for part in key.split("."):
        if not part:
            raise SpecError(f"empty segment in override key {key!r}", Loc(f"--set {key}", 1, 1), code="override")
        parts.append(int(part) if part.lstrip("-").isdigit() else part)
    return parts


def apply_overrides(source: Source, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        parts = _split(key)
        _check_value(key, value)
        path, container, last, attr = _locate(source.data, parts, key)
        _remark(source, path + (last,), key)
        if attr is None:
            container[last] = value
        else:  # a repeat set on a named part makes it a chain of copies named part.0, part.1 … (language.md)
            container[last] = _set_in_short(container[last], attr, value, key)


def _fail(key: str, message: str, hint: str | None = None, at: str | int | None = None) -> SpecError:
    """An override error at ``--set KEY:1:COL``: COL of the segment ``at`` of KEY, else of the value."""
    return SpecError(message, Loc(f"--set {key}", 1, _column(key, at)), code="override", hint=hint)


def _column(key: str, at: str | int | None) -> int:
    if at is None:
        return len(key) + 2
    offset = 0
    for segment in key.split("."):
        if segment == str(at):
            return offset + 1
        offset += len(segment) + 1
    return 1


def _locate(data: Any, parts: list[str | int], key: str) -> tuple[YamlPath, Any, str | int, str | None]:
    """Walk the key: (concrete path of the container, container, last key or index, short-form attribute)."""
    node: Any = data
    path: YamlPath = ()
    container: Any = None
    step, name = False, ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = ".".join(str(p) for p in path) or "the spec"
        if isinstance(node, dict):
            part = str(part)
            inner = _named_parts(node, part)
            if inner is not None:  # a part is addressed by its module path, as rows print it (network.head.fc)
                node, path = node[inner], path + (inner,)
            if part not in node:
                if not _may_add(path + (part,), node, last):
                    hint = did_you_mean(part, [str(k) for k in node]) or (
                        f"keys of {here}: {', '.join(map(str, list(node)[:12]))}"
                    )
                    raise _fail(key, f"{here} has no key {part!r}", hint, at=part)
                if not last:
                    node[part] = {}
        elif isinstance(node, list):
            named = part if isinstance(part, str) else None
            part = _index(node, part, here, key)
            item = node[part]
            if named is not None and not last and isinstance(item, dict) and list(item) == [named]:
                # `network.layer1.1`: into the named item's value (its own spelling, layer1.layer1, too)
                step, name = str(parts[i + 1]) != named, named
        elif isinstance(node, str) and last and i >= 1:
            # a short form such as 'inception_a * 4': its repeat count or a key=value argument
            return path[:-1], container, path[-1], str(part)
        else:
            raise _fail(key, f"{here} is a single value, it has no {part!r}", at=part)
        if last:
            return path, node, part, None
        container = node
        node = node[part]
        path = path + (part,)
        if step:  # a list item {NAME: value} addressed by NAME: the next segment is inside its value
            container, node, path, step = node, node[name], path + (name,), False
    raise AssertionError("unreachable")  # pragma: no cover


def _named_parts(node: dict[Any, Any], part: str) -> str | None:
    """The key (``chain`` or ``concat``) of a mapping of named parts that holds ``part``, where ``node`` has
    no key ``part`` itself: the mapping's level is not in the module path, so it need not be in the key."""
    if part in node:
        return None
    for wrapper in ("chain", "concat"):
        inner = node.get(wrapper)
        if isinstance(inner, dict) and part in inner:
            return wrapper
    return None


def _item_name(item: Any) -> str | None:
    """The name a list item can be addressed by: its op or block name, or its module name."""
    if isinstance(item, str):
        words = item.split()
        return words[0] if words else None
    if isinstance(item, dict):
        if "block" in item:
            return str(item["block"])
        if "op" in item:
            return str(item["op"])
        if len(item) == 1:
            return str(next(iter(item)))
    return None


def _index(items: list[Any], part: str | int, here: str, key: str) -> int:
    if isinstance(part, int):
        if part < 0:  # Python's "from the end" would quietly pick an item; an index past the end is an error
            hint = f"the last item is {here}.{len(items) - 1}" if items else None
            raise _fail(key, f"{here}: negative index {part}; indices count from 0", hint, at=part)
        if not part < len(items):
            raise _fail(key, f"{here} is a list of {len(items)}; {part} is not an index in it", at=part)
        return part % len(items)
    names = [_item_name(item) for item in items]
    hits = [i for i, n in enumerate(names) if n == part]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise _fail(
            key,
            f"{part!r} names items {', '.join(map(str, hits))} of {here}",
            at=part,
            hint=f"use the index, e.g. {here}.{hits[0]}",
        )
    hint = did_you_mean(part, [n for n in names if n]) or f"use an index between 0 and {len(items) - 1}"
    raise _fail(key, f"{here} has no item {part!r}", hint, at=part)


def _set_in_short(text: str, attr: str, value: Any, key: str) -> str:
    """Rewrite a short form with the lexer's own tokens (so ``${a + b}`` stays one token): 'repeat' sets
    '* N'; any other name replaces the token that sets it (a positional number in place), else is added
    as 'name=value' before the repeat count."""
    from archspec.language.tokens import token_field, tokens
    from archspec.ops import REGISTRY

    words = [t for t, _ in tokens(text)]
    star = next((i for i, w in enumerate(words) if w.startswith("*") and i > 0), len(words))  # '* N' / '*N'
    body, repeat = words[:star], words[star:]
    if attr == "repeat":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(key, f"a repeat count must be a whole number of at least 1, got {value!r}")
        return " ".join(body + ["*", str(value)])
    if not _WORD.match(attr):
        raise _fail(key, f"{attr!r} is not an argument name", at=attr)
    shown = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    if not shown or any(c.isspace() for c in shown):
        raise _fail(key, f"the value of a short-form argument cannot contain spaces, got {value!r}")
    op = REGISTRY.get(body[0]) if body else None
    positional = list(op.positional) if op is not None else []
    sets = [token_field(w, op, positional) for w in body[1:]]
    kept: list[str] = body[:1]
    for word, field in zip(body[1:], sets, strict=True):
        if field != attr:
            kept.append(word)
        elif op is not None and attr in op.positional and not _KEYVAL.match(word):
            kept.append(shown)  # given by position ('dropout 0.2', 'conv 64 3x3'): replaced there
            attr = ""  # set
    if attr:
        kept.append(f"{attr}={shown}")
    return " ".join(kept + repeat)


def _may_add(path: YamlPath, node: dict[str, Any], last: bool) -> bool:
    """New keys are allowed where the language has optional or open mappings."""
    if path[0] in ("defaults", "scale") or (len(path) == 1 and path[0] in Spec.model_fields):
        return True
    if "block" in node and path[-1] in ("repeat", "params"):
        return True
    return "params" in path[:-1]


def _remark(source: Source, path: YamlPath, key: str) -> None:
    """Errors inside an overridden value point at the --set argument, not at the file."""
    where = Loc(f"--set {key}", 1, len(key) + 2)
    for table in (source.marks, source.key_marks):
        for p in [p for p in table if p[: len(path)] == path]:
            del table[p]
    source.marks[path] = where
