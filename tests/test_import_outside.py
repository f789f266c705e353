"""archspec import of networks outside the zoo, against the specs written for them by hand.

timm's list C (tests/specs_outside/, each written from the docs alone and equal to timm's network):
layers whose forward reads their own tensors — timm's ``Linear`` (its classifier), ``GroupNorm`` and
``GroupNorm1``, ``BlurPool2d`` and its ``filt`` buffer — import as ``linear``, ``group_norm G`` and the
blur the language writes (``[pad 1 reflect, avgpool 2x2, avgpool 2x2 s2]``). Truth, for each: timm's
network with every tensor redrawn, whose state_dict loads strictly into the import's build with the
same outputs (the import's own check), and into the hand-written spec's build, whose outputs the
import's must equal too; `archspec diff` finds the same parameter and MAC counts.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

import archspec  # noqa: E402
from archspec.diff import diff  # noqa: E402
from archspec.importer import to_spec, verify  # noqa: E402
from archspec.summary import summarize  # noqa: E402
from tests.test_outside_networks import SPECS, _redrawn, _timm  # noqa: E402

# timm name → the layer it needs read (the spec under tests/specs_outside/ has the same name)
LIST_C = {
    "hardcorenas_a": "timm.layers.Linear classifier",
    "repghostnet_050": "timm.layers.Linear classifier",
    "mobilenetv4_conv_small": "timm.layers.Linear classifier; BatchNormAct2d ending a ConvBnAct",
    "resnet50_gn": "timm GroupNorm",
    "poolformer_s12": "timm GroupNorm1; pool(x) - x; Scale's view((C, 1, 1))",
    "densenetblur121d": "BlurPool2d's filt buffer",
}


@pytest.mark.fast_params("hardcorenas_a", "poolformer_s12")
@pytest.mark.parametrize("name", sorted(LIST_C))
def test_timm_layers_that_read_their_own_tensors_import_as_the_hand_written_spec(name: str) -> None:
    reference = _timm(name)().eval()
    reference.load_state_dict(_redrawn(reference.state_dict()), strict=True)
    result = to_spec(reference, name=name, input_size=(224, 224))  # the hand-written spec's, for diff's counts
    imported = verify(reference, result.text, (64, 64)).eval()  # strict load, the same outputs as timm's
    hand = archspec.build(SPECS / f"{name}.yaml").eval()
    hand.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs, truth = imported(x), hand(x), reference(x)
    assert truth.std() > 1e-2
    torch.testing.assert_close(theirs, truth, rtol=1e-4, atol=1e-5)  # the hand-written spec is the truth's
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    d = diff(summarize(SPECS / f"{name}.yaml"), summarize(result.text))
    assert d.params_delta == d.macs_delta == 0


class _Blurs(torch.nn.Module):
    """BlurPool2d in its other forms: a 5-tap binomial filter (four 2×2 boxes, padding 2), zeros for padding
    (timm's `blurpc`), stride 1; and a difference of two maps (a + (−1)·b)."""

    def __init__(self) -> None:
        from timm.layers import BlurPool2d

        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.blur5 = BlurPool2d(8, filt_size=5, stride=2)
        self.blurpc = BlurPool2d(8, filt_size=3, stride=2, pad_mode="constant")
        self.blur1 = BlurPool2d(None, filt_size=3, stride=1)
        self.pool = torch.nn.AvgPool2d(3, 1, 1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blur1(self.blurpc(self.blur5(self.conv(x))))
        return self.fc((self.pool(x) - x).mean((2, 3)))


def test_blur_pool_of_any_filter_size_and_padding_and_a_difference_import_exactly() -> None:
    torch.manual_seed(0)
    model = _Blurs().eval()
    result = to_spec(model, name="blurs", input_size=(32, 32))
    verify(model, result.text, (32, 32))  # the same outputs: the filters are what the ops compute
    verify(model, result.text, (37, 29))  # odd sizes too
    assert "blur5: [pad 2 reflect, avgpool 2x2 * 3, avgpool 2x2 s2]" in result.text
    assert "blurpc: [pad 1, avgpool 2x2, avgpool 2x2 s2]" in result.text
    assert "blur1: [pad 1 reflect, avgpool 2x2 * 2]" in result.text
    assert "scale: -1.0" in result.text  # pool(x) − x: pool(x) + (−1)·x


class _SpatialGate(torch.nn.Module):
    """CBAM's spatial attention (Woo et al., arXiv 1807.06521): the mean and the max over the channels, a 7×7
    conv to one map, a sigmoid, the input times it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.cat([x.mean(1, keepdim=True), torch.amax(x, 1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(g))


class _Cbam(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.sa = _SpatialGate()
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.sa(self.stem(x)).mean((2, 3)))


def test_a_mean_and_a_max_over_the_channels_import_as_channel_mean_and_channel_max() -> None:
    torch.manual_seed(0)
    model = _Cbam().eval()
    result = to_spec(model, name="cbam", input_size=(16, 16))
    verify(model, result.text, (16, 16))
    verify(model, result.text, (11, 13))
    assert "channel_mean" in result.text and "channel_max" in result.text, result.text
