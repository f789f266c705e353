"""``archspec.import_module(model)``: a PyTorch module written back as an archspec spec.

    nn.Module ──torch.fx──▶ Prims (trace.py) ──▶ branch graph (structure.py: chains, concats,
              residuals, gates; dense layers as nested concats)
              ──▶ named tree, blocks with parameters (emit.py) ──▶ YAML (yaml.safe_dump)
    training-mode trace ──▶ the heads the eval-mode forward never calls, as aux: (aux.py)

The spec keeps the module's names, so ``model.state_dict()`` loads into ``archspec.build(spec)``
with ``strict=True``; ``import_module`` checks exactly that, and that both give the same
output on a random input, before returning — what cannot be expressed is an
:class:`~archspec.importer.trace.ImportRefused` error, never a silently different network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from archspec.importer.convert import Converter, fuse_composites
from archspec.importer.emit import E, Emitter, make_blocks, render_op, spec_defaults
from archspec.importer.sources import module_name
from archspec.importer.structure import ACTS, Chain, Step, paths, recover, steps
from archspec.importer.trace import ImportRefused, is_drop_path, trace
from archspec.language.model import KEYWORDS

_UNSAFE = re.compile(r"[^\x20-\x7e]")


@dataclass
class Imported:
    """The spec text and what it took to get there."""

    text: str
    name: str
    blocks: int
    params: int
    aux: dict[str, int] = field(default_factory=dict)  # aux head → its place among the training-mode outputs

    @property
    def lines(self) -> int:
        return self.text.count("\n")


class _Flow(list):  # type: ignore[type-arg]
    """A list written on one line: [a, b, c]."""


class _FlowMap(dict):  # type: ignore[type-arg]
    """A mapping written on one line: {a: b}."""


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type information
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
FLOW_WIDTH = 80
LAYER_WIDTH = 100  # a list of named layers on one line: [{conv1: conv2d 64 7x7}, {bn1: bn}, relu]


def _styled(value: Any) -> Any:
    """Short lists of ops and short mappings of scalars on one line, the rest as blocks."""
    if isinstance(value, list):
        items = [_styled(v) for v in value]
        if all(isinstance(v, (str, int, float)) for v in value) and len(", ".join(map(str, value))) + 2 <= FLOW_WIDTH:
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
        mapping = {k: _styled(v) for k, v in value.items()}
        flat = all(isinstance(v, (str, int, float, bool)) for v in value.values())
        if flat and len(", ".join(f"{k}: {v}" for k, v in value.items())) + 2 <= FLOW_WIDTH:
            return _FlowMap(mapping)
        return mapping
    return value


def _flow_text(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
    return str(v)


def _comment(text: str) -> str:
    """A user-derived string made safe for a YAML comment line: printable ASCII, one line."""
    return _UNSAFE.sub("?", text)[:200]


def _spec_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "imported"
    return s if re.match(r"^[A-Za-z_]", s) else f"net_{s}"


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


class _Renderer:
    def __init__(self, defaults: dict[str, dict[str, Any]], flat: bool = False) -> None:
        self.defaults = defaults
        self.flat = flat

    def node(
        self,
        e: E,
        refs: dict[int, dict[str, str]],
        counter: list[int],
        optional: bool = False,
        special: frozenset[str] = frozenset(),
        top: bool = False,
    ) -> Any:
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
        elif e.kind == "list":
            items = [self.node(x, refs, counter) for x in e.items]
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
        else:  # residual
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
            value = {"residual": body}
        if e.name in KEYWORDS:  # torchvision's InvertedResidual.block: named inside a chain's mapping
            return {"chain": {e.name: value}}
        return {e.name: value} if e.name else value

    def block(self, block: Any) -> dict[str, Any]:
        body = block.template.body
        refs: dict[int, dict[str, str]] = {}
        for (i, k), name in block.slots.items():
            refs.setdefault(i, {})[k] = name
        out: dict[str, Any] = {"label": block.label}
        if block.params:
            out["params"] = {k: _param_value(v) for k, v in block.params.items()}
        value = self.node(
            body, refs, [0], optional=block.optional, special=frozenset(k for k in ("scale", "act") if k in block.params)
        )
        if body.kind == "list":
            out["chain"] = value
        else:
            out.update(value)
        return out


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


def _classes(model: Any) -> dict[str, tuple[str, str]]:
    """Module path → (block name, label): the module's class, or for a network archspec built, the
    block and label its spec gave the instance."""
    out = {path: (type(m).__name__, type(m).__name__) for path, m in model.named_modules()}
    report = getattr(model, "archspec_report", None)
    if report is not None and report.graph is not None:
        labels = {r.path: r.label for r in report.rows}  # a row's label, else its block's (nested instances)
        block_labels = report.graph.net.block_labels
        for _, record in report.graph.records():
            for block, path in record.blocks:
                out[path] = (block, labels.get(path) or block_labels.get(block, block))
    return out


def _number_split_blocks(blocks: list[Any]) -> None:
    """A network archspec built whose block has instances of several structures (parts under `if:`)
    is imported as several blocks: number them all (bneck_1, bneck_2, …), so that `archspec diff`
    pairs them with the spec's instances in order rather than matching the one still named `bneck`."""
    from archspec.importer.emit import _snake

    by_base: dict[str, list[Any]] = {}
    for b in blocks:
        by_base.setdefault(_snake(b.instances[0].base), []).append(b)
    taken = {b.name for b in blocks}
    for base, group in by_base.items():
        if len(group) > 1:
            for k, b in enumerate(group, 1):
                name = f"{base}_{k}"
                while name in taken and name != b.name:
                    name += "_"
                taken.discard(b.name)
                b.name = name
                taken.add(name)


def _instances(model: Any) -> set[str] | None:
    """A network archspec built: the paths of its block instances (None for any other module)."""
    report = getattr(model, "archspec_report", None)
    if report is None or report.graph is None:
        return None
    return {path for _, record in report.graph.records() for _, path in record.blocks}


def _stateless_paths(model: Any, prims: list[Any]) -> None:
    """A network archspec built names its stateless ops too (its fx nodes are its graph's nodes):
    keep those paths, so the import places every op where the spec had it."""
    report = getattr(model, "archspec_report", None)
    graph = getattr(report, "graph", None)
    if graph is None:
        return
    counts: dict[str, int] = {}
    for _, record in graph.records():
        counts[record.path] = counts.get(record.path, 0) + 1
    for p in prims:
        if (
            p.path is None
            and not p.stateful
            and p.op not in ("input", "pass", "scale", "concat", "add")
            and p.node in graph.nodes
        ):
            path = graph.at(p.node).path or None
            # a path two ops share (the relus of unnamed lists [conv, bn, relu] are all `2`) places neither
            unique = path is not None and counts[path] == 1
            p.path = path if unique else None
            p.owner = (path or "").rpartition(".")[0] or None  # the part whose list it stands in
            p.spec_path = path if unique else None


def _weighted_paths(model: Any) -> set[str]:
    return {k.rpartition(".")[0] for k in model.state_dict()}


def _missing(model: Any, reached: set[str]) -> list[str]:
    return sorted(p for p in _weighted_paths(model) if not any(p == r or p.startswith(r + ".") for r in reached))


def _reached(prims: list[Any]) -> set[str]:
    return {p.path for p in prims if p.path and (p.stateful or p.op == "conv")}


def _unreached(model: Any, reached: set[str]) -> None:
    """Every module with weights must be in the spec: one that neither forward calls would
    otherwise vanish from the state_dict."""
    missing = _missing(model, reached)
    if missing:
        top = sorted({m.split(".")[0] for m in missing})
        raise ImportRefused(
            f"modules with weights that the forward never calls: {', '.join(top[:5])}{' …' if len(top) > 5 else ''}",
            module=missing[0],
            hint="modules the forward does not use have no place in a spec: build the model without them",
        )


@dataclass
class _AuxHead:
    graph: Any  # AuxGraph
    chain: Chain
    emitted: Any = None


def _aux_heads(model: Any, gm: Any, prims: list[Any], stack_traces: bool) -> list[_AuxHead]:
    """Training-only heads: the modules with weights the eval-mode forward never calls, read from a
    trace in training mode (see aux.py)."""
    from archspec.importer.aux import aux_graphs

    missing = _missing(model, _reached(prims))
    if not missing:
        return []
    eval_targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    out = []
    for a in aux_graphs(model, eval_targets, {m.split(".")[0] for m in missing}, stack_traces):
        conv = Converter(a.gm)
        head = conv.run()
        if conv.output is None:  # pragma: no cover - an output node always follows
            raise ImportRefused(f"aux head {a.name!r} has no output")
        _stateless_paths(model, head)
        fuse_composites(head, conv.output)
        out.append(_AuxHead(a, recover(head, conv.output)))
        prims = prims + head
    return out


def to_spec(
    model: Any, *, name: str | None = None, source: str | None = None, input_size: tuple[int, int] = (224, 224)
) -> Imported:
    """The spec text of a module, unverified: see :func:`import_module`.

    The module is traced without source lines first; a refusal traces it again with them, so that
    the error names the model's line (torch records them at a good part of the trace's cost)."""
    try:
        return _to_spec(model, name, source, input_size, stack_traces=False)
    except ImportRefused:
        pass
    return _to_spec(model, name, source, input_size, stack_traces=True)


def _to_spec(model: Any, name: str | None, source: str | None, input_size: tuple[int, int], stack_traces: bool) -> Imported:
    import torch.fx as fx

    if isinstance(model, fx.GraphModule):  # built by archspec (or traced already): its graph is the truth
        gm = model
    elif getattr(model, "archspec_report", None) is not None and hasattr(model, "inference"):
        gm = model.inference()  # archspec-built with aux heads: the eval graph (the heads: _aux_heads)
    else:
        was_training = model.training
        model.eval()
        try:
            gm = trace(model, stack_traces)
        finally:
            model.train(was_training)
    _propagate_shapes(gm, model, input_size)
    conv = Converter(gm)
    prims = conv.run()
    if conv.output is None:
        raise ImportRefused("the traced module has no output")
    _stateless_paths(model, prims)
    fuse_composites(prims, conv.output)
    tree: Chain = recover(prims, conv.output)
    first_conv = next((p for p in prims if p.op in ("conv", "conv2d")), None)
    channels = 3
    if first_conv is not None and first_conv.path:
        module = dict(model.named_modules()).get(first_conv.path + (".conv" if first_conv.op == "conv" else ""))
        if module is not None and isinstance(getattr(module, "in_channels", None), int):
            channels = module.in_channels
    heads = _aux_heads(model, gm, prims, stack_traces)
    _unreached(model, _reached(prims) | {p for h in heads for p in paths(h.chain)})

    emitter = Emitter(_classes(model), _instances(model))
    network = emitter.as_list(tree, "")
    for h in heads:
        h.emitted = emitter.as_list(h.chain, h.graph.name)
    blocks = make_blocks(emitter.instances)
    if emitter.plain is not None:
        _number_split_blocks(blocks)
    ops = [o for o in _all_ops(tree)] + [o for h in heads for o in _all_ops(h.chain)]
    defaults = spec_defaults(ops)
    r = _Renderer(defaults, flat=not blocks)
    cls = type(model).__name__
    spec_name = _spec_name(name or _snake_name(cls))
    doc: dict[str, Any] = {
        "archspec": 1,
        "name": spec_name,
        "input": {"channels": channels, "size": [int(input_size[0]), int(input_size[1])]},
    }
    if defaults:
        doc["defaults"] = defaults
    if blocks:
        doc["blocks"] = {b.name: r.block(b) for b in blocks}
    doc["network"] = r.node(network, {}, [0], top=True)
    if heads:
        doc["aux"] = {
            h.graph.name: {
                "tap": h.graph.tap,
                **({"weight": h.graph.weight} if h.graph.weight is not None else {}),
                "head": r.node(h.emitted, {}, [0]),
            }
            for h in heads
        }
    header = [
        f"# {spec_name}: imported by `archspec import` from {_comment(source or cls)}",
        f"# ({_comment(module_name(type(model)) + '.' + cls)}). Module names follow the source, so its "
        "state_dict loads with strict=True.",
    ]
    text = (
        "\n".join(header)
        + "\n"
        + yaml.dump(_styled(doc), Dumper=_Dumper, sort_keys=False, width=110, default_flow_style=False, allow_unicode=False)
    )
    params = sum(p.numel() for p in model.parameters())
    return Imported(text, spec_name, len(blocks), params, {h.graph.name: h.graph.output for h in heads})


def _propagate_shapes(gm: Any, model: Any, input_size: tuple[int, int]) -> None:
    """A channel split (x.chunk(2, 1)) needs the channel count: run the traced module once on zeros
    (eval mode) so torch records every value's shape. Only when there is one."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    if not any(n.op == "call_method" and n.target == "chunk" for n in gm.graph.nodes):
        return
    conv = next((m for m in gm.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels = conv.in_channels if conv is not None else 3
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))  # `meta`: shapes without compute
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, channels, *input_size, device=device))
    except Exception as e:  # noqa: BLE001 - a model that does not run is one located message
        cause = e.__cause__ or e
        what = str(cause).splitlines()[0][:200] if str(cause) else type(cause).__name__
        raise ImportRefused(
            f"the module does not run on a {channels}×{input_size[0]}×{input_size[1]} input to find its channel counts: {what}",
            hint="give the input size with --input-size H W",
        ) from None
    finally:
        model.train(was_training)


def _snake_name(cls: str) -> str:
    return cls.lower()


def _all_ops(node: Chain) -> list[Step]:
    return steps(node)


def verify(model: Any, text: str, input_size: tuple[int, int], tolerance: float = 1e-4, aux: dict[str, int] | None = None) -> Any:
    """Build the spec, load the model's state_dict strictly, compare outputs; returns the built module.
    With ``aux`` (head → its place among the model's training-mode outputs) both also run in training
    mode, dropout off, on a copy of the model (training mode updates BatchNorm statistics), and every
    head's output is compared."""
    from archspec.api import build
    from archspec.errors import SpecError

    try:
        ours = build(text)
    except ImportRefused:
        raise
    except SpecError as e:  # e.g. a product x · g(x) whose g(x) is not C×1×1: no `gate:` takes it
        raise ImportRefused(
            f"the imported spec does not check: {e.message.splitlines()[0]}",
            hint="archspec cannot express this module; see docs/import.md for what it imports",
        ) from None
    theirs, mine = model.state_dict(), ours.state_dict()
    missing, unexpected = sorted(set(theirs) - set(mine)), sorted(set(mine) - set(theirs))
    shapes = sorted(k for k in set(theirs) & set(mine) if theirs[k].shape != mine[k].shape)
    if missing or unexpected or shapes:
        what = "; ".join(
            f"{label}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}"
            for label, keys in (("not in the spec", missing), ("only in the spec", unexpected), ("other shape", shapes))
            if keys
        )
        raise ImportRefused(
            f"the imported spec does not reproduce the module's state_dict ({what})",
            hint="this is a limitation of archspec import; please report it",
        )
    ours.load_state_dict(theirs, strict=True)
    small = (min(input_size[0], VERIFY_SIZE), min(input_size[1], VERIFY_SIZE))
    if small != tuple(input_size):
        try:
            _compare(model, ours, small, tolerance, aux)
            return ours
        except Exception:  # noqa: BLE001 - a network that does not run (or differs) at the small size: its own decides
            pass
    _compare(model, ours, input_size, tolerance, aux)
    return ours


# The size the outputs are compared at first, a side at most: a traced module computes the same
# graph at every size (what depends on a tensor's shape is refused), so a small input checks the
# same ops as the spec's own at a tenth of the time; where either network does not run or they
# differ there, the spec's own size decides.
VERIFY_SIZE = 64


def _compare(model: Any, ours: Any, size: tuple[int, int], tolerance: float, aux: dict[str, int] | None) -> None:
    import torch

    was_training = model.training
    model.eval()
    ours.eval()
    try:
        g = torch.Generator().manual_seed(0)
        channels = ours.archspec_report.input_channels
        x = torch.randn(1, channels, *size, generator=g)
        with torch.no_grad():
            expected, got = model(x), ours(x)
    finally:
        model.train(was_training)
    if not isinstance(expected, torch.Tensor) or expected.shape != got.shape:
        raise ImportRefused(f"the imported spec gives an output of another shape ({tuple(got.shape)})")
    err = (expected - got).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    if not err <= tolerance * scale:
        raise ImportRefused(
            f"the imported spec computes something else: outputs differ by {err:.3g}",
            hint="this is a limitation of archspec import; please report it",
        )
    if aux:
        _verify_aux(model, ours, x, aux, tolerance)


def _verify_aux(model: Any, ours: Any, x: Any, aux: dict[str, int], tolerance: float) -> None:
    import copy

    import torch
    from torch.utils._pytree import tree_flatten

    theirs = copy.deepcopy(model)
    state = copy.deepcopy(ours.state_dict())

    def random(m: Any) -> bool:  # a layer that draws random numbers in training mode
        return isinstance(m, torch.nn.Dropout) or is_drop_path(m)

    dropouts = [(m, m.p) for m in ours.modules() if random(m)]
    try:
        for net in (theirs, ours):
            net.train()
            for m in net.modules():
                if random(m):
                    m.p = 0.0
        batch = torch.cat([x, x.flip(0, 2, 3) * 0.5])  # two images: BatchNorm in training mode needs a batch
        with torch.no_grad():
            expected, _ = tree_flatten(theirs(batch))
            got = ours(batch)
        for name, i in aux.items():
            e, g = expected[i], got[name]
            err = (e - g).abs().max().item() if e.shape == g.shape else float("inf")
            if not err <= tolerance * max(1.0, e.abs().max().item()):
                raise ImportRefused(
                    f"the imported aux head {name!r} computes something else in training mode (differs by {err:.3g})",
                    module=name,
                    hint="this is a limitation of archspec import; please report it",
                )
    finally:
        ours.load_state_dict(state)
        for m, p in dropouts:
            m.p = p
        ours.eval()


def import_module(
    model: Any,
    *,
    name: str | None = None,
    source: str | None = None,
    input_size: tuple[int, int] | int | None = None,
    check: bool = True,
) -> str:
    """The spec (YAML text) of a PyTorch module: its branch graph, with blocks, repeats and the
    module's own names. With ``check`` (the default) the spec is built, the module's state_dict
    loaded into it strictly and both run on one random input before the text is returned."""
    size = _size(model, input_size)
    result = to_spec(model, name=name, source=source, input_size=size)
    if check:
        verify(model, result.text, size, aux=result.aux)
    return result.text


def _size(model: Any, input_size: tuple[int, int] | int | None) -> tuple[int, int]:
    if isinstance(input_size, int):
        return (input_size, input_size)
    if input_size is not None:
        return (int(input_size[0]), int(input_size[1]))
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)) and len(cfg["input_size"]) == 3:
        return (int(cfg["input_size"][1]), int(cfg["input_size"][2]))
    if type(model).__name__ == "Inception3":
        return (299, 299)
    return (224, 224)


__all__ = ["import_module", "to_spec", "verify", "Imported", "ImportRefused"]
