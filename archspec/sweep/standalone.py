"""A variant as one standalone spec file: the spec with its --set overrides applied and every block it
may use written into its own ``blocks:``, so that any row of a sweep is rebuilt exactly from one file."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import SpecError
from archspec.language.load import Source
from archspec.language.overrides import apply_overrides
from archspec.language.resolve import resolve


@dataclass(frozen=True)
class _Libraries:
    """What a spec's ``use:`` brings, the same for every variant (--set reaches only the spec's own file)."""

    source: Source
    blocks: dict[str, Any]
    defaults: dict[str, Any]
    files: tuple[str, ...] = ()  # the spec and the libraries it read: a change to any makes the cache stale


_CACHE: dict[str, tuple[tuple[tuple[int, int] | None, ...], _Libraries]] = {}


def _stamps(files: tuple[str, ...]) -> tuple[tuple[int, int] | None, ...]:
    stamps: list[tuple[int, int] | None] = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_mtime_ns, st.st_size))
    return tuple(stamps)


def _libraries(spec: Path | str) -> _Libraries:
    """The spec's libraries, read once per sweep and again whenever the spec or a library changes on disk
    (a sweep resumed after an edit writes what the files say now)."""
    key = str(spec)
    hit = _CACHE.get(key)
    if hit is not None and _stamps(hit[1].files) == hit[0]:
        return hit[1]
    libs = _libraries_of(spec, {})
    if len(_CACHE) >= 8:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (_stamps(libs.files), libs)
    return libs


def _libraries_of(spec: Path | str, overrides: Mapping[str, Any]) -> _Libraries:
    resolved = resolve(spec, overrides)
    own = set((resolved.source.data.get("blocks") or {}) if isinstance(resolved.source.data, dict) else ())
    blocks: dict[str, Any] = {}
    for name, entry in resolved.blocks.items():
        if name in own or entry.source is resolved.source:
            continue
        node: Any = entry.source.data
        for part in entry.yaml_path:
            node = node[part]
        blocks[name] = node
    defaults: dict[str, Any] = {}
    for file, lib_defaults in resolved.library_defaults.items():
        for op, options in lib_defaults.items():
            if defaults.get(op, options) != options:
                raise SpecError(
                    f"the libraries set different defaults for {op!r} ({file}): a standalone file cannot hold both",
                    resolved.source.loc(("use",)),
                    code="use",
                    hint="move the defaults into the spec",
                )
            defaults[op] = options
    files = {
        str(resolved.source.file),
        *(str(e.source.file) for e in resolved.blocks.values()),
        *map(str, resolved.library_defaults),
    }
    return _Libraries(resolved.source, blocks, defaults, tuple(sorted(files)))


def standalone(spec: Path | str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The spec after ``overrides`` as data, with the blocks of its ``use:`` libraries inlined."""
    changes_use = any(k == "use" or k.startswith("use.") for k in overrides)
    libs = _libraries_of(spec, overrides) if changes_use else _libraries(spec)
    base = libs.source
    source = Source(base.file, copy.deepcopy(base.data), base.text, dict(base.marks), dict(base.key_marks), base.path)
    apply_overrides(source, overrides)
    data: dict[str, Any] = source.data
    own = dict(data.get("blocks") or {})
    for name, block in libs.blocks.items():
        own.setdefault(name, copy.deepcopy(block))
    defaults = dict(data.get("defaults") or {})
    for op, options in libs.defaults.items():
        if defaults.get(op, options) != options:
            raise SpecError(
                f"a library sets defaults for {op!r} that differ from the spec's: a standalone file cannot hold both",
                libs.source.loc(("use",)),
                code="use",
                hint="move the defaults into the spec",
            )
        defaults[op] = options
    out = {k: v for k, v in data.items() if k != "use"}  # the spec's order; the blocks at the end
    if defaults:
        out["defaults"] = defaults
    if own:
        out["blocks"] = own
    return out


def standalone_yaml(spec: Path | str, overrides: Mapping[str, Any], header: str = "") -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(standalone(spec, overrides), Dumper=dumper, sort_keys=False, allow_unicode=True, width=120)
    return "".join(f"# {line}\n" for line in header.splitlines()) + text
