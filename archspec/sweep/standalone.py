"""A variant as one standalone spec file: the spec with its --set overrides applied and every block it
may use written into its own ``blocks:``, so that any row of a sweep is rebuilt exactly from one file."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import SpecError
from archspec.overrides import apply_overrides
from archspec.spec.load import Source
from archspec.spec.resolve import read, resolve


def standalone(spec: Path | str | Source, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The spec after ``overrides`` as data, with the blocks of its ``use:`` libraries inlined."""
    resolved = resolve(spec, overrides)
    source = read(spec)
    apply_overrides(source, overrides)
    data: dict[str, Any] = copy.deepcopy(source.data)
    own = dict(data.get("blocks") or {})
    for name, entry in resolved.blocks.items():
        if name in own or entry.source is resolved.source:
            continue
        node: Any = entry.source.data
        for part in entry.yaml_path:
            node = node[part]
        own[name] = copy.deepcopy(node)
    defaults = dict(data.get("defaults") or {})
    for file, lib_defaults in resolved.library_defaults.items():
        for op, options in lib_defaults.items():
            if defaults.get(op, options) != options:
                raise SpecError(
                    f"the library {file} sets defaults for {op!r} that differ from the spec's: a standalone file cannot "
                    "hold both",
                    resolved.source.loc(("use",)),
                    code="use",
                    hint="move the defaults into the spec",
                )
            defaults[op] = options
    out: dict[str, Any] = {}
    for key, value in data.items():  # keep the spec's order; blocks where use: stood
        if key == "use":
            continue
        out[key] = value
    if defaults:
        out["defaults"] = defaults
    if own:
        out["blocks"] = own
    return out


def standalone_yaml(spec: Path | str | Source, overrides: Mapping[str, Any], header: str = "") -> str:
    text = yaml.safe_dump(standalone(spec, overrides), sort_keys=False, allow_unicode=True, width=120)
    return "".join(f"# {line}\n" for line in header.splitlines()) + text
