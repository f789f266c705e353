"""Where a name is looked up (docs/language.md, "What a path names"): a block used inside another reads
the outer instance's names, innermost instance first; ``block_in`` is a block instance's own input;
``names:`` fields take integer expressions of n and i; the hint for a list of unnamed lists.

Truth: torch modules written out by hand below (strict state_dict load, the same outputs), and names
and channel counts worked out by hand from the spec's numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec
from archspec.errors import SpecError

NESTED = """
archspec: 1
name: nested_reads
input: {channels: 8, size: [32, 32]}
blocks:
  decoder:
    params: {c: 8}
    chain:
      - up: interpolate size_of=enc
      - concat: [identity, {from: enc}]
      - fuse: conv2d $c 3x3 p1
  level:
    params: {c: 8}
    chain:
      - enc: conv2d $c 3x3 p1
      - maxpool 2x2 s2
      - dec: decoder c=$c
      - out: {residual: {shortcut: {from: block_in}, body: conv2d 8 1x1}}
network:
  - stem: conv2d 8 3x3 p1
  - down: level c=16
  - {block: level, repeat: 2, names: "level{n + 1}"}
  - global_avgpool
"""


class Level(nn.Module):
    """The block `level` as written by hand: the decoder reads the level's `enc`; the level adds its input."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.enc = nn.Conv2d(cin, c, 3, padding=1)
        self.dec = nn.Module()
        self.dec.fuse = nn.Conv2d(2 * c, c, 3, padding=1)
        self.out = nn.Conv2d(c, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.enc(x)
        low = F.max_pool2d(enc, 2, 2)
        up = F.interpolate(low, size=enc.shape[-2:], mode="nearest")
        dec = self.dec.fuse(torch.cat([up, enc], 1))
        return x + self.out(dec)


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(8, 8, 3, padding=1)
        self.down = Level(8, 16)
        self.level2 = Level(8, 8)
        self.level3 = Level(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.level3(self.level2(self.down(self.stem(x))))
        return x.mean((2, 3))


@pytest.mark.parametrize("size", [32, 17])
def test_a_block_inside_another_reads_the_outer_instance_s_names(size: int) -> None:
    torch.manual_seed(0)
    model, reference = archspec.build(NESTED).eval(), Nested().eval()
    reference.load_state_dict(model.state_dict(), strict=True)  # the same keys: level2, level3 from {n + 1}
    x = torch.randn(2, 8, size, size)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5)


def test_an_inner_name_hides_an_outer_one_and_the_outer_stays_readable_by_its_path() -> None:
    inner = NESTED.replace("      - up: interpolate size_of=enc\n", "      - enc: conv2d 4 1x1\n      - up: identity\n")
    inner = inner.replace("maxpool 2x2 s2", "identity")
    state = archspec.build(inner.replace('  - {block: level, repeat: 2, names: "level{n + 1}"}\n', "")).state_dict()
    assert tuple(state["down.dec.fuse.weight"].shape) == (16, 4 + 4, 3, 3)  # the decoder's own enc, twice
    by_path = inner.replace("{from: enc}", "{from: down.enc}")
    state = archspec.build(by_path.replace('  - {block: level, repeat: 2, names: "level{n + 1}"}\n', "")).state_dict()
    assert tuple(state["down.dec.fuse.weight"].shape) == (16, 4 + 16, 3, 3)  # the level's enc, by its whole path


def test_a_name_no_instance_holds_is_the_network_s() -> None:
    spec = NESTED.replace("{from: enc}", "{from: stem}").replace("maxpool 2x2 s2", "identity")
    state = archspec.build(spec).state_dict()
    assert tuple(state["down.dec.fuse.weight"].shape) == (16, 16 + 8, 3, 3)  # the stem's 8 channels


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ("out", "'out' names no node before this one"),  # the level's part after the decoder: a cycle
        ("down", "'down' names no node before this one"),  # the instance the reference stands in
        ("level2.enc", "'level2.enc' names no node before this one"),  # a later instance
    ],
)
def test_reading_forward_or_the_enclosing_instance_is_a_located_error(wanted: str, message: str) -> None:
    spec = NESTED.replace("{from: enc}", "{from: " + wanted + "}")
    with pytest.raises(SpecError, match=message) as e:
        archspec.check(spec)
    assert e.value.code == "name" and e.value.loc is not None and e.value.loc.line == 10


BLOCK_IN = """
archspec: 1
name: block_in_reads
input: {channels: 4, size: [20, 20]}
blocks:
  unit:
    chain:
      - a: conv2d 6 3x3
      - b: {concat: [{from: block_in}, {from: block_in}]}
      - c: conv2d 4 3x3 s2 p1
      - up: interpolate size_of=block_in
      - r: {residual: {shortcut: [{from: block_in}, crop to=a], body: crop to=a}}
network:
  - u: unit
  - v: unit
  - global_avgpool
"""


class Unit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 6, 3)
        self.c = nn.Conv2d(8, 4, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        c = self.c(torch.cat([x, x], 1))
        up = F.interpolate(c, size=x.shape[-2:], mode="nearest")
        h, w = a.shape[-2:]

        def crop(t: torch.Tensor) -> torch.Tensor:
            top, left = (t.shape[-2] - h) // 2, (t.shape[-1] - w) // 2
            return t[..., top : top + h, left : left + w]

        return crop(x) + crop(up)


@pytest.mark.parametrize("size", [20, 9])
def test_block_in_is_the_instance_s_input_in_from_merges_and_op_fields(size: int) -> None:
    torch.manual_seed(1)
    model = archspec.build(BLOCK_IN).eval()
    reference = nn.ModuleDict({"u": Unit(), "v": Unit()}).eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 4, size, size)
    with torch.no_grad():
        want = reference["v"](reference["u"](x)).mean((2, 3))
        assert torch.allclose(model(x), want, atol=1e-5)


def test_block_in_outside_a_block_is_a_located_name_error() -> None:
    spec = BLOCK_IN.replace("  - global_avgpool", "  - {from: block_in}\n  - global_avgpool")
    with pytest.raises(SpecError, match="there is none here") as e:
        archspec.check(spec)
    assert e.value.code == "name" and e.value.loc is not None and e.value.loc.line == 16


COPIES = """
archspec: 1
name: offsets
input: {channels: 3, size: [8, 8]}
blocks:
  unit:
    params: {c: 4}
    op: conv2d $c 1x1
  stage:
    params: {k: 2}
    chain:
      - {block: unit, repeat: 3, names: "conv${k}_{n + 1}"}
network:
  - conv1: conv2d 4 1x1
  - {block: unit, repeat: 2, names: "conv{n+1}"}
  - stage: stage k=4
  - layers: {block: unit, repeat: 3, names: "layer{2 * i + 1}"}
"""


def test_names_fields_take_integer_expressions_of_n_and_i() -> None:
    keys = [k.removesuffix(".weight") for k in archspec.build(COPIES).state_dict() if k.endswith("weight")]
    assert keys == [
        "conv1",
        "conv2",
        "conv3",
        "stage.conv4_2",
        "stage.conv4_3",
        "stage.conv4_4",
        "layers.layer1",
        "layers.layer3",
        "layers.layer5",
    ]


@pytest.mark.parametrize(
    ("pattern", "message", "code"),
    [
        ("conv{j}", "may use n .* and i .*, not 'j'", "schema"),
        ("conv{n / 2}", "not a whole number", "schema"),
        ("conv{n +}", "not an arithmetic expression", "schema"),
        ("{i - 1}", "'-1' is not a valid module name", "schema"),
        ("{1 - i}", "gives '-1' for copy 2", "name"),  # valid for copies 0 and 1 (1, 0), not for copy 2
    ],
)
def test_a_names_field_that_cannot_name_every_copy_is_a_located_error(pattern: str, message: str, code: str) -> None:
    spec = COPIES.replace('names: "layer{2 * i + 1}"', f'names: "{pattern}"')
    with pytest.raises(SpecError, match=message) as e:
        archspec.check(spec)
    assert e.value.code == code and e.value.loc is not None and e.value.loc.line == 17


def test_a_list_of_unnamed_lists_gets_the_numbering_hint() -> None:
    spec = """
archspec: 1
name: lists
input: {channels: 3, size: [16, 16]}
network:
  head:
    - [conv2d 8 3x3 p1 no_bias, bn, relu]
    - [conv2d 8 3x3 p1 no_bias, bn, relu]
"""
    with pytest.raises(SpecError, match="two modules would be named 'head.0'") as e:
        archspec.check(spec)
    assert e.value.hint is not None and '- "0": [...], - "1": [...]' in e.value.hint
    numbered = spec.replace("    - [conv2d 8 3x3 p1 no_bias, bn, relu]\n", '    - "0": [conv2d 8 3x3 p1 no_bias, bn, relu]\n', 1)
    numbered = numbered.replace("    - [conv2d", '    - "1": [conv2d')
    state = archspec.build(numbered).state_dict()
    assert "head.0.0.weight" in state and "head.1.0.weight" in state  # what the hint says gives nn.Sequential's names
