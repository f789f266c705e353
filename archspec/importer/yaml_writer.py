"""The imported spec as YAML a person would write: short lists and mappings on one line, layers
``[{conv1: conv2d 64 7x7}, {bn1: bn}, relu]`` grouped, repeats folded to ``block * N`` (with
``names:`` where the source numbers them), block parameters as ``$name`` references; every value
goes through ``yaml.safe_dump``, and user-derived text in comments is made printable ASCII."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import yaml

from archspec.importer.emit import REPEAT, E, _ops, render_op
from archspec.importer.structure import ACTS
from archspec.language.model import KEYWORDS

_UNSAFE = re.compile(r"[^\x20-\x7e]")
_SKIP = object()  # an optional part whose flag an enclosing `if` decided false: nothing is written


class _Flow(list):  # type: ignore[type-arg]
    """A list written on one line: [a, b, c]."""


class _FlowMap(dict):  # type: ignore[type-arg]
    """A mapping written on one line: {a: b}."""


class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type information
    def write_plain(self, text: str, split: bool = True) -> None:
        """A plain value stays on one line (`block out=232 * 3`): a long bracketed list wraps between items."""
        super().write_plain(text, split=False)

    def generate_anchor(self, node: Any) -> str:
        self.anchors_made = getattr(self, "anchors_made", 0) + 1
        return "layers" if self.anchors_made == 1 else f"layers{self.anchors_made}"


Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
FLOW_WIDTH = 80
LAYER_WIDTH = 100  # a list of named layers on one line: [{conv1: conv2d 64 7x7}, {bn1: bn}, relu]
# a longer list of ops still in brackets, wrapped at the dump's width onto a few lines as the zoo's
# specs write a branch ([conv2d $c 1x1 no_bias, bn, relu, conv2d $c 3x3 p1 dw no_bias, bn, ...)
WRAP_WIDTH = 3 * LAYER_WIDTH


def styled(value: Any, seen: dict[int, Any] | None = None) -> Any:
    """Short lists of ops and short mappings of scalars on one line, the rest as blocks. A list or
    mapping that stands in two places (a body with and without its residual sum) stays one object,
    which the dump writes once, with an anchor, and then as an alias (`&layers` … `*layers`)."""
    seen = {} if seen is None else seen
    if isinstance(value, (list, dict)):
        if id(value) not in seen:
            seen[id(value)] = _styled(value, seen)
        return seen[id(value)]
    return value


def _styled(value: Any, seen: dict[int, Any]) -> Any:
    if isinstance(value, list):
        items = [styled(v, seen) for v in value]
        if all(isinstance(v, (str, int, float)) for v in value) and len(", ".join(map(str, value))) + 2 <= WRAP_WIDTH:
            return _Flow(items)
        if (
            all(
                isinstance(v, str) or (isinstance(v, dict) and len(v) == 1 and isinstance(next(iter(v.values())), str))
                for v in value
            )
            and any(isinstance(v, dict) for v in value)
            and len(", ".join(_flow_text(v) for v in value)) <= LAYER_WIDTH
        ):
            return _Flow(_FlowMap(v) if isinstance(v, dict) else v for v in value)
        return items
    if isinstance(value, dict):
        mapping = {k: styled(v, seen) for k, v in value.items()}
        # (a list among several keys: `input: {channels: 3, size: [224, 224]}`; alone, `stage2: [a, b]` reads better)
        flat = all(isinstance(v, (str, int, float, bool)) or (len(value) > 1 and _scalars(v)) for v in value.values())
        if flat and len(", ".join(f"{k}: {_flow_text(v)}" for k, v in value.items())) + 2 <= FLOW_WIDTH:
            return _FlowMap(mapping)
        return mapping
    return value


def _scalars(v: Any) -> bool:
    """A short list of numbers or words (the input's size): one value of a mapping written on one line."""
    return isinstance(v, list) and len(v) <= 4 and all(isinstance(x, (str, int, float)) for x in v)


def _flow_text(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def comment(text: str) -> str:
    """A user-derived string made safe for a YAML comment line: printable ASCII, one line."""
    return _UNSAFE.sub("?", text)[:200]


def spec_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "imported"
    return s if re.match(r"^[A-Za-z_]", s) else f"net_{s}"


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


class Renderer:
    def __init__(self, defaults: dict[str, dict[str, Any]], flat: bool = False) -> None:
        self.defaults = defaults
        self.flat = flat
        self.known: dict[str, bool] = {}  # flags decided by the `if` branches being written

    def node(
        self,
        e: E,
        refs: dict[int, dict[str, str]],
        counter: list[int],
        optional: bool = False,
        special: frozenset[str] = frozenset(),
        top: bool = False,
    ) -> Any:
        if e.names is not None:  # an item of a merged block whose name depends on its flags
            return self._renamed(e, refs, counter, optional, special)
        if e.kind == "if":
            return self._if(e, refs, counter, optional, special)
        if e.kind == "from":
            return {"from": e.target}
        if e.kind == "share":  # a module called again: its weights shared
            return {e.name: {"share": e.target}} if e.name else {"share": e.target}
        if e.kind == "op":
            i = counter[0]
            counter[0] += 1
            value: Any = render_op(e.op, self.defaults, refs.get(i))
        elif e.kind == "inst":
            assert e.inst is not None and e.inst.block is not None
            mine = refs.get(counter[0], {})
            counter[0] += 1
            args = " ".join(
                f"{k}=${mine[k]}" if k in mine else f"{k}={e.inst.args[k]}"
                for k in e.inst.block.params
                if k in mine or k in e.inst.args
            )
            value = f"{e.inst.block.name} {args}".strip()
            if REPEAT in mine:  # a run's length that is a parameter of the block holding it
                value += f" * ${mine[REPEAT]}"
            elif e.repeat != 1:
                value += f" * {e.repeat}"
        elif e.kind == "list":
            items = self._items(e.items, refs, counter)
            value = _named_repeat(e, items) or _fold(items)
            # conv2d → bn → act runs regrouped one per line only in a flat, Caffe-style port (no blocks):
            # the network's items are the rows of check, diff and transfer, and in a block a
            # regrouped activation would sit at another path than the zoo's flat lists put it (diff)
            if isinstance(value, list) and _named_only(e) and self.flat:
                value = _layers(e, value)
        elif e.kind == "concat":
            branches = [self.node(x, refs, counter) for x in e.items]
            if all(x.name for x in e.items) and len({x.name for x in e.items}) == len(e.items):
                value = {"concat": {k: v for b in branches for k, v in b.items()}}
            else:
                value = {"concat": branches}
        elif e.kind == "gate":
            value = {"gate": self.node(e.items[0], refs, counter)}
        else:
            value = self._residual(e, refs, counter, optional, special)
        if e.name in KEYWORDS:  # torchvision's InvertedResidual.block: named inside a chain's mapping
            return {"chain": {e.name: value}}
        return {e.name: value} if e.name else value

    def _residual(
        self, e: E, refs: dict[int, dict[str, str]], counter: list[int], optional: bool, special: frozenset[str]
    ) -> Any:
        body: dict[str, Any] = {"body": self.node(e.items[0], refs, counter)}
        if e.has_shortcut:
            shortcut = self.node(e.items[1], refs, counter)
            body["shortcut"] = {"if": "$projection", "then": shortcut} if optional else shortcut
        if "scale" in special:
            body["scale"] = "$scale"
        elif e.scale != 1.0:
            body["scale"] = e.scale
        if "act" in special:
            body["then"] = "$act"
        elif e.then is not None:
            body["then"] = render_op(e.then, self.defaults)
        return {"residual": body}

    def block(self, block: Any) -> dict[str, Any]:
        body = block.template.body
        refs: dict[int, dict[str, str]] = {}
        for (i, k), name in block.slots.items():
            refs.setdefault(i, {})[k] = name
        out: dict[str, Any] = {"label": block.label}
        if block.counter is not None:
            out["counter"] = block.counter
        if block.params:
            out["params"] = {k: _param_value(v) for k, v in block.params.items()}
        value = self.node(
            body, refs, [0], optional=block.optional, special=frozenset(k for k in ("scale", "act") if k in block.params)
        )
        if body.kind == "list":
            out["chain"] = value
        elif body.kind == "if":  # a residual sum that some instances have: a chain holding the `if`
            out["chain"] = [value]
        else:
            out.update(value)
        return out

    # ---- a merged block's template (importer/optional.py) ----------------------------------------
    def _if(self, e: E, refs: dict[int, dict[str, str]], counter: list[int], optional: bool, special: frozenset[str]) -> Any:
        """An optional part, `{if: $flag, then: part}` (resolved where an enclosing `if` decided the
        flag), or a residual sum present with its flag: `{if: $res, then: {residual: ...}, else: body}`."""
        assert e.cond is not None
        inner = e.items[0]
        if len(e.items) == 2:  # two alternative bodies: `{if: $projection, then: one, else: other}`
            if e.cond in self.known:
                skipped = e.items[1 - int(self.known[e.cond])]
                if not self.known[e.cond]:
                    counter[0] += len(_ops(inner))
                value = self.node(e.items[0 if self.known[e.cond] else 1], refs, counter, optional, special)
                if self.known[e.cond]:
                    counter[0] += len(_ops(skipped))
                return value
            then = self._with(e.cond, True, lambda: self.node(inner, refs, counter, optional, special))
            other = self._with(e.cond, False, lambda: self.node(e.items[1], refs, counter, optional, special))
            return {"if": f"${e.cond}", "then": then, "else": other}
        if e.wrap:
            start = counter[0]
            then = self._with(e.cond, True, lambda: self.node(inner, refs, counter, optional, special))
            end, counter[0] = counter[0], start
            other = self._with(e.cond, False, lambda: self.node(inner.items[0], refs, counter))
            counter[0] = end
            residual = then.get("residual") if isinstance(then, dict) else None
            if isinstance(residual, dict) and residual.get("body") == other:
                residual["body"] = other  # one object: written once, as `&layers`, and then `*layers`
            return {"if": f"${e.cond}", "then": then, "else": other}
        if e.cond in self.known:
            if self.known[e.cond]:
                return self.node(inner, refs, counter, optional, special)
            counter[0] += len(_ops(inner))
            return _SKIP
        return {"if": f"${e.cond}", "then": self._with(e.cond, True, lambda: self.node(inner, refs, counter, optional, special))}

    def _renamed(self, e: E, refs: dict[int, dict[str, str]], counter: list[int], optional: bool, special: frozenset[str]) -> Any:
        """An item under the name its flags give it: `{if: $se, then: {"3": x}, else: {"2": x}}`."""
        assert e.names is not None
        start, end = counter[0], counter[0]
        table = e.names

        def variant(conds: tuple[str, ...], fixed: dict[str, bool]) -> Any:
            nonlocal end
            if not conds:
                key = tuple(fixed[c] for c in e.conds)
                name = table.get(key) or next(iter(table.values()))
                counter[0] = start
                value = self.node(replace(e, names=None, conds=(), name=name), refs, counter, optional, special)
                end = counter[0]
                return value
            c, rest = conds[0], conds[1:]
            if c in self.known:
                return variant(rest, {**fixed, c: self.known[c]})
            then = self._with(c, True, lambda: variant(rest, {**fixed, c: True}))
            other = self._with(c, False, lambda: variant(rest, {**fixed, c: False}))
            return then if then == other else {"if": f"${c}", "then": then, "else": other}

        value = variant(e.conds, {})
        counter[0] = end
        return value

    def _items(self, items: list[E], refs: dict[int, dict[str, str]], counter: list[int]) -> list[Any]:
        """A list's items; a run of optional or renamed items of which two or more hang on one flag is
        written once for each of its values: `{if: $expand, then: [...], else: [...]}`."""
        out: list[Any] = []
        k = 0
        while k < len(items):
            flag = self._flag_of(items[k])
            end = k + 1
            if flag is not None:
                stretch = k
                while stretch < len(items) and self._flag_of(items[stretch]) is not None:
                    stretch += 1
                on_flag = [j for j in range(k, stretch) if self._flag_of(items[j]) == flag]
                end = on_flag[-1] + 1 if len(on_flag) >= 2 else k + 1
            if end - k == 1:
                value = self.node(items[k], refs, counter)
                if value is not _SKIP:
                    out.append(value)
                k = end
                continue
            assert flag is not None
            start, run = counter[0], items[k:end]
            then = self._with(flag, True, lambda run=run: self._items(run, refs, counter))  # type: ignore[misc]
            stop, counter[0] = counter[0], start
            other = self._with(flag, False, lambda run=run: self._items(run, refs, counter))  # type: ignore[misc]
            counter[0] = stop
            group: dict[str, Any] = {"if": f"${flag}", "then": then[0] if len(then) == 1 else then}
            if other:
                group["else"] = other[0] if len(other) == 1 else other
            out.append(group)
            k = end
        return out

    def _flag_of(self, e: E) -> str | None:
        """The first flag not yet decided that an item of a merged block hangs on, if any."""
        if e.names is not None:
            return next((c for c in e.conds if c not in self.known), None)
        if e.kind == "if" and not e.wrap and len(e.items) == 1 and e.cond is not None and e.cond not in self.known:
            return e.cond
        return None

    def _with(self, flag: str, value: bool, render: Callable[[], Any]) -> Any:
        """Render with a flag known (inside the branch of an `if` on it)."""
        before = self.known.get(flag)
        self.known[flag] = value
        try:
            return render()
        finally:
            if before is None:
                del self.known[flag]
            else:
                self.known[flag] = before


_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _named_repeat(e: E, values: list[Any]) -> dict[str, Any] | None:
    """Instances of one block with the same arguments, named stem1 … stemN (or stem0 … stemN-1):
    `{block: b, repeat: N, names: "stem{n}"}` (DenseNet's denseblock1.denselayer1 …)."""
    if len(e.items) < 2 or not all(x.kind == "inst" and x.name and x.inst is not None for x in e.items):
        return None
    if any("$" in str(v) for v in values):  # arguments that are the enclosing block's parameters
        return None
    first = e.items[0].inst
    assert first is not None and first.block is not None
    stems = [_NUMBERED.match(x.name or "") for x in e.items]
    if not all(stems) or len({m.group(1) for m in stems if m}) != 1:
        return None
    numbers = [int(m.group(2)) for m in stems if m]
    start = numbers[0]
    if (
        start not in (0, 1)
        or numbers != list(range(start, start + len(numbers)))
        or any(str(n) != m.group(2) for n, m in zip(numbers, stems, strict=True) if m)
    ):
        return None
    if any(x.inst is None or x.inst.block is not first.block or x.inst.args != first.args for x in e.items):
        return None
    stem = stems[0].group(1) if stems[0] else ""
    out: dict[str, Any] = {"block": first.block.name, "repeat": len(e.items), "names": stem + ("{n}" if start == 1 else "{i}")}
    if first.args:
        out["params"] = {k: _param_value(v) for k, v in first.args.items()}
    return out


def _named_only(e: E) -> bool:
    """No item of the list is named by its index (a stateful op or block without a key): regrouping
    its items into sub-lists changes no module path (a stateless op's index is checked by _layers)."""
    return all(
        x.name is not None
        or (
            x.kind == "op"
            and x.op is not None
            and not x.op.prim.stateful
            and (x.op.prim.path is None or _indexed(x.op.prim.spec_path))
        )
        for x in e.items
        if x.kind in ("op", "inst")
    ) and all(x.op is not None for x in e.items if x.kind == "op")


def _layers(e: E, values: list[Any]) -> list[Any]:
    """Named conv2d → named bn (→ activation) runs, one sub-list each (one line), as a Caffe port's
    flat names are written by hand: [conv1: conv2d 64 7x7 s2 p3, conv1_bn: bn, relu]. The
    activation module's own name is dropped: it holds no tensors."""
    if len(values) != len(e.items):  # folded repeats: leave as is
        return values
    out: list[Any] = []
    i = 0
    while i < len(values):
        kinds = [x.op.prim.op if x.kind == "op" and x.op is not None else None for x in e.items[i : i + 3]]
        if len(kinds) >= 2 and kinds[0] == "conv2d" and kinds[1] == "bn" and e.items[i].name and e.items[i + 1].name:
            layer = list(values[i : i + 2])
            if len(kinds) == 3 and kinds[2] in ACTS:  # stateless: its name is no state_dict key, so it is dropped
                if not _at_index(e.items[i + 2], 2, keep_name=True):
                    return values  # a network archspec built, its activations by index: a sub-list would move them
                act = values[i + 2]
                layer.append(next(iter(act.values())) if isinstance(act, dict) else act)
            out.append(layer)
            i += len(layer)
        else:
            out.append(values[i])
            i += 1
    if len(out) == len(values):
        return values
    j = 0
    for k, v in enumerate(out):  # a stateless op of a network archspec built keeps its index
        if not isinstance(v, list) and not _at_index(e.items[j], k):
            return values
        j += len(v) if isinstance(v, list) else 1
    return out


def _indexed(path: str | None) -> bool:
    return path is not None and path.rpartition(".")[2].isdigit()


def _at_index(x: E, index: int, keep_name: bool = False) -> bool:
    """The item may stand at this index of its list: it has no path of its own in the spec archspec
    built it from, or this index (or, unless ``keep_name``, a name, which it keeps)."""
    prim = x.op.prim if x.kind == "op" and x.op is not None else None
    if prim is None or prim.spec_path is None:
        return True
    if not _indexed(prim.spec_path):
        return not keep_name
    return prim.spec_path.rpartition(".")[2] == str(index)


def _param_value(v: str) -> Any:
    return {"true": True, "false": False}.get(v, _number(v))


def _fold(items: list[Any]) -> list[Any]:
    """Consecutive equal unnamed items of a chain become `item * N`."""
    out: list[Any] = []
    counts: list[int] = []
    for x in items:
        if out and isinstance(x, str) and x == out[-1] and x != "identity":
            counts[-1] += 1
        else:
            out.append(x)
            counts.append(1)
    return [f"{x} * {n}" if n > 1 else x for x, n in zip(out, counts, strict=True)]


def dump(doc: dict[str, Any]) -> str:
    """The spec document as YAML text, styled (see :func:`styled`)."""
    text: str = yaml.dump(styled(doc), Dumper=Dumper, sort_keys=False, width=110, default_flow_style=False, allow_unicode=False)
    return text
