"""Ops for attention modules and other activations: elu, mish, global and adaptive max pooling, the mean and
maximum over the channels, and gates that give one value per pixel (CBAM's spatial attention). Each network
is checked against torch written out by hand, or against timm's own module, with the same weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec
from archspec.errors import SpecError
from tests.references import perturb_bn
from tests.test_codegen import compile_to, run_standalone

ACTS = """\
archspec: 1
name: acts
input: {channels: 3, size: [12, 10]}
network:
  a: conv2d 8 3x3 p1
  b: elu 0.5
  c: conv 8 3x3 p1 act=elu
  d: mish
  e: adaptive_maxpool 2x3
  f: flatten
  fc: linear 5
"""


class Acts(nn.Module):
    """ACTS as torch writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.c = nn.ModuleDict({"conv": nn.Conv2d(8, 8, 3, padding=1, bias=False), "bn": nn.BatchNorm2d(8)})
        self.fc = nn.Linear(8 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.elu(self.a(x), alpha=0.5)
        x = F.elu(self.c["bn"](self.c["conv"](x)))  # a composite's act=elu: alpha 1
        x = x * torch.tanh(F.softplus(x))  # mish, from its definition
        x = F.adaptive_max_pool2d(x, (2, 3))
        return self.fc(x.flatten(1))


SPATIAL = """\
archspec: 1
name: spatial_attention
input: {channels: 3, size: [16, 16]}
network:
  stem: conv2d 16 3x3 p1
  spatial:
    gate:
      - concat: [channel_mean, channel_max]
      - conv: conv 1 7x7 p3 act=none        # timm's ConvNormAct: conv.conv, conv.bn
      - sigmoid
  head: global_maxpool
  fc: linear 4
"""


class Spatial(nn.Module):
    """SPATIAL with timm's CBAM spatial attention as the reference's module."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers.cbam import SpatialAttn

        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.spatial = SpatialAttn(7)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(self.stem(x))
        return self.fc(x.amax((2, 3)))


def _same(spec: str, reference: nn.Module, sizes: list[tuple[int, int]], tmp_path: Path, cls: str) -> None:
    path = tmp_path / f"{cls}.yaml"
    path.write_text(spec)
    same_as_reference(path, reference, sizes, tmp_path, cls)


def same_as_reference(spec: Path, reference: nn.Module, sizes: list[tuple[int, int]], tmp_path: Path, cls: str) -> nn.Module:
    """The spec's network loads the reference's state_dict strictly and computes its outputs (BatchNorm
    statistics perturbed), optimized and as a standalone file too; the built model, for more checks."""
    torch.manual_seed(0)
    perturb_bn(reference)
    reference.eval()
    model = archspec.build(spec).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    fast = archspec.optimize(model)  # from the loaded weights (it folds BatchNorm into the convs)
    out = tmp_path / f"{cls}.py"
    compile_to(spec, out)
    for h, w in sizes:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            want = reference(x)
            torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast(x), want, rtol=1e-4, atol=1e-4)
        standalone = run_standalone(tmp_path, out, cls, reference.state_dict(), x)
        torch.testing.assert_close(standalone, want, rtol=1e-5, atol=1e-5)
    return model


def test_elu_mish_and_adaptive_max_pool_equal_torch(tmp_path: Path) -> None:
    _same(ACTS, Acts(), [(12, 10), (3, 5)], tmp_path, "Acts")


def test_a_spatial_gate_equals_timm_cbam_spatial_attention(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    _same(SPATIAL, Spatial(), [(16, 16), (5, 9)], tmp_path, "SpatialAttention")


def test_a_gate_of_another_size_is_refused_naming_both_kinds(tmp_path: Path) -> None:
    bad = SPATIAL.replace("conv 1 7x7 p3", "conv 1 7x7 p2")  # 1×(H-2)×(W-2): neither kind of gate
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(SpecError) as e:
        archspec.check(path)
    assert "one value per pixel" in str(e.value) and "got 1×(H - 2)×(W - 2)" in str(e.value)


@pytest.mark.parametrize("reduce", ["global_maxpool", "channel_max"])
def test_an_activation_after_a_maximum_does_not_overwrite_what_its_backward_reads(reduce: str, tmp_path: Path) -> None:
    # torch's amax keeps its output for backward: a leaky ReLU run in place on it broke the gradient (fuzz seed 7100173)
    path = tmp_path / "m.yaml"
    path.write_text(f"archspec: 1\nname: m\ninput: {{channels: 2, size: [5, 4]}}\nnetwork: {{r: {reduce}, a: leaky_relu}}\n")
    model = archspec.build(path).train().double()
    x = torch.randn(3, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    model(x).sum().backward()
    y = x.detach().clone().requires_grad_(True)
    dims = (2, 3) if reduce == "global_maxpool" else 1
    F.leaky_relu(y.amax(dim=dims, keepdim=reduce == "channel_max")).sum().backward()
    assert x.grad is not None and y.grad is not None
    torch.testing.assert_close(x.grad, y.grad)


def test_a_spatial_gate_after_an_upsampling_is_accepted_and_equals_torch(tmp_path: Path) -> None:
    # the gate's size is a longer replay of the input's (3·H after a 1×1 conv): equal as sizes (fuzz seed 8003336)
    path = tmp_path / "g.yaml"
    path.write_text(
        "archspec: 1\nname: g\ninput: {channels: 5, size: [7, 6]}\n"
        "network:\n  - up: upsample 3\n  - g: {gate: [s: conv2d 1, sigmoid]}\n"
    )
    model = archspec.build(path).eval()
    x = torch.randn(2, 5, 7, 6)
    up = F.interpolate(x, scale_factor=3)
    weight, bias = model.state_dict()["g.s.weight"], model.state_dict()["g.s.bias"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), up * torch.sigmoid(F.conv2d(up, weight, bias)))


class UpsampledSpatial(nn.Module):
    """A map pooled by 3 and upsampled by a factor that is not whole, then timm's CBAM spatial attention."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        from timm.layers.cbam import SpatialAttn

        self.factor = factor
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.spatial = SpatialAttn(7)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(F.max_pool2d(self.enc(x), 3, 3), scale_factor=self.factor)
        return self.fc(self.spatial(x).mean((2, 3)))


@pytest.mark.parametrize("factor", [1.5, 2.2])
def test_a_spatial_gate_after_a_factor_that_is_not_whole_equals_timm(factor: float, tmp_path: Path) -> None:
    # floor(floor(H/3)·1.5) has no form k·floor((H + a)/m) + c, and 2.2 no exact form at all: the gate's body
    # keeps the size (7×7 p3), so its size is its input's at every size (refused before session 9)
    pytest.importorskip("timm")
    spec = (
        f"archspec: 1\nname: up_gate\ninput: {{channels: 3, size: [24, 24]}}\nnetwork:\n  enc: conv2d 8 3x3 p1\n"
        f"  pool: maxpool 3x3 s3\n  up: upsample {factor}\n"
        "  spatial: {gate: [concat: [channel_mean, channel_max], conv: conv 1 7x7 p3 act=none, sigmoid]}\n"
        "  head: global_avgpool\n  fc: linear 4\n"
    )
    _same(spec, UpsampledSpatial(factor), [(24, 24), (7, 11), (13, 20)], tmp_path, "UpGate")


def test_a_gate_whose_body_changes_the_size_after_a_factor_is_still_refused(tmp_path: Path) -> None:
    # 2·floor(floor(1.5·floor(H/3))/2) equals the input's size only where that size is even: not a gate
    path = tmp_path / "bad.yaml"
    path.write_text(
        "archspec: 1\nname: b\ninput: {channels: 3, size: [24, 24]}\nnetwork:\n  - maxpool 3x3 s3\n  - upsample 1.5\n"
        "  - gate: [conv2d 1 3x3 p1, maxpool 2x2 s2, upsample 2, sigmoid]\n"
    )
    with pytest.raises(SpecError) as e:
        archspec.check(path)
    assert "one value per pixel" in str(e.value)
