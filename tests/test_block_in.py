"""`block_in` in a block's expressions: the input channels of the innermost block instance (RegNet-Y's SE
squeezes to a quarter of the block's input, not of the map it gates). Truth: the channels worked out by
hand from the spec's own numbers."""

from __future__ import annotations

import pytest

import archspec
from archspec.errors import SpecError

SPEC = """
archspec: 1
name: block_in
input: {channels: 3, size: [16, 16]}
blocks:
  unit:
    params: {w: 48}
    chain:
      - conv $w 1x1
      - conv $w 3x3 p1
      - se: {gate: [adaptive_avgpool 1x1, 'conv2d ${block_in // 4} 1x1', relu, 'conv2d ${in * 0 + w} 1x1', sigmoid]}
network:
  - stem: conv 32 3x3 p1
  - u: unit               # its input: 32 channels, so the SE squeezes 48 to 8
  - v: unit w=64          # its input: u's 48 channels: 64 squeezed to 12
  - global_avgpool
"""


def test_block_in_is_the_enclosing_block_s_input_channels() -> None:
    state = archspec.build(SPEC).state_dict()
    assert tuple(state["u.se.1.weight"].shape) == (32 // 4, 48, 1, 1)
    assert tuple(state["v.se.1.weight"].shape) == (48 // 4, 64, 1, 1)


def test_block_in_outside_a_block_is_a_located_error() -> None:
    with pytest.raises(SpecError, match="defined only inside a block") as e:
        archspec.check(SPEC.replace("  - global_avgpool", "  - conv2d ${block_in} 1x1\n  - global_avgpool"))
    assert e.value.code == "param"


def test_block_in_carries_the_width_multiplier_as_in_does() -> None:
    """block_in is channels already scaled, like `in` (docs/language.md, "Multipliers"): under scale.width 2 a
    conv of `${block_in // 2}` has half the block's scaled input, not twice that (the differential fuzzer's
    truth found it scaled again)."""
    spec = """
archspec: 1
name: block_in_width
input: {channels: 3, size: [8, 8]}
scale: {width: 2, divisor: 1}
blocks:
  unit:
    chain: [conv2d 8 1x1, 'conv2d ${block_in // 2} 1x1', 'conv2d ${in} 1x1']
network:
  - stem: conv2d 12 1x1   # 24 channels
  - u: unit               # 16, then 24 // 2 = 12, then in = 12
  - global_avgpool
"""
    state = archspec.build(spec).state_dict()
    assert [tuple(state[f"u.{i}.weight"].shape[:2]) for i in range(3)] == [(16, 24), (12, 16), (12, 12)]
