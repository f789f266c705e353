"""Blocks without a path segment (`inline: true`): a deep stem written once as a block, its modules
`conv1`, `bn1`, `act1` where it is used. Truth: timm's resnet26d (stem_type='deep', avg-pool
downsampling), its state_dict loaded with strict=True and its logits at an even and an odd size; the
keys of a hand case, written out by hand."""

from __future__ import annotations

import pytest
import timm
import torch

import archspec
from archspec.errors import SpecError

STEM = """
  deep_stem:                                 # timm's stem_type='deep': three 3x3 convs, then bn1 and act1
    inline: true
    params: {w: 32}
    chain:
      conv1: [conv2d $w 3x3 s2 p1 no_bias, bn, relu, conv2d $w 3x3 p1 no_bias, bn, relu, 'conv2d ${2 * w} 3x3 p1 no_bias']
      bn1: bn
      act1: relu
"""

RESNET26D = (
    """archspec: 1
name: resnet26d
input: {channels: 3, size: [224, 224]}
blocks:"""
    + STEM
    + """
  bottleneck:                                # timm's Bottleneck; a "d" ResNet's shortcut pools before it projects
    params: {w: 64, s: 1}
    residual:
      body:
        chain: {conv1: conv2d $w 1x1 no_bias, bn1: bn, act1: relu, conv2: conv2d $w 3x3 s$s p1 no_bias, bn2: bn,
                act2: relu, conv3: 'conv2d ${4 * w} 1x1 no_bias', bn3: bn}
      shortcut:
        if: ${s != 1 or block_in != 4 * w}
        then:
          downsample:
            - {if: '${s != 1}', then: avgpool 2x2 s2 ceil exclude_pad, else: identity}
            - conv2d ${4 * w} 1x1 no_bias
            - bn
      then: relu
network:
  - deep_stem                                # conv1.0 … conv1.6, bn1, act1: at the top level, as timm names them
  - maxpool: maxpool 3x3 s2 p1
  - layer1: [bottleneck w=64, bottleneck w=64]
  - layer2: [bottleneck w=128 s=2, bottleneck w=128]
  - layer3: [bottleneck w=256 s=2, bottleneck w=256]
  - layer4: [bottleneck w=512 s=2, bottleneck w=512]
  - global_pool: global_avgpool
  - fc: linear 1000
"""
)


def test_an_inline_deep_stem_loads_timm_resnet26d() -> None:
    reference = timm.create_model("resnet26d").eval()
    model = archspec.build(RESNET26D).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    torch.manual_seed(0)
    for h, w in ((64, 64), (65, 77)):  # an odd size: the ceil-mode pools of the shortcuts
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


TWICE = (
    """archspec: 1
name: twice
input: {channels: 3, size: [32, 32]}
blocks:"""
    + STEM
    + """
network:
  - deep_stem w=4
  - side: [maxpool 2x2 s2, deep_stem w=8]    # the same block again, its parts under side
  - global_avgpool
"""
)


def test_an_inline_block_used_twice_names_its_parts_where_it_stands() -> None:
    keys = set(archspec.build(TWICE).state_dict())
    convs = [f"{p}conv1.{i}.weight" for p in ("", "side.") for i in (0, 3, 6)]
    bns = [f"{p}{bn}.{t}" for p in ("", "side.") for bn in ("conv1.1", "conv1.4", "bn1") for t in _BN]
    assert keys == set(convs + bns)
    report = archspec.check(TWICE)
    rows = [(r.path, r.label, r.params) for r in report.rows]
    stem4 = (9 * 3 * 4 + 9 * 4 * 4 + 9 * 4 * 8) + 2 * (4 + 4 + 8)  # three convs, three BatchNorms (γ, β)
    assert rows[0] == ("[0]", "deep_stem", stem4)  # one row, at its index: it has no module path of its own
    assert [r[0] for r in rows[1:]] == ["side.0", "side[1]", "2"]  # the max pool, the second stem, the pool


_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def test_an_inline_instance_takes_no_name() -> None:
    spec = TWICE.replace("  - deep_stem w=4", "  - stem: deep_stem w=4")
    with pytest.raises(SpecError, match="inline") as e:
        archspec.check(spec)
    line = spec.splitlines().index("  - stem: deep_stem w=4") + 1
    assert e.value.code == "name" and e.value.loc is not None and e.value.loc.line == line


def test_two_inline_instances_at_one_level_clash() -> None:
    spec = TWICE.replace("  - side: [maxpool 2x2 s2, deep_stem w=8]", "  - deep_stem w=4")
    with pytest.raises(SpecError, match="two modules would be named 'conv1.0'") as e:
        archspec.check(spec)
    assert e.value.code == "name"
