"""A variant as one standalone spec file: the spec with its --set overrides applied and every block it
may use written into its own ``blocks:``, so that any row of a sweep is rebuilt exactly from one file."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import SpecError
from archspec.language.load import Source
from archspec.language.resolve import resolve
from archspec.overrides import apply_overrides


@dataclass(frozen=True)
class _Libraries:
    """What a spec's ``use:`` brings, the same for every variant (--set reaches only the spec's own file)."""

    source: Source
    blocks: dict[str, Any]
    defaults: dict[str, Any]


@lru_cache(maxsize=8)
def _libraries(spec: Path | str) -> _Libraries:
    return _libraries_of(spec, {})


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
    return _Libraries(resolved.source, blocks, defaults)


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
