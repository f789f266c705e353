"""`prelu`: torch's nn.PReLU (He et al., arXiv 1502.01852), one slope or one per channel. Truth: a module written
with nn.PReLU as ENet and ArcFace's iResNet use it (one slope after a conv and BN, one per channel, on a vector),
loaded strictly with redrawn slopes; outputs equal built, optimized and as a standalone file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from archspec.errors import SpecError
from tests.test_ops_attention import same_as_reference

SPEC = """\
archspec: 1
name: prelu_net
input: {channels: 3, size: [9, 7]}
network:
  conv: conv 8 3x3 p1 act=prelu            # conv.conv, conv.bn, conv.act.weight [1]
  prelu: prelu per_channel                 # prelu.weight [8]
  down: conv2d 8 3x3 s2 p1
  slope: prelu init=0.1                    # slope.weight [1]
  pool: global_avgpool
  fc1: linear 6
  act: prelu per_channel                   # act.weight [6], on a vector
  fc: linear 4
"""


class ConvBNPReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class PReLUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = ConvBNPReLU()
        self.prelu = nn.PReLU(8)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.slope = nn.PReLU(init=0.1)
        self.fc1 = nn.Linear(8, 6)
        self.act = nn.PReLU(6)
        self.fc = nn.Linear(6, 4)
        torch.manual_seed(2)
        with torch.no_grad():  # slopes a trained network could have, negative ones too
            for m in (self.conv.act, self.prelu, self.slope, self.act):
                m.weight.copy_(torch.randn_like(m.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.slope(self.down(self.prelu(self.conv(x))))
        return self.fc(self.act(self.fc1(x.mean((2, 3)))))


def test_prelu_equals_torch_s_one_slope_and_per_channel(tmp_path: Path) -> None:
    path = tmp_path / "prelu.yaml"
    path.write_text(SPEC)
    model = same_as_reference(path, PReLUNet(), [(9, 7), (4, 13)], tmp_path, "PreluNet")
    slopes = ("conv.act.weight", "prelu.weight", "slope.weight", "act.weight")
    assert [tuple(model.state_dict()[k].shape) for k in slopes] == [(1,), (8,), (1,), (6,)]


def test_prelu_starts_at_init_and_counts_its_slopes() -> None:
    model = archspec.build(SPEC)
    sd = model.state_dict()
    assert torch.equal(sd["slope.weight"], torch.tensor([0.1])) and torch.equal(sd["prelu.weight"], torch.full((8,), 0.25))
    report = archspec.check(SPEC)
    reference = PReLUNet()
    assert report.params == sum(p.numel() for p in reference.parameters())


def test_prelu_backward_reaches_the_slopes() -> None:
    model = archspec.build(SPEC).train()
    reference = PReLUNet().train()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(3, 3, 9, 7)
    model(x).square().sum().backward()
    reference(x).square().sum().backward()
    for name, p in reference.named_parameters():
        if "act" in name or "prelu" in name or "slope" in name:
            torch.testing.assert_close(dict(model.named_parameters())[name].grad, p.grad, rtol=1e-4, atol=1e-5)


def test_a_bad_init_or_flag_is_refused() -> None:
    for net in ("prelu init=x", "prelu per_pixel", "prelu 3"):
        with pytest.raises(SpecError):
            archspec.check(f"archspec: 1\nname: m\ninput: {{channels: 3, size: [5, 5]}}\nnetwork: [{net}]\n")
