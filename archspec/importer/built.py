"""Importing a network archspec built: its spec's block names and labels, its block instances and
the paths of its stateless ops, read back from the report the build attached."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch.nn as nn

    from archspec.importer.emit import Block
    from archspec.importer.trace import Prim


def classes(model: nn.Module) -> dict[str, tuple[str, str]]:
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


def number_split_blocks(blocks: list[Block]) -> None:
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


def instances(model: nn.Module) -> set[str] | None:
    """A network archspec built: the paths of its block instances (None for any other module)."""
    report = getattr(model, "archspec_report", None)
    if report is None or report.graph is None:
        return None
    return {path for _, record in report.graph.records() for _, path in record.blocks}


def stateless_paths(model: nn.Module, prims: list[Prim]) -> None:
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
        if p.op in ("concat", "add") and p.node in graph.nodes:  # a merge belongs to the part its spec wrote it in
            p.owner = (graph.at(p.node).path or "").rpartition(".")[0] or None
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


__all__ = ["classes", "instances", "number_split_blocks", "stateless_paths"]
