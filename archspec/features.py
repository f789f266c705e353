"""``features_only``: a network cut to the feature maps of its stages, as timm's ``features_only=True``.

A stage output is found in the IR: walking the top-level rows (block instances and ops) of the
main path in order, up to the first whose output no longer grows with the input (a global pool),
each row's output has a nominal reduction (2, 4, 8, …: the input size over its size, rounded to a
power of two); the last row at each reduction is that stage's output. That is what timm reports for
the zoo networks it has, with two exceptions its models' own stage boundaries make, kept in
``EXCEPTIONS``. ``out_indices`` picks among the stages as timm does (default: all; negative
indices count from the end; an int n: the last n).

The cut is the compiled eval graph with its output replaced by the list of those values and the
unused rest (the head) removed; it shares the built model's modules and returns a list of tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from archspec.errors import Loc, SpecError

# spec name → {reduction: row path} where timm's stage boundary is not the last row at a reduction
EXCEPTIONS: dict[str, dict[int, str]] = {
    "inception_v4": {4: "features.3"},  # timm's stem ends at Mixed-3a, before Mixed-4a's valid convs
    "efficientnet_b0": {32: "features.7"},  # the last MBConv stage, not the 1×1 head conv after it
}


@dataclass(frozen=True)
class Stage:
    """One feature map: the row computing it, its IR node, reduction and channels."""

    module: str
    node: str
    reduction: int
    num_chs: int

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module, "num_chs": self.num_chs, "reduction": self.reduction}


def stages(graph: Any) -> list[Stage]:
    """Every stage output of the network's main path, in order; where the spec writes ``features:``, the maps
    it names."""
    net = graph.net
    if net.features:
        return [_named_stage(graph, path, node, loc) for path, node, loc in net.features]
    h, w = net.input.size
    last: dict[int, Stage] = {}
    rows: dict[str, Stage] = {}
    for unit in net.units:
        if unit.kind == "aux" or not unit.output:
            continue
        shape = graph.at(unit.output).out
        if not shape.is_map:
            break
        oh, ow = shape.at(h, w)[1:]
        if shape.at(2 * h, 2 * w)[1] == oh:  # a global pool: the maps end here
            break
        reduction = 2 ** round(math.log2(max(h / max(oh, 1), 1)))
        stage = Stage(unit.path, unit.output, reduction, shape.channels)
        rows[unit.path] = stage
        last[reduction] = stage
    for reduction, path in EXCEPTIONS.get(net.name, {}).items():
        # the row itself, or the last of the rows inside it (a block of several rows)
        inside = [r for p, r in rows.items() if (p == path or p.startswith(path + ".")) and r.reduction == reduction]
        if inside:
            last[reduction] = inside[-1]
    return [last[r] for r in sorted(last) if r > 1]


def _named_stage(graph: Any, path: str, node: str, loc: Loc) -> Stage:
    shape = graph.at(node).out
    if not shape.is_map:
        raise SpecError(
            f"features: {path!r} is a vector ({shape.formula()}), not a feature map",
            loc,
            code="shape",
            hint="name the maps before the global pool",
        )
    return Stage(path, node, nominal_reduction(graph, node), shape.channels)


def pick(found: Sequence[Stage], out_indices: Any) -> list[int]:
    """The indices ``out_indices`` names among ``found`` (timm's meaning), checked."""
    n = len(found)
    where = Loc("out_indices", 0, 0)
    if out_indices is None:
        return list(range(n))
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        if not 0 < out_indices <= n:
            raise SpecError(f"out_indices={out_indices}: the network has {n} stages", where, code="override")
        return list(range(n - out_indices, n))
    if not isinstance(out_indices, (list, tuple)) or not out_indices:
        raise SpecError(f"out_indices must be a tuple of stage indices or an int, got {out_indices!r}", where, code="override")
    picked = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            raise SpecError(
                f"out_indices: {i!r} is not a stage index (the network has {n}: 0 to {n - 1}, or -{n} to -1)",
                where,
                code="override",
                hint="stages: " + ", ".join(f"{k}: {s.module} (÷{s.reduction}, {s.num_chs} ch)" for k, s in enumerate(found)),
            )
        picked.append(i % n)
    return picked


def feature_info(found: Sequence[Stage], indices: Sequence[int]) -> Any:
    """timm's FeatureInfo (channels(), reduction(), module_name()) when timm is installed, else the dicts."""
    dicts = [s.as_dict() for s in found]
    try:
        from timm.models import FeatureInfo
    except ImportError:
        return [dicts[i] for i in indices]
    return FeatureInfo(dicts, tuple(indices))


def cut(model: Any, graph: Any, out_indices: Any = None) -> Any:
    """``model`` (built from ``graph``) returning the feature maps ``out_indices`` picks, as a list."""
    import torch.fx as fx

    found = stages(graph)
    if not found:
        raise SpecError(f"{graph.net.name} has no feature maps to return", Loc(graph.net.name, 0, 0), code="shape")
    indices = pick(found, out_indices)
    gm = model.inference() if hasattr(model, "inference") else model
    new = fx.Graph()
    env: dict[Any, Any] = {}
    for node in gm.graph.nodes:
        if node.op != "output":
            env[node] = new.node_copy(node, lambda n: env[n])
    by_name = {n.name: env[n] for n in gm.graph.nodes if n.op != "output"}
    missing = [found[i].node for i in indices if found[i].node not in by_name]
    assert not missing, f"no fx node for {missing}"
    taps = {found[i].node: _kept(new, by_name[found[i].node]) for i in indices}
    new.output([taps[found[i].node] for i in indices])
    cut_model = fx.GraphModule(gm, new, class_name=type(gm).__name__ + "Features")
    cut_model.graph.eliminate_dead_code()  # the head, and the aux heads' taps
    cut_model.delete_all_unused_submodules()
    cut_model.recompile()
    cut_model.feature_info = feature_info(found, indices)
    return cut_model


def _kept(graph: Any, node: Any) -> Any:
    """A tapped value as it is made: the full network may overwrite it in place afterwards (a ReLU run in place
    on a stage's output where nothing else read it: densenet's norm, then relu_), so where a reader of it runs in
    place (torch's trailing-underscore functions and methods) the cut returns a copy taken before."""

    def in_place(user: Any) -> bool:
        name = user.target if user.op == "call_method" else getattr(user.target, "__name__", "")
        return isinstance(name, str) and name.endswith("_") and not name.endswith("__")

    if not any(in_place(u) for u in node.users):
        return node
    with graph.inserting_after(node):
        return graph.call_method("clone", (node,))


def nominal_reduction(graph: Any, node: str) -> int:
    """The input size over the value's size at the spec's input size, rounded to a power of two (1 for
    a value without height and width, or one that does not shrink)."""
    h, _ = graph.net.input.size
    shape = graph.at(node).out
    if not shape.is_map:
        return 1
    oh = shape.at(h, h)[1]
    return int(2 ** round(math.log2(max(h / max(oh, 1), 1))))


class OutputInfo:
    """What a network with ``outputs:`` returns, output by output (``model.feature_info``): each output's
    name, module path, channels and nominal reduction. Read as timm's FeatureInfo reads
    (``channels()``, ``reduction()``, ``module_name()``, ``get_dicts()``, indexing, ``len``)."""

    def __init__(self, dicts: Sequence[dict[str, Any]]) -> None:
        self.info = [dict(d) for d in dicts]

    def names(self) -> list[str]:
        """The outputs' names: the keys of the dict the network returns, in order."""
        return [d["name"] for d in self.info]

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [d[key] for d in self.info]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None) -> Any:
        pick = self.info if idx is None else [self.info[idx]] if isinstance(idx, int) else [self.info[i] for i in idx]
        dicts = [d if keys is None else {k: d[k] for k in keys} for d in pick]
        return dicts[0] if isinstance(idx, int) else dicts

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __repr__(self) -> str:
        return f"OutputInfo({self.info!r})"


def output_info(graph: Any) -> OutputInfo:
    """The :class:`OutputInfo` of a network whose spec writes ``outputs:``."""
    return OutputInfo(
        [
            {
                "name": name,
                "module": path,
                "num_chs": graph.at(node).out.channels,
                "reduction": nominal_reduction(graph, node),
            }
            for (name, node), path in zip(graph.net.main_outputs().items(), graph.net.output_paths, strict=True)
        ]
    )
