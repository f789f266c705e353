"""The one-pass expansion with its replays (graph._expand) against the language's definition, pass by pass.

Truth: ``_expand_in_passes`` (at width 1 first to find the output ops, then scaled with them fixed; each
pass expanded twice where block_count is read) and ``_expand_counted`` at width 1 — the definition the
fast path stands in for. Where ``in`` decides structure under a width multiplier that archspec applies
(a block's residual exists where ``in == out``, as in EfficientNet), the fast path takes the output ops
from one width-1 expansion and works the first expansion's ops out again with them fixed, instead of
expanding four more times. A spec that scales its own widths (EfficientNet-B2…B4: ``width_mult`` in
expressions, ``scale.apply`` without ``width``) expands once: its width-1 pass would be the same. The
graphs must be equal: nodes in order, every record (op, parameters, path, location, row, text, shape),
edges with their slots, and the network's record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import archspec
import archspec.graph as expansion
from archspec.language.resolve import resolve

ZOO = Path(archspec.__file__).parent / "zoo"


def _snapshot(graph: Any) -> tuple[Any, ...]:
    edges = sorted((u, v, d["slot"]) for u, v, d in graph.edges(data=True))
    return list(graph.nodes), [graph.at(n) for n in graph.nodes], edges, graph.net


def _definition(spec: Path, overrides: dict[str, Any] | None) -> Any:
    resolved = resolve(spec, overrides)
    if resolved.spec.scale.width != 1:
        return expansion._expand_in_passes(resolved)
    return expansion._expand_counted(resolved)


# EfficientNet-B2 with archspec's width rule on as well (on top of its own width_mult): `in` decides
# structure under an applied width multiplier, the two-expansion path
APPLIED = {"variant": "b2", "scale.apply": ["width"]}
FAST = [
    ("efficientnet_b0", {"variant": "b2"}),
    ("efficientnet_b0", {"variant": "b3"}),
    ("efficientnet_b0", APPLIED),
    ("mobilenet_v3_large", {"scale.width": 0.75}),
    ("shufflenet_v2_x1_0", None),
]
SLOW = [
    *((p.stem, None) for p in sorted(ZOO.glob("*.yaml")) if p.stem != "shufflenet_v2_x1_0"),
    ("efficientnet_b0", {"variant": "b1"}),
    ("efficientnet_b0", {"variant": "b4"}),
    ("resnet50", {"scale.width": 1.5}),
    ("densenet121", {"scale.width": 0.5}),
]


@pytest.mark.parametrize(
    ("name", "overrides"),
    [*FAST, *(pytest.param(*case, marks=pytest.mark.slow) for case in SLOW)],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in (v or {}).items()) or "plain",
)
def test_the_expansion_equals_the_definition_pass_by_pass(name: str, overrides: dict[str, Any] | None) -> None:
    spec = ZOO / f"{name}.yaml"
    assert _snapshot(expansion._expand(resolve(spec, overrides))) == _snapshot(_definition(spec, overrides))


def _runs(monkeypatch: Any) -> list[bool]:
    """Whether each Expander.run from now on scales widths."""
    runs: list[bool] = []
    run = expansion.Expander.run

    def counted(self: Any) -> Any:
        runs.append(self.scale_width)
        return run(self)

    monkeypatch.setattr(expansion.Expander, "run", counted)
    return runs


def test_where_in_decides_structure_under_width_two_expansions_suffice(monkeypatch: Any) -> None:
    """EfficientNet-B2 with archspec's width rule applied: one scaled expansion and one at width 1 (the
    definition takes five)."""
    runs = _runs(monkeypatch)
    expansion._expand(resolve(ZOO / "efficientnet_b0.yaml", APPLIED))
    assert runs == [True, False]
    runs.clear()
    expansion._expand_in_passes(resolve(ZOO / "efficientnet_b0.yaml", APPLIED))
    assert len(runs) == 4  # (with the first expansion _expand tries: five)


def test_a_spec_scaling_its_own_widths_expands_once(monkeypatch: Any) -> None:
    """EfficientNet-B2 as the zoo writes it (width_mult in its expressions, scale.apply: []): the width-1
    pass would read the same width_mult and scale nothing, so it is this expansion again; the graph is
    the definition's (test above)."""
    runs = _runs(monkeypatch)
    resolved = resolve(ZOO / "efficientnet_b0.yaml", {"variant": "b2"})
    assert resolved.spec.scale.width != 1 and "width" not in resolved.spec.scale.apply
    expansion._expand(resolved)
    assert runs == [True]


def test_a_short_form_read_again_with_the_same_values_is_parsed_once(monkeypatch: Any) -> None:
    """The block instances of a stage read the same $parameter values: each short form is parsed once per
    place and values (ShortForms._parse_bound), and every instance still counts its parameters as used
    (an unused one is an error per instance: a kept parse that forgot them would raise it)."""
    from archspec.language.shortform import ShortForms

    parses: list[str] = []
    parse = ShortForms._parse

    def counted(self: Any, text: str, *args: Any) -> Any:
        parses.append(text)
        return parse(self, text, *args)

    monkeypatch.setattr(ShortForms, "_parse", counted)
    text = """archspec: 1
name: stage
input: {channels: 3, size: [16, 16]}
blocks:
  unit:
    params: {c: 8, k: 3}
    chain: ['conv2d $c ${k}x${k} p${k // 2}', relu]
network:
  stem: conv2d 8 1x1
  body: [unit c=8, unit c=8, unit c=8 k=5, unit c=8]
"""
    graph = expansion.expand(resolve(text))
    assert parses.count("conv2d $c ${k}x${k} p${k // 2}") == 2  # k=3 (three instances), k=5 (one)
    kernels = [graph.at(n).params.kernel for n in graph.ordered() if graph.at(n).op == "conv2d"]
    assert kernels == [(1, 1), (3, 3), (3, 3), (5, 5), (3, 3)]  # what each instance writes
    assert [graph.at(n).loc.line for n in graph.ordered() if graph.at(n).op == "conv2d"][1:] == [7, 7, 7, 7]
    with pytest.raises(archspec.SpecError, match="never used"):
        expansion.expand(resolve(text.replace("params: {c: 8, k: 3}", "params: {c: 8, k: 3, unused: 1}")))
