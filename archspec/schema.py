"""The JSON Schema of the spec language, for editors (``# yaml-language-server: $schema=...``).

The pydantic models of ``archspec.language.model`` give the structure; this module adds what only
the op registry knows: every op's long form (``{op: conv, out: 64, kernel: 3}``) as its own
variant with typed, documented parameters, and per-op ``defaults:``. Parameters may always be
``$name`` references to block parameters. The schema is a convenience for editors: archspec's
own validation (with line and column in every message) is the authority.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from archspec.language.model import KEYWORDS, MODULE_NAME_JSON_PATTERN, BlockLibrary, Spec
from archspec.ops import REGISTRY

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_PARAM_REF = {"type": "string", "pattern": r"^\$[A-Za-z_][A-Za-z0-9_]*$", "description": "a block parameter, $name"}


def _with_param_refs(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema that also accepts a $name reference."""
    keep: dict[str, Any] = {k: prop[k] for k in ("title", "description", "default") if k in prop}
    typed = {k: v for k, v in prop.items() if k not in keep}
    return {**keep, "anyOf": [typed, _PARAM_REF]}


def op_params(name: str) -> tuple[dict[str, Any], list[str]]:
    """(properties, required) of an op's parameters, from its pydantic model."""
    schema = REGISTRY[name].Params.model_json_schema()
    props = {k: _with_param_refs(v) for k, v in schema.get("properties", {}).items()}
    return props, list(schema.get("required", []))


def short_form(name: str) -> str:
    return REGISTRY[name].short_form or name


def op_long_forms() -> list[dict[str, Any]]:
    """One schema per op that can be written in a spec: {op: NAME, ...its parameters}."""
    forms = []
    for name in sorted(REGISTRY):
        op = REGISTRY[name]
        if op.arity != 1:  # concat and add come from `concat:` and `residual:`
            continue
        props, required = op_params(name)
        props = {"op": {"const": name, "description": op.doc}, **props}
        if op.channels is not None:
            props["fixed"] = {
                "type": "boolean",
                "default": False,
                "description": "keep the output channels under the width multiplier",
            }
        forms.append(
            {
                "title": f"{name} (long form)",
                "description": op.doc,
                "type": "object",
                "properties": props,
                "required": ["op", *required],
                "additionalProperties": False,
            }
        )
    return forms


def _defaults() -> dict[str, Any]:
    props = {}
    for name in sorted(REGISTRY):
        if REGISTRY[name].arity != 1 or not REGISTRY[name].Params.model_fields:
            continue
        p, _ = op_params(name)
        props[name] = {
            "type": "object",
            "properties": p,
            "additionalProperties": False,
            "description": f"defaults for every {name}",
        }
    return {
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "description": "per-op default parameters, applied before the arguments an op is written with",
    }


def _patch(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema["$defs"]
    names = ", ".join(sorted(n for n, o in REGISTRY.items() if o.arity == 1))
    node = defs["Node"]
    variants = node.pop("oneOf")
    short = next(v for v in variants if v.get("type") == "string")
    named = next(v for v in variants if v.get("type") == "object" and "properties" not in v)
    short.update(
        description=f"an op or block in short form, e.g. 'conv 96 3x3 s2 p1' or 'inception_a * 4'. Ops: {names}", minLength=1
    )
    named.update(
        description="{name: node}: gives its node a module name",
        minProperties=1,
        maxProperties=1,
        propertyNames={"pattern": MODULE_NAME_JSON_PATTERN},
        **{"not": {"anyOf": [{"required": [k]} for k in KEYWORDS]}},
    )
    node["oneOf"] = variants
    node["description"] = (
        "a node of the branch graph: an op or block (short or long form), a chain (a list or "
        "{chain}), parallel branches ({concat}), a residual ({residual}), a gate ({gate}) or {name: node}"
    )
    defs["OpLong"] = {"description": "an op in long form: {op: NAME, ...parameters}", "oneOf": op_long_forms()}
    if "defaults" in schema["properties"]:
        schema["properties"]["defaults"] = _defaults()
    for model in ("BlockDef",):
        if model in defs and "op" in defs[model]["properties"]:
            defs[model]["properties"]["op"]["description"] = f"a single op in short form. Ops: {names}"
    return schema


def json_schema(kind: str = "spec") -> dict[str, Any]:
    """The JSON Schema of a spec file (kind 'spec') or of a shared block library (kind 'blocks')."""
    model = Spec if kind == "spec" else BlockLibrary
    schema = copy.deepcopy(model.model_json_schema(by_alias=True))
    schema = _patch(schema)
    title = "archspec spec" if kind == "spec" else "archspec block library"
    return {"$schema": DRAFT, "title": title, **{k: v for k, v in schema.items() if k != "title"}}


def schema_text(kind: str = "spec") -> str:
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


__all__ = ["json_schema", "schema_text", "op_params", "op_long_forms", "short_form"]
