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

import yaml

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.spec.load import Source, YamlPath
from archspec.spec.model import Spec

_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_assignment(text: str) -> tuple[str, Any]:
    """'a.b=VALUE' → ('a.b', parsed VALUE)."""
    if "=" not in text:
        raise SpecError(f"--set expects KEY=VALUE, got {text!r}", Loc("--set", 0, 0), code="override",
                        hint="e.g. --set input.size=[331,331]")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _split(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for part in key.split("."):
        if not part:
            raise SpecError(f"empty segment in override key {key!r}", Loc("--set", 0, 0), code="override")
        parts.append(int(part) if part.lstrip("-").isdigit() else part)
    return parts


def apply_overrides(source: Source, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        parts = _split(key)
        path, container, last, attr = _locate(source.data, parts, key)
        _remark(source, path + (last,), key)
        if attr is None:
            container[last] = value
        else:
            if attr == "repeat" and not isinstance(container, list):
                raise _fail(key, "only items of a list (a chain) can be repeated",
                            hint="write the node as a list item, e.g. [inception_a * 2]")
            container[last] = _set_in_short(container[last], attr, value, key)


def _fail(key: str, message: str, hint: str | None = None) -> SpecError:
    return SpecError(f"--set {key}: {message}", Loc("--set", 0, 0), code="override", hint=hint)


def _locate(data: Any, parts: list[str | int], key: str) -> tuple[YamlPath, Any, str | int, str | None]:
    """Walk the key: (concrete path of the container, container, last key or index, short-form attribute)."""
    node: Any = data
    path: YamlPath = ()
    container: Any = None
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = ".".join(str(p) for p in path) or "the spec"
        if isinstance(node, dict):
            part = str(part)
            if part not in node:
                if not _may_add(path + (part,), node, last):
                    hint = did_you_mean(part, [str(k) for k in node]) or (
                        f"keys of {here}: {', '.join(map(str, list(node)[:12]))}")
                    raise _fail(key, f"{here} has no key {part!r}", hint)
                if not last:
                    node[part] = {}
        elif isinstance(node, list):
            part = _index(node, part, here, key)
        elif isinstance(node, str) and last and i >= 1:
            # a short form such as 'inception_a * 4': its repeat count or a key=value argument
            return path[:-1], container, path[-1], str(part)
        else:
            raise _fail(key, f"{here} is a single value, it has no {part!r}")
        if last:
            return path, node, part, None
        container = node
        node = node[part]
        path = path + (part,)
    raise AssertionError("unreachable")  # pragma: no cover


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
        if not -len(items) <= part < len(items):
            raise _fail(key, f"{here} is a list of {len(items)}; {part} is not an index in it")
        return part % len(items)
    names = [_item_name(item) for item in items]
    hits = [i for i, n in enumerate(names) if n == part]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise _fail(key, f"{part!r} names items {', '.join(map(str, hits))} of {here}",
                    hint=f"use the index, e.g. {here}.{hits[0]}")
    hint = did_you_mean(part, [n for n in names if n]) or f"use an index between 0 and {len(items) - 1}"
    raise _fail(key, f"{here} has no item {part!r}", hint)


def _set_in_short(text: str, attr: str, value: Any, key: str) -> str:
    """Rewrite a short form: 'repeat' sets '* N'; any other name sets a 'name=value' argument."""
    words = text.split()
    if attr == "repeat":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(key, f"a repeat count must be a whole number of at least 1, got {value!r}")
        kept: list[str] = []
        skip = False
        for word in words:
            if skip:
                skip = False
            elif word == "*":
                skip = True
            elif not word.startswith("*"):
                kept.append(word)
        return " ".join(kept + ["*", str(value)])
    if not _WORD.match(attr):
        raise _fail(key, f"{attr!r} is not an argument name")
    shown = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    if not shown or any(c.isspace() for c in shown):
        raise _fail(key, f"the value of a short-form argument cannot contain spaces, got {value!r}")
    kept = [w for w in words if not w.startswith(attr + "=")]
    at = next((i for i, w in enumerate(kept) if w.startswith("*")), len(kept))  # before a '* N' repeat
    return " ".join(kept[:at] + [f"{attr}={shown}"] + kept[at:])


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
