"""``--set KEY=VALUE`` overrides: dotted paths into the raw spec, values parsed as YAML.

Overrides are applied to the loaded tree before validation, so every later stage (and every
error) sees the overridden spec. A path that does not exist is a SpecError with a hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.spec.load import Source


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
        _remark(source, tuple(parts), key)
        node: Any = source.data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            here = ".".join(str(p) for p in parts[:i]) or "the spec"
            if isinstance(node, dict):
                if isinstance(part, int):
                    part = str(part)
                if part not in node and not (last and _may_add(parts)):
                    hint = did_you_mean(str(part), [str(k) for k in node]) or (
                        f"keys of {here}: {', '.join(map(str, list(node)[:12]))}")
                    raise SpecError(f"--set {key}: {here} has no key {part!r}", Loc("--set", 0, 0), code="override",
                                    hint=hint)
                if last:
                    node[part] = value
                else:
                    node = node[part]
            elif isinstance(node, list):
                if not isinstance(part, int) or not -len(node) <= part < len(node):
                    raise SpecError(f"--set {key}: {here} is a list of {len(node)}; {part!r} is not an index in it",
                                    Loc("--set", 0, 0), code="override")
                if last:
                    node[part] = value
                else:
                    node = node[part]
            else:
                raise SpecError(f"--set {key}: {here} is a single value, it has no {part!r}", Loc("--set", 0, 0),
                                code="override")


def _may_add(parts: list[str | int]) -> bool:
    # new keys are allowed where the language has open mappings: defaults, params, and a block's params
    return len(parts) >= 2 and (parts[0] == "defaults" or "params" in parts[:-1])


def _remark(source: Source, path: tuple[str | int, ...], key: str) -> None:
    """Errors inside an overridden value point at the --set argument, not at the file."""
    where = Loc(f"--set {key}", 1, len(key) + 2)
    for table in (source.marks, source.key_marks):
        for p in [p for p in table if p[: len(path)] == path]:
            del table[p]
    source.marks[path] = where
