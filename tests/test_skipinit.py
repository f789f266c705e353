"""`layer_scale INIT scalar`: one learned factor for every channel, a 0-dimensional tensor at its path (timm's
NF-Net `skipinit_gain`; DOC5's dm_nfnet wall, session 11). Truth: a module written apart holding
`nn.Parameter(torch.tensor(0.))` as timm's NormFreeBlock does, its state_dict loaded strictly, eager, optimized and
standalone, the gain's gradient in training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from tests.test_ops_attention import _same

SPEC = """\
archspec: 1
name: skipinit
input: {channels: 3, size: [10, 10]}
network:
  - stem: conv2d 8 3x3 p1
  - blk: {residual: {body: [conv: conv2d 8 3x3 p1, skipinit_gain: layer_scale 0 scalar], scale: 0.2}}
  - pool: global_avgpool
  - fc: linear 5
"""


class Blk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.skipinit_gain = nn.Parameter(torch.tensor(0.0))  # timm's NormFreeBlock with skipinit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * (self.conv(x) * self.skipinit_gain)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.blk, self.fc = nn.Conv2d(3, 8, 3, padding=1), Blk(), nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blk(self.stem(x)).mean((2, 3)))


def test_a_scalar_layer_scale_is_a_zero_dimensional_parameter(tmp_path: Path) -> None:
    model = archspec.build(SPEC)
    assert model.state_dict()["blk.skipinit_gain"].shape == () and float(model.state_dict()["blk.skipinit_gain"]) == 0.0
    assert archspec.check(SPEC).params == sum(p.numel() for p in Net().parameters())
    reference = Net()
    with torch.no_grad():
        reference.blk.skipinit_gain.fill_(0.7)  # not 0: the branch counts
    _same(SPEC, reference, [(10, 10), (5, 7)], tmp_path, "Skipinit")


def test_the_scalar_trains_as_a_torch_parameter() -> None:
    reference = Net().double()
    model = archspec.build(SPEC).double()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    model(x).square().sum().backward()
    reference(x).square().sum().backward()
    assert reference.blk.skipinit_gain.grad is not None
    torch.testing.assert_close(model.get_parameter("blk.skipinit_gain").grad, reference.blk.skipinit_gain.grad)


def test_flat_and_scalar_together_are_refused() -> None:
    with pytest.raises(archspec.SpecError, match="flat and scalar are two shapes") as e:
        archspec.check(SPEC.replace("layer_scale 0 scalar", "layer_scale 0 scalar flat"))
    assert e.value.code == "bad-op-args" and e.value.loc is not None and e.value.loc.line == 6
