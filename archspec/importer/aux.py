"""Training-only auxiliary heads (GoogLeNet's aux1/aux2, Inception-v3's AuxLogits) as `aux:` heads.

The eval-mode forward never calls them, so they are read from a second trace in training mode:
each output other than the main one is a head — the nodes it depends on that the main output does
not — and the one value outside those nodes that feeds them is its tap. A head's modules must all
sit under one top-level module, which names it (the state_dict keys stay the source's). The tap
becomes the module path of the block or op whose output it is. ``verify`` then runs both networks
in training mode and compares every head's output, so a wrong tap stops the import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.fx as fx
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from archspec.importer.built import stateless_paths
from archspec.importer.convert import Converter, fuse_composites, readers
from archspec.importer.structure import Chain, recover
from archspec.importer.trace import ImportRefused, Prim, module_of, source_of, trace


@dataclass
class AuxGraph:
    name: str  # the head's name: its top-level module
    tap: str  # module path of the block or op whose output feeds it
    weight: float | None  # the loss weight, where the source knows it (a network archspec built)
    gm: fx.GraphModule  # the head alone: one placeholder (the tapped value) → its output
    output: int  # the head's position among the flattened training-mode outputs


def _train_graph(model: nn.Module, stack_traces: bool) -> fx.GraphModule:
    train_gm = getattr(model, "_train_gm", None)
    if isinstance(train_gm, fx.GraphModule):  # a network archspec built with aux heads
        return train_gm
    was_training = model.training
    model.train()
    try:
        return trace(model, stack_traces, frozenset(readers().modules))
    finally:
        model.train(was_training)


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo += n.all_input_nodes
    return seen


def _built_tap(model: nn.Module, node: fx.Node) -> str | None:
    """A network archspec built: the outermost block instance (else the op) whose output the node is."""
    graph = getattr(getattr(model, "archspec_report", None), "graph", None)
    if graph is None or node.name not in graph.nodes:
        return None
    record = graph.at(node.name)
    return record.blocks[0][1] if record.blocks else record.path or None


def aux_graphs(model: nn.Module, eval_targets: set[str], heads: set[str], stack_traces: bool = True) -> list[AuxGraph]:
    """The training-only heads of a module, one per training-mode output besides the main one.
    ``eval_targets``: the modules the eval-mode forward calls; ``heads``: the top-level modules
    with weights it never calls (what the heads must account for)."""
    gm = _train_graph(model, stack_traces)
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    structure = out_node.args[0]
    if (
        isinstance(structure, fx.Node)
        and structure.op == "call_function"
        and isinstance(structure.target, type)
        and issubclass(structure.target, tuple)
        and not structure.kwargs
    ):
        structure = tuple(structure.args)  # a namedtuple built in the forward (torchvision's GoogLeNetOutputs)
    leaves, _ = tree_flatten(structure)
    keys = list(structure) if isinstance(structure, dict) else None
    outputs = [(i, n) for i, n in enumerate(leaves) if isinstance(n, fx.Node)]
    if len(outputs) < 2:
        raise ImportRefused(
            f"modules with weights that the eval-mode forward never calls: {', '.join(sorted(heads))}, "
            "and the training-mode forward returns no second output that uses them",
            module=sorted(heads)[0],
        )
    calls = {i: {a.target for a in _ancestors(n) if a.op == "call_module"} for i, n in outputs}
    if keys is not None and "logits" in keys:
        main_i = keys.index("logits")
    else:  # the output that calls every module the eval-mode forward calls
        main_i = next((i for i, _ in outputs if eval_targets <= calls[i]), -1)
        if main_i < 0:
            raise ImportRefused(
                "no training-mode output computes what the eval-mode output does", hint="import the model without auxiliary heads"
            )
    main = dict(outputs)[main_i]
    trunk = _ancestors(main)
    found: list[tuple[int, AuxGraph]] = []
    position = {n: j for j, n in enumerate(gm.graph.nodes)}
    for i, out in outputs:
        if i == main_i:
            continue
        head = _ancestors(out) - trunk
        order = [n for n in gm.graph.nodes if n in head]
        taps = {a for n in order for a in n.all_input_nodes if a not in head}
        if len(taps) != 1:
            raise ImportRefused(
                f"the training-mode output {i} reads {len(taps)} values of the main network; an aux head taps one",
                node=out.name,
                module=module_of(out),
                source=source_of(out),
            )
        (tap,) = taps
        modules = {str(n.target) for n in order if n.op == "call_module"}
        tops = {m.split(".")[0] for m in modules} | {(module_of(n) or "").split(".")[0] for n in order if n.op != "call_module"}
        tops.discard("")
        name = keys[i] if keys is not None and isinstance(keys[i], str) else next(iter(tops), "")
        if not modules or tops != {name} or name in {t.split(".")[0] for t in eval_targets}:
            raise ImportRefused(
                f"the training-mode output {i} is computed by modules under "
                f"{', '.join(sorted(tops)) or 'no module'}; an aux head is one module the "
                "eval-mode forward never calls",
                node=out.name,
                module=module_of(out),
                source=source_of(out),
            )
        tap_path = _built_tap(model, tap) if getattr(model, "archspec_report", None) is not None else None
        tap_path = tap_path or module_of(tap)
        if not tap_path:
            raise ImportRefused(f"aux head {name!r} taps a value no module produces", node=tap.name, source=source_of(tap))
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {tap: graph.placeholder("aux_input")}
        for n in order:
            env[n] = graph.node_copy(n, env.__getitem__)
        graph.output(env[out])
        weights = getattr(model, "aux_weights", None)
        weight = float(weights[name]) if isinstance(weights, dict) and name in weights else None
        found.append((position[order[0]], AuxGraph(name, tap_path, weight, fx.GraphModule(gm, graph), i)))
    return [a for _, a in sorted(found, key=lambda t: t[0])]  # in the order the forward computes them


def _weighted_paths(model: nn.Module, seen: set[str]) -> set[str]:
    """The modules holding tensors, but for a tensor an op stands for itself (a layer_scale's parameter)."""
    return {k.rpartition(".")[0] for k in model.state_dict() if k not in seen}


def missing_paths(model: nn.Module, seen: set[str]) -> list[str]:
    """The modules with weights under none of the paths ``seen``."""
    return sorted(p for p in _weighted_paths(model, seen) if not any(p == r or p.startswith(r + ".") for r in seen))


def reached(prims: list[Prim]) -> set[str]:
    """The module paths of the layers with weights the prims compute."""
    return {p.path for p in prims if p.path and (p.stateful or p.op == "conv")}


def unreached(model: nn.Module, seen: set[str]) -> None:
    """Every module with weights must be in the spec: one that neither forward calls would
    otherwise vanish from the state_dict."""
    missing = missing_paths(model, seen)
    if missing:
        top = sorted({m.split(".")[0] for m in missing})
        raise ImportRefused(
            f"modules with weights that the forward never calls: {', '.join(top[:5])}{' …' if len(top) > 5 else ''}",
            module=missing[0],
            hint="modules the forward does not use have no place in a spec: build the model without them",
        )


@dataclass
class AuxHead:
    graph: Any  # AuxGraph
    chain: Chain
    emitted: Any = None


def aux_heads(model: nn.Module, gm: fx.GraphModule, prims: list[Prim], stack_traces: bool) -> list[AuxHead]:
    """Training-only heads: the modules with weights the eval-mode forward never calls, read from a
    trace in training mode (see aux.py)."""
    missing = missing_paths(model, reached(prims))
    if not missing:
        return []
    eval_targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    out = []
    for a in aux_graphs(model, eval_targets, {m.split(".")[0] for m in missing}, stack_traces):
        conv = Converter(a.gm)
        head = conv.run()
        if conv.output is None:  # pragma: no cover - an output node always follows
            raise ImportRefused(f"aux head {a.name!r} has no output")
        stateless_paths(model, head)
        fuse_composites(head, conv.output)
        out.append(AuxHead(a, recover(head, conv.output)))
        prims = prims + head
    return out


__all__ = ["AuxGraph", "AuxHead", "aux_graphs", "aux_heads", "missing_paths", "reached", "unreached"]
