"""A network's classifier, found in its IR, and the overrides that give it another number of classes.

timm's ``num_classes=`` and ``in_chans=`` mean: the same network with a head of N outputs (0: no
classifier, the pooled features come out) and an input of N channels. Both are spec overrides here,
so that the built module, its report and a saved spec all say the same thing:

- ``input.channels`` is an ordinary key; the first conv follows, as every shape does.
- the classifier of each output (the logits and every aux head) is the last ``linear`` on the path
  to it, past ops that hold no weights and keep the classes (dropout, flatten, identity). Its
  override key is its spec path (``network.fc``, ``network.classifier.3``, ``aux.aux1.head.fc2``);
  the value is the same op written with the new size (``linear 10``, ``no_bias`` kept), or
  ``identity`` for 0 classes.

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from archspec.errors import Loc, SpecError
from archspec.ir import OpGraph

# ops between the classifier and the output that keep its size and hold no weights
PASSTHROUGH = frozenset({"dropout", "flatten", "identity", "drop_path"})
MAX_CLASSES = 1 << 20


@dataclass(frozen=True)
class Head:
    """The classifier of one output: its node, override key, spec text, and the dropout before it."""

    output: str  # "logits" or an aux head's name
    node: str
    key: str  # the override key of the classifier op
    out: int  # its size now
    dropout_key: str | None  # the override key of a dropout right before it (after the pool)
    dropout_node: str | None


def _key(graph: OpGraph, output: str, node: str) -> str:
    origin = graph.at(node).origin
    if output == "logits":
        return "network." + origin
    return f"aux.{output}.head." + origin.removeprefix(output + ".")


def _dropout_before(graph: OpGraph, node: str) -> str | None:
    """A dropout feeding ``node`` directly or through ops that hold no weights (flatten)."""
    seen = node
    for _ in range(4):
        preds = list(graph.predecessors(seen))
        if len(preds) != 1:
            return None
        seen = preds[0]
        op = graph.at(seen).op
        if op == "dropout":
            return seen
        if op not in PASSTHROUGH:
            return None
    return None


def _classifier(graph: OpGraph, node: str) -> bool:
    """A ``linear`` written as itself, or a 1×1 ``conv2d`` on a map of one pixel (timm's BiT head,
    ``head.fc``: a conv on the pooled map, flattened after)."""
    record = graph.at(node)
    if record.composite is not None or record.params is None:
        return False
    if record.op == "linear":
        return True
    if record.op != "conv2d" or getattr(record.params, "kernel", None) != (1, 1) or record.shape is None:
        return False
    h, w = record.shape.height, record.shape.width
    return h is not None and w is not None and h.is_const and w.is_const and h(0) == w(0) == 1


def heads(graph: OpGraph) -> list[Head]:
    """The classifier of every output whose last weighted op is a ``linear``, outputs in order."""
    found = []
    for output, node in graph.net.outputs.items():
        seen = node
        while graph.at(seen).op in PASSTHROUGH and len(list(graph.predecessors(seen))) == 1:
            seen = next(iter(graph.predecessors(seen)))
        record = graph.at(seen)
        if not _classifier(graph, seen):
            continue
        if getattr(record.params, "per_pixel", False):
            continue
        drop = _dropout_before(graph, seen)
        found.append(
            Head(
                output,
                seen,
                _key(graph, output, seen),
                int(cast(Any, record.params).out),
                None if drop is None else _key(graph, output, drop),
                drop,
            )
        )
    return found


def _linear_text(graph: OpGraph, node: str, classes: int) -> str:
    from archspec.ops.registry import REGISTRY

    record = graph.at(node)
    assert record.params is not None
    if classes == 0:
        return "identity"
    return REGISTRY[record.op].short(record.params.model_copy(update={"out": classes}))


def _refusal(message: str, where: str, hint: str) -> SpecError:
    """A head cannot be changed as asked: the ``override`` error, located at the network (or argument)."""
    return SpecError(message, Loc(where, 0, 0), code="override", hint=hint)


def check_classes(value: Any, what: str = "num_classes") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CLASSES:
        raise _refusal(
            f"{what} must be a whole number from 0 to {MAX_CLASSES}, got {value!r}",
            what,
            "0 removes the classifier (the pooled features come out), as timm's num_classes=0 does",
        )
    return value


def head_overrides(spec: Any, overrides: Mapping[str, Any] | None, num_classes: int, *, aux: bool = True) -> dict[str, Any]:
    """``overrides`` plus what sets every classifier (and, with ``aux``, the aux heads') to
    ``num_classes`` outputs. A SpecError names the network when it has no ``linear`` classifier."""
    from archspec.pipeline import analyze

    check_classes(num_classes)
    report = analyze(spec, overrides)
    graph = report.graph
    found = heads(graph)
    merged = dict(overrides or {})
    if not any(h.output == "logits" for h in found):
        raise _refusal(
            f"{report.name}: cannot set the number of classes: its output is not computed by a `linear` classifier",
            report.file or report.name,
            "set the last layer with --set (e.g. --set network.fc='linear 10')",
        )
    changes = [
        (h.key, _linear_text(graph, h.node, num_classes), graph.at(h.node).path) for h in found if h.output == "logits" or aux
    ]
    return _apply(spec, merged, changes, report.name)


def _paths(spec: Any, overrides: dict[str, Any]) -> set[str]:
    from archspec.pipeline import analyze

    graph = analyze(spec, overrides).graph
    return {record.path for _, record in graph.records()}


def _apply(spec: Any, overrides: dict[str, Any], changes: list[tuple[str, Any, str]], name: str) -> dict[str, Any]:
    """``overrides`` plus each (key, value) of ``changes``, the op keeping its module path. An item of a
    list named by its module name (``- fc: linear 1000``) keeps its name only when the value names it
    again: where the path is gone after the plain value, the value is written ``{name: value}``."""
    merged = dict(overrides)
    for key, value, _ in changes:
        merged[key] = value
    paths = _paths(spec, merged)
    moved = [(key, value, path) for key, value, path in changes if path not in paths and value != "identity"]
    for key, value, path in moved:
        merged[key] = {path.rpartition(".")[2]: value}
    if moved and any(path not in _paths(spec, merged) for _, _, path in moved):
        raise _refusal(f"{name}: cannot resize its classifier without renaming it", name, "set the last layer with --set")
    return merged


def dropout_overrides(spec: Any, overrides: Mapping[str, Any] | None, rate: float) -> tuple[dict[str, Any], bool]:
    """``overrides`` plus the rate of the dropout right before the main classifier; and whether the
    network has one (timm applies ``drop_rate`` there; where the spec has none the caller adds it)."""
    from archspec.pipeline import analyze

    report = analyze(spec, overrides)

    graph = report.graph
    for head in heads(graph):
        if head.output == "logits" and head.dropout_key is not None and head.dropout_node is not None:
            change = (head.dropout_key, f"dropout {rate!r}", graph.at(head.dropout_node).path)
            return _apply(spec, dict(overrides or {}), [change], report.name), True
    return dict(overrides or {}), False


def get_classifier(model: Any) -> Any:
    """The main classifier module (timm's ``model.get_classifier()``)."""
    from archspec.report import report_of

    graph = report_of(model).graph
    assert graph is not None
    for head in heads(graph):
        if head.output == "logits":
            return model.get_submodule(graph.at(head.node).path)
    return _head_slot(model, graph)


def _head_slot(model: Any, graph: Any) -> Any:
    """What sits where the classifier was, once removed (an identity)."""
    path = graph.at(graph.net.first).path
    return model.get_submodule(path) if path else None


def reset_classifier(model: Any, num_classes: int, global_pool: str | None = None) -> None:
    """timm's ``model.reset_classifier(num_classes)``: every classifier made anew with ``num_classes``
    outputs (0: an identity, the pooled features come out), the rest of the weights kept. The spec the
    model remembers (what save_pretrained writes) and its report follow."""
    import torch.fx as fx
    import torch.nn as nn

    from archspec.building import build_model
    from archspec.report import report_of

    if global_pool not in (None, "", "avg"):
        raise TypeError(f"reset_classifier: global_pool={global_pool!r}: the spec's own pool is kept (only 'avg')")
    spec, overrides = model.archspec_source
    merged = head_overrides(spec, overrides, num_classes)
    fresh = build_model(spec, merged)
    graph = report_of(model).graph
    assert graph is not None
    owners = [model, *(v for v in vars(model).values() if isinstance(v, fx.GraphModule))]  # an AuxModel's graphs
    for head in heads(graph):
        path = graph.at(head.node).path
        old = model.get_submodule(path)
        new = fresh.get_submodule(path) if num_classes else nn.Identity()
        new.to(device=old.weight.device, dtype=old.weight.dtype)
        parent_path, _, leaf = path.rpartition(".")
        for owner in owners:
            try:
                parent = owner.get_submodule(parent_path) if parent_path else owner
            except AttributeError:  # an eval-mode graph without the aux heads
                continue
            if getattr(parent, leaf, None) is old:
                setattr(parent, leaf, new)
    model.archspec_report = report_of(fresh)
    model.archspec_source = (spec, merged)
    model.num_classes = num_classes
