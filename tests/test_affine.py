"""`affine`: a learned scalar scale and bias (timm's LearnableAffineBlock, PP-HGNetV2's `use_lab`; DOC5's wall,
session 11). Truth: timm's ConvBNAct(use_lab=True) with redrawn weights, its state_dict loaded strictly, eager,
optimized and as a standalone file, in training (gradients of the two scalars) too; the starting values and the
parameter count as the docs say; the importer reads timm's block back as the op."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from tests.test_ops_attention import _same

SPEC = """\
archspec: 1
name: lab_example
input: {channels: 3, size: [12, 10]}
network:
  stem: {chain: {conv: conv2d 8 3x3 s2 p1 no_bias, bn: bn, act: relu, lab: affine}}
  proj: {chain: {conv: conv2d 16 1x1 no_bias, bn: bn, act: relu, lab: affine}}
  pool: global_avgpool
  fc: linear 5
"""


class Lab(nn.Module):
    """SPEC as timm writes it: two ConvBNAct(use_lab=True), a pool and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        from timm.models.hgnet import ConvBNAct

        self.stem = ConvBNAct(3, 8, 3, stride=2, use_lab=True)
        self.proj = ConvBNAct(8, 16, 1, use_lab=True)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.proj(self.stem(x)).mean((2, 3)))


def _redrawn(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))  # the scalars too, so that neither is 1 or 0
    return model


def test_affine_equals_timm_learnable_affine_block(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    torch.manual_seed(0)
    _same(SPEC, _redrawn(Lab()), [(12, 10), (5, 7)], tmp_path, "LabExample")


def test_affine_trains_as_timm_does() -> None:
    pytest.importorskip("timm")
    torch.manual_seed(1)
    reference = _redrawn(Lab()).train().double()
    model = archspec.build(SPEC).train().double()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(3, 3, 12, 10, dtype=torch.float64)
    model(x).square().sum().backward()
    reference(x).square().sum().backward()
    grads = dict(reference.named_parameters())
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[k].grad)


def test_affine_starts_at_its_values_and_counts_two_parameters() -> None:
    spec = (
        "archspec: 1\nname: a\ninput: {channels: 4, size: [3, 3]}\n"
        "network: [a: affine, g: global_avgpool, b: affine scale=0.5 bias=-2]\n"
    )
    model = archspec.build(spec)
    assert {k: v.tolist() for k, v in model.state_dict().items()} == {
        "a.scale": [1.0],
        "a.bias": [0.0],
        "b.scale": [0.5],
        "b.bias": [-2.0],
    }
    assert archspec.check(spec).params == 4
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), 0.5 * x.mean((2, 3)) - 2)


def test_timm_learnable_affine_block_imports_as_affine() -> None:
    pytest.importorskip("timm")
    from archspec.importer import import_module

    reference = _redrawn(Lab()).eval()
    text = import_module(reference, input_size=12)
    assert "affine" in text
    model = archspec.build(text).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
