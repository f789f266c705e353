"""The zoo that ships with archspec: the specs and block libraries under ``archspec/zoo/``.

``zoo:NAME`` names a zoo spec anywhere a spec is expected (``archspec check zoo:inception_v4``,
``archspec.build("zoo:resnet50")``), or a member of a zoo spec's family (``zoo:efficientnet_b1``: the
``efficientnet_b0`` spec read as if it said ``variant: b1``), and ``use: [zoo:blocks/resnet.yaml]``
imports one of its block libraries into a spec kept anywhere. The zoo is package data, so a wheel carries it; in a source
checkout ``specs/`` is a link to the same folder.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import yaml

from archspec.errors import Loc, SpecError, did_you_mean

ZOO = Path(__file__).resolve().parent / "zoo"
PREFIX = "zoo:"


def is_zoo(name: object) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def names() -> list[str]:
    """The zoo's networks, by name."""
    return sorted(p.stem for p in ZOO.glob("*.yaml"))


@functools.cache
def members() -> Mapping[str, tuple[str, str | None]]:
    """Every network the zoo carries, by name: each zoo spec's own (→ its name, None) and each member of
    its family (its ``variants:``, docs/language.md "Families": the member's ``name`` where it sets
    one, else the spec's name and the member's, ``efficientnet_b0`` → ``efficientnet_b1``) → (the zoo
    spec, the member). Read once per process (the zoo is package data; every ``zoo:`` name asks)."""
    found: dict[str, tuple[str, str | None]] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for spec in names():
        found[spec] = (spec, None)
        text = (ZOO / f"{spec}.yaml").read_text(encoding="utf-8")
        if "variants:" not in text:
            continue  # (no family: not parsed)
        data = yaml.load(text, Loader=loader)
        variants = data.get("variants") if isinstance(data, dict) else None
        for member, values in (variants or {}).items():
            named = values.get("name") if isinstance(values, dict) else None
            found.setdefault(named if isinstance(named, str) else f"{spec}_{member}", (spec, str(member)))
    return MappingProxyType(found)


def family_of(name: str) -> tuple[str, str] | None:
    """``zoo:NAME`` where NAME is a member of a zoo spec's family and no zoo spec of its own
    (``zoo:efficientnet_b1``): the zoo spec and the member; else None."""
    rel = (name[len(PREFIX) :] if is_zoo(name) else name).removesuffix(".yaml")
    spec, variant = members().get(rel, (rel, None))  # (a member's name is never a path: no file is asked for)
    return (spec, variant) if variant is not None else None


def zoo_path(name: str, loc: Loc | None = None, library: bool = False) -> Path:
    """The file ``zoo:NAME`` stands for (``.yaml`` may be left out); it must lie inside the zoo."""
    rel = name[len(PREFIX) :] if is_zoo(name) else name
    if not rel.endswith((".yaml", ".yml")):
        rel += ".yaml"
    try:  # (a NUL or an over-long name is no file of the zoo either: the same error, not the OS's)
        target = (ZOO / rel).resolve()
        inside = "\0" not in rel and target.is_relative_to(ZOO) and target.is_file()
    except (OSError, ValueError):
        target, inside = ZOO, False
    if not inside:
        choices = [f"blocks/{p.name}" for p in sorted((ZOO / "blocks").glob("*.yaml"))] if library else sorted(members())
        guess = did_you_mean(rel.removesuffix(".yaml"), [c.removesuffix(".yaml") for c in choices])
        hint = (guess + " " if guess else "") + "(the zoo has: " + ", ".join(choices) + "; archspec list)"
        raise SpecError(f"{name!r} is not in archspec's zoo", loc or Loc(name, 0, 0), code="use" if library else "io", hint=hint)
    return target
