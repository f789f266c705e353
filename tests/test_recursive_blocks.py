"""A block using itself, ended by an `if:` on a parameter (DOC6's wall, session 11: the stacked hourglass,
Newell et al., arXiv 1603.06937). Truth: a recursive torch module written apart, Hourglass(d) holding
Hourglass(d - 1), its state_dict loaded strictly, eager, optimized and as a standalone file; a use of itself
that never ends is a located limit error naming the block."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec
from tests.test_ops_attention import _same

SPEC = """\
archspec: 1
name: hourglass
input: {channels: 3, size: [32, 32]}
blocks:
  unit:
    residual: {body: [conv 8 3x3 p1, conv 8 3x3 p1 act=none], then: relu}
  hourglass:
    params: {d: 4}
    residual:
      shortcut: {up1: unit}
      body:
        - maxpool 2x2 s2
        - low1: unit
        - low2: {if: '${d > 1}', then: 'hourglass d=${d - 1}', else: unit}
        - low3: unit
        - upsample 2
network:
  - stem: conv 8 3x3 p1
  - hg: hourglass d=3
  - global_avgpool
  - fc: linear 5
"""


class Unit(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))), its conv-bn pairs at 0 and 1 as the spec's unnamed body items."""

    def __init__(self) -> None:
        super().__init__()
        for i in ("0", "1"):
            self.add_module(i, nn.ModuleDict({"conv": nn.Conv2d(8, 8, 3, padding=1, bias=False), "bn": nn.BatchNorm2d(8)}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.get_submodule("0"), self.get_submodule("1")
        y = F.relu(a["bn"](a["conv"](x)))
        return F.relu(x + b["bn"](b["conv"](y)))


class Hourglass(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.up1, self.low1, self.low3 = Unit(), Unit(), Unit()
        self.low2 = Hourglass(d - 1) if d > 1 else Unit()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.ModuleDict({"conv": nn.Conv2d(3, 8, 3, padding=1, bias=False), "bn": nn.BatchNorm2d(8)})
        self.hg = Hourglass(3)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem["bn"](self.stem["conv"](x)))
        return self.fc(self.hg(x).mean((2, 3)))


def test_a_block_using_itself_equals_a_recursive_torch_module(tmp_path: Path) -> None:
    reference = Net()
    assert "hg.low2.low2.low2.1.bn.running_var" in reference.state_dict()  # depth 3: two hourglasses in, a unit last
    _same(SPEC, reference, [(32, 32), (16, 24)], tmp_path, "Hourglass")
    assert archspec.check(SPEC).params == sum(p.numel() for p in reference.parameters())


def test_a_use_of_itself_that_never_ends_is_a_located_limit_error() -> None:
    spec = SPEC.replace("low2: {if: '${d > 1}', then: 'hourglass d=${d - 1}', else: unit}", "low2: 'hourglass d=${d - 1}'")
    with pytest.raises(archspec.SpecError, match="block 'hourglass' uses itself at every level") as e:
        archspec.check(spec)
    # located in the block's body, at the instance that passes the 64th level (its first unit, line 13)
    assert e.value.code == "limit" and e.value.loc is not None and e.value.loc.line == 13
