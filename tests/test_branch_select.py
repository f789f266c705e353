"""Softmax over branches (`branch_sum`, `branch_select`): SKNet's selective kernel and ResNeSt's split attention.

Against timm's own networks and modules with the same weights: `skresnet18` and `resnest14d` written as specs
(tests/specs_outside/), their state_dicts loaded with strict=True, the same logits at two input sizes, through
`optimize` and the standalone file too, parameters and MACs as fvcore counts them; timm's `SplitAttn` with two
cardinal groups and with radix 1 (a sigmoid), and its `SelectiveKernel` with three paths.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from archspec.errors import SpecError
from tests.test_ops_attention import same_as_reference as _same

timm = pytest.importorskip("timm")

SPECS = Path(__file__).resolve().parent / "specs_outside"


def _fvcore_macs(reference: nn.Module, size: tuple[int, int]) -> int:
    fvcore = pytest.importorskip("fvcore.nn")
    analysis = fvcore.FlopCountAnalysis(reference, torch.randn(1, 3, *size))
    by_op = analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_operator()
    return int(by_op["conv"] + by_op["linear"])


@pytest.mark.parametrize("name", ["skresnet18", "resnest14d"])
def test_timm_network_with_attention_over_branches(name: str, tmp_path: Path) -> None:
    reference = timm.create_model(name, pretrained=False)
    spec = SPECS / f"{name}.yaml"
    _same(spec, reference, [(64, 64), (33, 45)], tmp_path, name.capitalize())
    # MACs: those of the convs and linears, as fvcore counts them (the softmax, products and sums count none)
    assert archspec.check(spec, overrides={"input.size": [40, 56]}).macs == _fvcore_macs(reference, (40, 56))


def _split_attn_spec(radix: int, groups: int) -> str:
    mid, attn = 16 * radix, 32  # timm: attention width make_divisible(16 · radix / 4, min_value=32)
    summed = f"      gap: branch_sum {radix}\n" if radix > 1 else ""
    return (
        "archspec: 1\nname: split_attention\ninput: {channels: 3, size: [12, 10]}\nnetwork:\n"
        "  stem: conv2d 16 3x3 p1\n"
        "  attn:\n    chain:\n"
        f"      conv: conv2d {mid} 3x3 p1 g{groups * radix} no_bias\n      bn0: bn\n      act0: relu\n"
        f"{summed}      pool: adaptive_avgpool 1x1\n"
        f"      fc1: conv2d {attn} 1x1 g{groups}\n      bn1: bn\n      act1: relu\n"
        f"      fc2: conv2d {mid} 1x1 g{groups}\n"
        f"      rsoftmax: branch_select {radix} of=attn.act0 groups={groups}\n"
        "  pool: global_avgpool\n  fc: linear 4\n"
    )


class _Around(nn.Module):
    """stem → timm's attention module → pool → fc: the reference of the small specs."""

    def __init__(self, attn: nn.Module, out: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.attn = attn
        self.fc = nn.Linear(out, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.attn(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize(("radix", "groups"), [(2, 2), (1, 1)])
def test_split_attention_with_cardinal_groups_and_radix_one_equals_timm(radix: int, groups: int, tmp_path: Path) -> None:
    from timm.layers import SplitAttn

    spec = tmp_path / "split.yaml"
    spec.write_text(_split_attn_spec(radix, groups))
    reference = _Around(SplitAttn(16, 16, radix=radix, groups=groups, norm_layer=nn.BatchNorm2d), 16)
    _same(spec, reference, [(12, 10), (5, 3)], tmp_path, "SplitAttention")


SK3 = """\
archspec: 1
name: three_paths
input: {channels: 3, size: [12, 10]}
network:
  stem: conv2d 16 3x3 p1
  attn:
    chain:
      paths:                     # timm's SelectiveKernel(kernel_size=[3, 5, 7]): 3×3 convs dilated 1, 2, 3
        concat:
          "0": {chain: {conv: conv2d 8 3x3 p1 no_bias, bn: bn, act: relu}}
          "1": {chain: {conv: conv2d 8 3x3 p2 d2 no_bias, bn: bn, act: relu}}
          "2": {chain: {conv: conv2d 8 3x3 p3 d3 no_bias, bn: bn, act: relu}}
      attn:
        chain:
          sum: branch_sum 3
          pool: adaptive_avgpool 1x1
          fc_reduce: conv2d 4 1x1 no_bias
          bn: bn
          act: relu
          fc_select: conv2d 24 1x1 no_bias
      select: branch_select 3 of=attn.paths
  pool: global_avgpool
  fc: linear 4
"""


def test_selective_kernel_with_three_paths_equals_timm(tmp_path: Path) -> None:
    from timm.layers import SelectiveKernel

    spec = tmp_path / "sk3.yaml"
    spec.write_text(SK3)
    attn = SelectiveKernel(16, 8, kernel_size=[3, 5, 7], split_input=False, rd_channels=4)
    _same(spec, _Around(attn, 8), [(12, 10), (7, 9)], tmp_path, "ThreePaths")


@pytest.mark.parametrize(
    ("old", "new", "message", "at"),
    [
        ("fc_select: conv2d 24 1x1", "fc_select: conv2d 16 1x1", "the attention logits must be 24×1×1", "select:"),
        ("branch_select 3 of", "branch_select 5 of", "must be a C×H×W map holding 5 branches of equal", "select:"),
        ("sum: branch_sum 3", "sum: branch_sum 5", "split into 5 branches of equal width, got 24×H×W", "sum:"),
        ("of=attn.paths", "of=attn.nothing", "names no node", "select:"),
    ],
)
def test_mistakes_are_located_errors(old: str, new: str, message: str, at: str, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    text = SK3.replace(old, new)
    spec.write_text(text)
    with pytest.raises(SpecError) as e:
        archspec.check(spec)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.strip().startswith(at))
    assert message in str(e.value) and f"bad.yaml:{line}:" in str(e.value), str(e.value)
