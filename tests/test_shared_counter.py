"""A counter shared by several blocks (`counter:` in a block definition, docs/language.md, "Block index"):
EfficientNetV2-S's stochastic depth rises over all 40 blocks of its six stages, Fused-MBConv and MBConv
together, as torchvision computes it (``0.2 · stage_block_id / total_stage_blocks``). The truth is
torchvision's `efficientnet_v2_s` itself: its StochasticDepth rates per block, its weights loaded with
strict=True, and its outputs in training mode (the same seed draws the same drops) and in eval mode.
"""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.references import perturb_bn

torchvision = pytest.importorskip("torchvision")

SPEC = """
archspec: 1
name: efficientnet_v2_s
use: [zoo:blocks/efficientnet.yaml]
input: {channels: 3, size: [64, 64]}
defaults: {bn: {eps: 0.001}}
blocks:
  fused_layers:                       # Fused-MBConv: the expansion and the depthwise conv fused into one k×k conv
    params: {e: 4, cin: 24, out: 48, k: 3, s: 1}
    chain:
      - if: ${e > 1}
        then:
          chain:
            - "0": ['conv2d ${cin * e} ${k}x${k} s$s p${k // 2} no_bias', bn, silu]
            - "1": [conv2d $out 1x1 no_bias, bn]
        else:
          chain:
            - "0": ['conv2d $out ${k}x${k} s$s p${k // 2} no_bias', bn, silu]
  fused:
    counter: depth                    # numbered with mbconv2's instances: 40 blocks in all
    params: {e: 4, out: 48, k: 3, s: 1, sd: 0.2}
    chain:
      - if: ${in == out}
        then:
          residual:
            body:
              chain:
                block: fused_layers e=$e cin=$in out=$out k=$k s=1
                stochastic_depth: drop_path ${sd * block_index / block_count}
        else:
          chain: {block: fused_layers e=$e cin=$in out=$out k=$k s=$s}
  mbconv2:
    counter: depth
    params: {e: 4, out: 128, k: 3, s: 1, sd: 0.2}
    chain:
      - if: ${in == out}
        then:
          residual:
            body:
              chain:
                block: mbconv_layers e=$e cin=$in out=$out k=$k s=1
                stochastic_depth: drop_path ${sd * block_index / block_count}
        else:
          chain: {block: mbconv_layers e=$e cin=$in out=$out k=$k s=$s}
network:
  features:
    - "0": [conv2d 24 3x3 s2 p1 no_bias, bn, silu]
    - "1": fused e=1 out=24 * 2
    - "2": [fused e=4 out=48 s=2, fused e=4 out=48 * 3]
    - "3": [fused e=4 out=64 s=2, fused e=4 out=64 * 3]
    - "4": [mbconv2 e=4 out=128 s=2, mbconv2 e=4 out=128 * 5]
    - "5": [mbconv2 e=6 out=160, mbconv2 e=6 out=160 * 8]
    - "6": [mbconv2 e=6 out=256 s=2, mbconv2 e=6 out=256 * 14]
    - "7": [conv2d 1280 1x1 no_bias, bn, silu]
  avgpool: global_avgpool
  classifier: [dropout 0.2, linear 1000]
"""


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    reference = torchvision.models.efficientnet_v2_s(weights=None)
    perturb_bn(reference, 0)
    model = archspec.build(SPEC)
    model.load_state_dict(reference.state_dict(), strict=True)
    return model, reference


def test_drop_path_rates_are_torchvisions_over_all_40_blocks(pair) -> None:
    model, reference = pair
    blocks = [(f"features.{i}.{j}", b) for i in range(1, 7) for j, b in enumerate(reference.features[i])]
    assert len(blocks) == 40
    modules = dict(model.named_modules())
    checked = 0
    for path, block in blocks:
        if block.use_res_connect:  # torchvision applies its StochasticDepth only on the residual branch
            assert modules[f"{path}.stochastic_depth"].p == pytest.approx(block.stochastic_depth.p, abs=1e-12), path
            checked += 1
        else:
            assert f"{path}.stochastic_depth" not in modules
    assert checked == 35 and modules["features.6.14.stochastic_depth"].p == pytest.approx(0.2 * 39 / 40)


def test_counting_per_block_name_gives_other_rates(pair) -> None:
    """Without the shared counter each kind of block counts alone (10 and 30): the rates torchvision does not use."""
    model = archspec.build(SPEC.replace("    counter: depth\n", ""))
    modules = dict(model.named_modules())
    assert modules["features.4.1.stochastic_depth"].p == pytest.approx(0.2 * 1 / 30)  # torchvision: 0.2 · 11 / 40


@pytest.mark.slow
def test_same_outputs_in_training_and_eval(pair) -> None:
    model, reference = pair
    x = torch.randn(2, 3, 64, 64)
    model.train(), reference.train()
    torch.manual_seed(7)
    want = reference(x)
    torch.manual_seed(7)
    got = model(x)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    model.eval(), reference.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5, rtol=1e-5)
    assert archspec.check(SPEC).params == sum(p.numel() for p in reference.parameters()) == 21_458_488
