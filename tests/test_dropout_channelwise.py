"""`dropout P channelwise`: torch's nn.Dropout2d (Tompson et al.'s SpatialDropout), whole channels of each
sample zeroed in training mode, the identity in eval mode (docs/language.md, `dropout`). Truth: nn.Dropout2d
under the same seed, the definition (each channel all zero or all x / (1 − P)), and modules holding
nn.Dropout2d or calling F.dropout2d read back by `archspec import`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec
from archspec.errors import SpecError
from tests.test_codegen import compile_to, run_standalone

SPEC = """\
archspec: 1
name: spatial_dropout
input: {channels: 3, size: [10, 8]}
network:
  conv: conv 16 3x3 p1
  drop: dropout 0.5 channelwise       # nn.Dropout2d(0.5) at drop
  pool: global_avgpool
  head_drop: dropout 0.2              # nn.Dropout(0.2): elements of the vector
  fc: linear 4
"""


class SpatialDropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential()  # archspec's composite conv: conv.conv, conv.bn
        self.conv.add_module("conv", nn.Conv2d(3, 16, 3, padding=1, bias=False))
        self.conv.add_module("bn", nn.BatchNorm2d(16))
        self.drop = nn.Dropout2d(0.5)
        self.head_drop = nn.Dropout(0.2)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.conv(x)))
        return self.fc(self.head_drop(x.mean((2, 3))))


def test_training_mode_draws_as_nn_dropout2d_under_the_same_seed() -> None:
    model = archspec.build(SPEC).train()
    reference = SpatialDropoutNet().train()
    model.load_state_dict(reference.state_dict(), strict=True)
    assert type(model.drop) is nn.Dropout2d and type(model.head_drop) is nn.Dropout
    x = torch.randn(4, 3, 10, 8)
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        got = model(x)
        torch.manual_seed(seed)
        want = reference(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_whole_channels_of_each_sample_are_zeroed() -> None:
    """The definition, without torch's layer: each (sample, channel) map is all zero or x / (1 − P)."""
    model = archspec.build("archspec: 1\nname: m\ninput: {channels: 64, size: [5, 6]}\nnetwork: [dropout 0.25 channelwise]\n")
    x = torch.rand(8, 64, 5, 6) + 0.5  # no zeros of its own
    torch.manual_seed(0)
    y = model.train()(x)
    zero = (y == 0).all(dim=(2, 3))
    kept = torch.isclose(y, x / 0.75).all(dim=(2, 3))
    assert bool((zero ^ kept).all())  # every channel one or the other, never a mix
    assert 0 < int(zero.sum()) < zero.numel() and not bool((zero.all(dim=0) | (~zero).all(dim=0)).all())  # per sample
    assert torch.equal(model.eval()(x), x)  # eval: the identity


def test_eval_optimized_and_standalone_equal_the_reference(tmp_path: Path) -> None:
    reference = SpatialDropoutNet().eval()
    model = archspec.build(SPEC).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    compile_to(path, tmp_path / "net.py")
    x = torch.randn(2, 3, 10, 8)
    with torch.no_grad():
        want = reference(x)
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(archspec.optimize(model)(x), want, rtol=1e-4, atol=1e-4)
    standalone = run_standalone(tmp_path, tmp_path / "net.py", "SpatialDropout", reference.state_dict(), x)
    torch.testing.assert_close(standalone, want, rtol=1e-5, atol=1e-5)


def test_on_a_vector_it_is_a_located_shape_error() -> None:
    spec = SPEC.replace("head_drop: dropout 0.2 ", "head_drop: dropout 0.2 channelwise")
    with pytest.raises(SpecError) as info:
        archspec.check(spec)
    err = info.value
    assert (err.line, err.code) == (8, "shape") and "channelwise dropout zeroes whole channels" in err.message


class _Module(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout2d(0.3)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.conv(x)))
        x = F.dropout2d(self.conv2(x), 0.1, training=self.training)
        return self.fc(x.mean((2, 3)))


def test_import_reads_dropout2d_back() -> None:
    reference = _Module()
    text = archspec.import_module(reference.eval())
    assert "drop: dropout 0.3 channelwise" in text and "dropout 0.1 channelwise" in text, text
    model = archspec.build(text)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(3, 3, 7, 7)
    for mode in ("train", "eval"):
        getattr(model, mode)(), getattr(reference, mode)()
        torch.manual_seed(5)
        got = model(x)
        torch.manual_seed(5)
        torch.testing.assert_close(got, reference(x), rtol=1e-5, atol=1e-5)


def test_optimize_drops_the_channelwise_dropout_and_keeps_the_logits(tmp_path: Path) -> None:
    """At inference nn.Dropout2d is the identity: optimize removes it (remove_noops), as it does nn.Dropout."""
    from archspec.inference import optimize

    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    torch.manual_seed(0)
    model = archspec.build(spec).eval()
    opt = optimize(model)
    assert not any(isinstance(m, (nn.Dropout, nn.Dropout2d)) for m in opt.modules())
    x = torch.randn(2, 3, 10, 8)
    with torch.no_grad():
        torch.testing.assert_close(opt(x), model(x), rtol=1e-4, atol=1e-5)
