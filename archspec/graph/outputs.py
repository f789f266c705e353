"""What the network returns, and the values an op reads besides its input.

``outputs:`` (docs/language.md, "Several outputs") names values of the network to return, in order
(an aux head may not take one's name); a path names a value as ``from:`` names one, in the whole
network (graph/refs.py: the outermost node at that path; nodes side by side there are an error).
"""

from __future__ import annotations

from typing import Any

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.graph.refs import PathValues
from archspec.language.load import Source


def named_outputs(
    values: PathValues, written: list[str] | dict[str, str] | None, source: Source, last: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """The main outputs (name → node id: the network's last value as ``logits``, or what ``outputs:``
    names) and the Network fields that say so (``main``, ``named_outputs``, ``output_paths``)."""
    if written is None:
        return {"logits": last}, {}
    found = _resolve(values, written, source)
    paths = tuple(written.values() if isinstance(written, dict) else written)
    return found, {"main": tuple(found), "named_outputs": True, "output_paths": paths}


def _resolve(values: PathValues, written: list[str] | dict[str, str], source: Source) -> dict[str, str]:
    """``outputs:``: output name → the node id of the value it names.

    A list names each value by its path; a mapping by the key written before it. A path names a
    value as ``from:`` does at the top level (graph/refs.py); a name written twice is a located error
    (a mapping's repeated key is refused by the loader)."""
    pairs = (
        [(p, p, (i,)) for i, p in enumerate(written)] if isinstance(written, list) else [(k, p, (k,)) for k, p in written.items()]
    )
    if not pairs:
        raise SpecError(
            "outputs: names no value",
            source.loc(("outputs",)),
            code="name",
            hint="name the values to return, e.g. outputs: [layer3, layer4]",
        )
    found: dict[str, str] = {}
    for name, path, where in pairs:
        loc = source.loc(("outputs", *where))
        if name in found:
            raise SpecError(f"outputs: {name!r} is named twice", loc, code="name", hint="each output needs its own name")
        node = values.value(path, loc, "outputs:")
        if node is None:
            hint = did_you_mean(path, values.at) or (
                "an output is the module path of a node of the network: a named node, an op or a block instance"
            )
            raise SpecError(f"outputs: {path!r} names no node of the network", loc, code="name", hint=hint)
        found[name] = node
    return found


def feature_taps(values: PathValues, written: list[str], source: Source) -> tuple[tuple[str, str, Loc], ...]:
    """``features:`` (docs/timm.md, features_only): each path's node, named as ``outputs:`` names one; a path
    written twice, or none, is a located error."""
    if not written:
        hint = "name the feature maps, e.g. [layer1, layer2]"
        raise SpecError("features: names no value", source.loc(("features",)), code="name", hint=hint)
    found: list[tuple[str, str, Loc]] = []
    for i, path in enumerate(written):
        loc = source.loc(("features", i))
        if path in [p for p, _, _ in found]:
            raise SpecError(f"features: {path!r} is named twice", loc, code="name", hint="name each feature map once")
        node = values.value(path, loc, "features:")
        if node is None:
            hint = did_you_mean(path, values.at) or "a feature map is the path of a node: a named node, an op or a block"
            raise SpecError(f"features: {path!r} names no node of the network", loc, code="name", hint=hint)
        found.append((path, node, loc))
    return tuple(found)


def check_aux_name(name: str, outputs: dict[str, str], source: Source) -> None:
    """An aux head's name is a key of the dict training mode returns: not an output's."""
    if name in outputs:
        where = source.loc(("aux", name), key=True)
        raise SpecError(f"aux head {name!r} has the name of an output", where, code="name", hint="rename the aux head")
