"""`names:` patterns with block parameters (``block${k}-{i}``): a RegNet stage written once as a block names
its instances as torchvision does. Truth: torchvision's regnet_y_400mf and regnet_x_400mf, their state_dicts
loaded with strict=True and their logits; the names of an `if` in a list, against the same list written
without it (docs/language.md: the chosen node takes the if's place and its index)."""

from __future__ import annotations

import pytest
import torch
import torchvision

import archspec
from archspec.errors import SpecError

# RegNet (Radosavovic et al., arXiv 2003.13678): a stem, four stages of residual bottleneck blocks, the
# first of each stage with stride 2 and a projection, the others named block{stage}-1 … in torchvision.
REGNET = """archspec: 1
name: {name}
input: {{channels: 3, size: [224, 224]}}
blocks:
  x_block:                                   # torchvision's ResBottleneckBlock (bottleneck multiplier 1)
    params: {{w: 48, s: 1, g: 8, se: false}}
    residual:
      body:
        f:
          chain:
            a: [conv2d $w 1x1 no_bias, bn, relu]
            b: ['conv2d $w 3x3 s$s p1 groups=${{w // g}} no_bias', bn, relu]
            se:
              if: $se                        # RegNet-Y: SE squeezing to a quarter of the block's input
              then: {{gate: [adaptive_avgpool 1x1, fc1: 'conv2d ${{round(block_in * 0.25)}} 1x1 bias', relu,
                            fc2: conv2d $w 1x1 bias, sigmoid]}}
            c: [conv2d $w 1x1 no_bias, bn]
      shortcut:
        if: ${{s != 1 or block_in != w}}
        then: {{proj: [conv2d $w 1x1 s$s no_bias, bn]}}
      then: relu
  stage:                                     # torchvision's AnyStage: its blocks named block{{k}}-{{i}}
    params: {{{k}w: 48, d: 1, g: 8, se: false}}
    chain:
      - {{block: x_block, params: {{w: $w, s: 2, g: $g, se: $se}}, names: "{first}"}}
      - if: ${{d > 1}}
        then: {{block: x_block, params: {{w: $w, g: $g, se: $se}}, repeat: '${{d - 1}}', names: "{rest}"}}
network:
  stem: [conv2d 32 3x3 s2 p1 no_bias, bn, relu]
  trunk_output:
{stages}
  avgpool: global_avgpool
  fc: linear 1000
"""
Y_400MF = {"widths": (48, 104, 208, 440), "depths": (1, 3, 6, 6), "group": 8, "se": True}
X_400MF = {"widths": (32, 64, 160, 400), "depths": (1, 2, 7, 12), "group": 16, "se": False}


def _regnet(name: str, cfg: dict[str, object], first: str, rest: str) -> str:
    widths, depths, uses_k = cfg["widths"], cfg["depths"], "${k}" in first
    assert isinstance(widths, tuple) and isinstance(depths, tuple)
    stages = "\n".join(
        f"    - block{k}: stage {f'k={k} ' if uses_k else ''}w={w} d={d} g={cfg['group']} se={str(cfg['se']).lower()}"
        for k, (w, d) in enumerate(zip(widths, depths, strict=True), start=1)
    )
    return REGNET.format(name=name, first=first, rest=rest, stages=stages, k="k: 1, " if uses_k else "")


@pytest.mark.parametrize(
    ("name", "cfg", "first", "rest"),
    [
        ("regnet_y_400mf", Y_400MF, "block${k}-{i}", "block${k}-{n}"),  # a parameter
        ("regnet_x_400mf", X_400MF, "block${block_index + 1}-{i}", "block${block_index + 1}-{n}"),  # an expression
    ],
)
def test_a_regnet_stage_block_names_its_instances_as_torchvision(
    name: str, cfg: dict[str, object], first: str, rest: str
) -> None:
    reference = getattr(torchvision.models, name)().eval()
    model = archspec.build(_regnet(name, cfg, first, rest)).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


def _paths(spec: str) -> list[str]:
    graph = archspec.check(spec).graph
    return [graph.at(n).path for n in graph.ordered() if graph.at(n).path]


def test_a_repeat_chosen_by_an_if_takes_consecutive_indices_of_its_list() -> None:
    head = "archspec: 1\nname: t\ninput: {channels: 3, size: [8, 8]}\nnetwork:\n"
    plain = head + "  - conv2d 4 1x1\n  - conv2d 4 1x1 * 2\n  - conv2d 4 1x1\n"
    chosen = head + "  - conv2d 4 1x1\n  - {if: true, then: conv2d 4 1x1 * 2}\n  - conv2d 4 1x1\n"
    assert _paths(chosen) == _paths(plain) == ["0", "1", "2", "3"]
    named = head + "  - s: [{if: true, then: {block: b, repeat: 2, names: 'u{n}'}}]\nblocks:\n  b: {op: conv2d 4 1x1}\n"
    assert _paths(named) == ["s.u1", "s.u2"]


NAMES_SPEC = """archspec: 1
name: t
input: {channels: 3, size: [8, 8]}
blocks:
  unit: {op: conv2d 4 1x1}
  stage:
    params: {k: 1}
    chain:
      - {block: unit, repeat: 2, names: "PATTERN"}
network:
  - s: stage k=K
"""


def test_a_pattern_fills_in_parameters_then_counts() -> None:
    spec = NAMES_SPEC.replace("PATTERN", "layer${k * 10}_{n}").replace("K", "3")
    assert _paths(spec) == ["s.layer30_1", "s.layer30_2"]


@pytest.mark.parametrize(
    ("pattern", "k", "message"),
    [
        ("b$k-{i}", "a.b", "not a valid module name"),  # gives 'ba.b-0': not a name
        ("${k}x{i}", "1", "not a valid module name"),  # gives '1x0'
        ("b${j}-{i}", "1", "undefined parameter"),
    ],
)
def test_a_pattern_that_makes_a_bad_name_is_a_located_error(pattern: str, k: str, message: str) -> None:
    spec = NAMES_SPEC.replace("PATTERN", pattern).replace("K", k)
    with pytest.raises(SpecError, match=message) as e:
        archspec.check(spec)
    assert e.value.loc is not None and e.value.loc.line == 9


def test_a_pattern_without_a_counter_is_refused_as_written() -> None:
    with pytest.raises(SpecError, match=r"\{n\}"):
        archspec.check(NAMES_SPEC.replace("PATTERN", "b${k}").replace("K", "1"))


# A name inside a name (docs/language.md, Nodes): `stem: {conv1: X}` names X `stem.conv1`, as
# `stem: [conv1: X]` and `stem: {chain: {conv1: X}}` do. Truth: a torch module written out by hand
# with that layout, whose state_dict must load strictly and give the same output.
NESTED = """archspec: 1
name: nested
input: {channels: 3, size: [16, 16]}
network:
  stem: {conv1: conv2d 8 3x3 p1}
  down: {if: true, then: {proj: conv2d 8 1x1 s2}}
  head: [global_avgpool, fc: linear 4]
"""


class _Nested(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Module()
        self.stem.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.down = torch.nn.Module()
        self.down.proj = torch.nn.Conv2d(8, 8, 1, stride=2)
        self.head = torch.nn.Module()
        self.head.fc = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down.proj(self.stem.conv1(x))
        return self.head.fc(x.mean((2, 3)))


def test_a_name_inside_a_name_is_a_path_segment_under_it() -> None:
    torch.manual_seed(0)
    reference = _Nested().eval()
    model = archspec.build(NESTED).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_a_whole_named_item_in_quotes_says_to_quote_only_the_value() -> None:
    spec = "archspec: 1\nname: q\ninput: {channels: 3, size: [8, 8]}\nnetwork: ['proj: conv2d 8 1x1', global_avgpool]\n"
    with pytest.raises(SpecError, match="unknown op or block 'proj:'") as info:
        archspec.build(spec)
    assert info.value.hint is not None and "quote only its value" in info.value.hint
    assert (info.value.loc.line, info.value.loc.column) == (4, 12)
