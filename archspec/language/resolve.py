"""Loading a spec with everything it uses: `use:` imports, the block table, the sources.

``resolve`` turns a path or YAML text into a :class:`Resolved`: the validated main Spec, every
block it can refer to (from its own file and from used libraries), and the Source of every
file so any later stage can point at a line and column.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.language.init import InitSources, InitTables, init_tables
from archspec.language.load import Source, YamlPath, dump, load_file, load_text
from archspec.language.model import TAGS, BlockDef, BlockLibrary, Spec
from archspec.language.overrides import apply_overrides
from archspec.library import PREFIX, ZOO, family_of, is_zoo, zoo_path
from archspec.library import names as zoo_names

MAX_USE_DEPTH = 16


@dataclass
class BlockEntry:
    name: str
    definition: BlockDef
    source: Source
    yaml_path: YamlPath  # where the block is defined in its source


@dataclass
class Resolved:
    spec: Spec
    source: Source
    blocks: dict[str, BlockEntry] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    library_defaults: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # file → op → params
    init: InitTables = field(default_factory=dict)  # the init: tables, op names checked (language/init.py)

    def defaults(self, op: str, source: Source) -> dict[str, Any]:
        """Default parameters of ``op`` written in ``source``: the spec's, overlaid by those of the
        block library the op is written in (the nearest file's defaults win)."""
        return {**self.spec.defaults.get(op, {}), **self.library_defaults.get(source.file, {}).get(op, {})}

    def init_sources(self) -> InitSources:
        """Each ``init:`` table as written: the spec's under "", each block's under its name, with where it is written."""
        tables: InitSources = {"": (self.spec.init, self.source, ("init",))}
        for name, entry in self.blocks.items():
            tables[name] = (entry.definition.init, entry.source, entry.yaml_path + ("init",))
        return tables

    @property
    def digest(self) -> str:
        """SHA-256 of what the network is made from — the spec after overrides, every block it may use,
        the libraries' defaults — as data, so comments and formatting do not change it."""
        data = {
            "spec": self.spec.model_dump(mode="json", by_alias=True),
            "blocks": {name: e.definition.model_dump(mode="json", by_alias=True) for name, e in sorted(self.blocks.items())},
            "library_defaults": self.library_defaults,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _strip(loc: tuple[Any, ...]) -> YamlPath:
    return tuple(p for p in loc if not (isinstance(p, str) and (p in TAGS or p.startswith(("function-", "tagged-union")))))


def validation_error(e: ValidationError, source: Source, base: YamlPath = ()) -> SpecError:
    """The first pydantic error, located in the YAML."""
    err = e.errors(include_url=False)[0]
    path = base + _strip(err["loc"])
    kind = err["type"]
    if path and path[-1] == "[key]":  # a mapping key itself is wrong: point at the key
        msg = err["msg"].removeprefix("Value error, ")
        return SpecError(msg, source.loc(path[:-1], key=True), code="name", path=_dotted(path[:-2]) or None)
    if kind == "extra_forbidden":
        key = path[-1]
        fields = sorted(_known_fields(err))
        hint = did_you_mean(str(key), fields) if fields else None
        msg = f"unknown key {key!r}"
        return SpecError(
            msg,
            source.loc(path, key=True),
            code="schema",
            hint=hint or (f"valid keys: {', '.join(fields)}" if fields else None),
            path=_dotted(path[:-1]),
        )
    if kind == "missing":
        return SpecError(f"missing required key {path[-1]!r}", source.loc(path[:-1]), code="schema", path=_dotted(path[:-1]))
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "module_name":
        ctx = err.get("ctx", {})
        return SpecError(
            ctx["problem"],
            source.loc(path + (ctx["key"],), key=True),
            code="name",
            hint="rename it; docs/language.md lists the names a module cannot take",
            path=_dotted(path) or None,
        )
    if kind == "misspelt_keyword":
        ctx = err.get("ctx", {})
        return SpecError(
            f"unknown key {ctx['key']!r}",
            source.loc(path + (ctx["key"],), key=True),
            code="schema",
            hint=f"{ctx['guess']} To name several parts in order instead, write {ctx['key']}: {{chain: {{...}}}}",
            path=_dotted(path),
        )
    if kind == "node_type" and isinstance(err.get("input"), (int, float)) and path and isinstance(path[-1], int):
        return SpecError(
            msg,
            source.loc(path),
            code="schema",
            path=_dotted(path),
            hint="inside [ ... ] a comma separates items, so 'p0,3' splits; "
            "write the list one item per line ('- conv 64 1x7 p0,3') or quote the op",
        )
    if kind == "literal_error" and path == ("archspec",):
        msg = "this file is not an archspec spec of a supported version: 'archspec' must be 1"
    return SpecError(msg, source.loc(path), code="schema", path=_dotted(path) or None)


def _known_fields(err: Any) -> list[str]:
    """The keys allowed where an unknown key was found: the model named by the nearest tag."""
    from archspec.language import model as m

    owners: dict[str, type[Any]] = {
        "<residual>": m.ResidualNode,
        "<block>": m.BlockRef,
        "<concat>": m.ConcatNode,
        "<chain>": m.ChainNode,
        "<if>": m.IfNode,
        "input": m.InputSpec,
        "aux": m.AuxHead,
        "residual": m.ResidualBody,
        "scale": m.ScaleSpec,
    }
    path = _strip(err["loc"])
    fixed = {1: Spec}
    if len(path) == 2 and path[0] == "input":
        return list(m.InputSpec.model_fields)
    if len(path) == 3 and path[0] == "blocks":
        return [f.alias or k for k, f in m.BlockDef.model_fields.items()]
    if len(path) == 4 and path[0] == "blocks" and path[2] == "residual":
        return list(m.ResidualBody.model_fields)
    if len(path) == 3 and path[0] == "aux":
        return list(m.AuxHead.model_fields)
    if len(path) in fixed:
        return [f.alias or k for k, f in Spec.model_fields.items()]
    loc = err["loc"][:-1]
    owner: type[Any] = Spec
    for i in range(len(loc) - 1, -1, -1):
        part = loc[i]
        if part == "residual" and i > 0 and loc[i - 1] == "<residual>":
            owner = m.ResidualBody
            break
        if part in owners and (part.startswith("<") or i == len(loc) - 1 or part == "input" or part == "aux"):
            owner = owners[part]
            break
    return [f.alias or k for k, f in owner.model_fields.items()]


def _dotted(path: YamlPath) -> str:
    return ".".join(str(p) for p in path)


def _looks_like_path(spec: str) -> bool:
    return "\n" not in spec and (spec.endswith((".yaml", ".yml")) or os.path.exists(spec))


def read(spec: str | Path | Source | Mapping[str, Any]) -> Source:
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, Mapping):  # a spec as data: read as the YAML it dumps to, so errors keep line:col
        return load_text(dump(spec), "<dict>")
    if is_zoo(spec):
        member = family_of(str(spec))
        if member is not None:  # zoo:efficientnet_b1: the family's spec, read as the file of that member
            source = load_file(zoo_path(PREFIX + member[0]), str(spec))  # (docs/language.md, "Families")
            if isinstance(source.data, dict):
                source.data.setdefault("variant", member[1])
            return source
        return load_file(zoo_path(str(spec)), str(spec))
    if isinstance(spec, Path) or _looks_like_path(spec):
        _refuse_a_zoo_name_as_path(Path(spec))
        return load_file(spec)
    return load_text(spec, "<string>")


def _refuse_a_zoo_name_as_path(path: Path) -> None:
    # `archspec check resnet50`: a missing file named like a zoo network is almost always that network
    if not path.exists() and not path.suffix and len(path.parts) == 1 and (path.name in zoo_names() or family_of(path.name)):
        raise SpecError("no such file", Loc(str(path)), code="io", hint=f"did you mean zoo:{path.name}? (archspec list)")


def resolve(spec: str | Path | Source | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Resolved:
    """Read, override, validate and import: everything before expansion."""
    source = read(spec)
    if not isinstance(source.data, dict):
        if isinstance(spec, str) and source.path is None and "\n" not in spec.strip() and isinstance(source.data, str):
            # one word of "YAML text" is almost always a path that does not exist (check("nope.txt"))
            raise SpecError(
                "no such file",
                Loc(spec),
                code="io",
                hint="archspec.check and archspec.build take the path of a spec file or the YAML text of a spec",
            )
        kind = "a list" if isinstance(source.data, list) else "a single value"
        raise SpecError(
            f"a spec must be a mapping at the top level, not {kind}",
            source.loc(()),
            code="schema",
            hint="start the file with 'archspec: 1' and 'name: ...'",
        )
    _apply_variant(source, overrides)
    if overrides:
        apply_overrides(source, overrides)
    try:
        model = Spec.model_validate(source.data)
    except ValidationError as e:
        raise validation_error(e, source) from None
    _check_defaults(model.defaults, source)
    root = source.path.parent if source.path else Path.cwd().resolve()
    resolved = Resolved(spec=model, source=source, sources=[source])
    _add_blocks(resolved, model.blocks, source)
    seen: set[Path | None] = {source.path} if source.path else set()
    _use(resolved, model.use, source, root, seen, stack=[source.path] if source.path else [], depth=0)
    resolved.init = init_tables(resolved.init_sources())
    return resolved


def _apply_variant(source: Source, overrides: Mapping[str, Any] | None) -> None:
    """The member of the spec's family that ``variant`` names (written in the spec, or set by --set
    variant=NAME / --variant NAME): its values are set first, as --set would, so that the user's own
    overrides still win over them."""
    data = source.data
    chosen = (overrides or {}).get("variant", data.get("variant"))
    if chosen is None:
        return
    family = data.get("variants")
    where = source.loc(("variant",)) if "variant" in data and "variant" not in (overrides or {}) else Loc("--set variant", 0, 0)
    if not isinstance(family, dict) or chosen not in family:
        names = list(family) if isinstance(family, dict) else []
        raise SpecError(
            f"no variant {chosen!r} in this spec" + (f": its variants are {', '.join(map(str, names))}" if names else ""),
            where,
            code="override",
            hint=did_you_mean(str(chosen), [str(n) for n in names]) or "declare the family under 'variants:'",
        )
    values = family[chosen]
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise SpecError(
            f"variant {chosen!r} must be a mapping of keys to values, as --set takes them",
            source.loc(("variants", chosen)),
            code="schema",
            hint="e.g. b1: {scale.depth: 1.1, input.size: 240}",
        )
    apply_overrides(source, {k: v for k, v in values.items() if k != "variant"})


def _check_defaults(defaults: Mapping[str, Mapping[str, Any]], source: Source) -> None:
    """Every op under ``defaults:`` exists and every option is one of its parameters (a typo there
    would otherwise be ignored silently, e.g. ``cnov: {eps: 0.001}``)."""
    from archspec.ops import REGISTRY

    for op_name, options in defaults.items():
        if op_name not in REGISTRY:
            raise SpecError(
                f"defaults for unknown op {op_name!r}",
                source.loc(("defaults", op_name), key=True),
                code="unknown-op",
                hint=did_you_mean(op_name, REGISTRY) or "defaults apply to ops (docs/language.md lists them), not to blocks",
            )
        fields = REGISTRY[op_name].Params.model_fields
        for option in options:
            if option not in fields:
                hint = did_you_mean(option, fields) or (
                    f"{op_name} has the parameters {', '.join(fields)}" if fields else f"{op_name} has no parameters"
                )
                raise SpecError(
                    f"{op_name} has no parameter {option!r}",
                    source.loc(("defaults", op_name, option), key=True),
                    code="bad-op-args",
                    hint=hint,
                )


def _add_blocks(resolved: Resolved, blocks: Mapping[str, BlockDef], source: Source) -> None:
    from archspec.ops import REGISTRY

    for name, definition in blocks.items():
        if name in REGISTRY:
            raise SpecError(
                f"block {name!r} has the name of an op",
                source.loc(("blocks", name), key=True),
                code="name",
                hint="give the block its own name; op names are listed in docs/language.md",
            )
        if name in resolved.blocks:
            other = resolved.blocks[name]
            first = other.source.loc(other.yaml_path, key=True)
            raise SpecError(
                f"block {name!r} is defined twice (also at {first})",
                source.loc(("blocks", name), key=True),
                code="name",
                hint="rename one of them",
            )
        resolved.blocks[name] = BlockEntry(name, definition, source, ("blocks", name))


def _use(
    resolved: Resolved, uses: list[str], source: Source, root: Path, seen: set[Path | None], stack: list[Path | None], depth: int
) -> None:
    base = source.path.parent if source.path else root
    for i, rel in enumerate(uses):
        loc = source.loc(("use", i))
        if not rel or "\0" in rel:
            raise SpecError(
                f"'use' path {rel!r} is empty or holds a NUL byte",
                loc,
                code="use",
                hint="write the path of a block library relative to this file",
            )
        lib_root = root
        if is_zoo(rel):  # the one exception to confinement: archspec's own block libraries
            target, lib_root = zoo_path(rel, loc, library=True), ZOO
        elif os.path.isabs(rel):
            raise SpecError(
                f"'use' path {rel!r} is absolute",
                loc,
                code="use",
                hint="write it relative to this file, inside the spec tree, or zoo:blocks/NAME.yaml",
            )
        else:
            target = (base / rel).resolve()
        try:
            target.relative_to(lib_root)
        except ValueError:
            raise SpecError(
                f"'use' path {rel!r} leaves the spec tree ({root})",
                loc,
                code="use",
                hint="shared blocks must live under the folder of the spec being compiled",
            ) from None
        if target in stack:
            raise SpecError(
                f"'use' cycle: {rel!r} is already being imported",
                loc,
                code="use",
                hint="remove one of the imports that form the cycle",
            )
        if target in seen:
            continue
        if depth >= MAX_USE_DEPTH:
            raise SpecError("'use' imports nest too deeply", loc, code="use")
        if not target.is_file():
            raise SpecError(f"'use' file {rel!r} not found (looked for {target})", loc, code="use")
        display = rel if is_zoo(rel) else os.path.relpath(target) if source.path else str(target)
        lib_source = load_file(target, display)
        if not isinstance(lib_source.data, dict):
            raise SpecError(
                "a block library must be a mapping with 'archspec: 1' and 'blocks:'", lib_source.loc(()), code="schema"
            )
        try:
            lib = BlockLibrary.model_validate(lib_source.data)
        except ValidationError as e:
            raise validation_error(e, lib_source) from None
        seen.add(target)
        resolved.sources.append(lib_source)
        _check_defaults(lib.defaults, lib_source)
        resolved.library_defaults[lib_source.file] = lib.defaults
        _add_blocks(resolved, lib.blocks, lib_source)
        _use(resolved, lib.use, lib_source, lib_root, seen, stack + [target], depth + 1)


__all__ = ["resolve", "Resolved", "BlockEntry", "validation_error", "read", "Loc"]
