"""Networks written from archspec's docs alone (list D: torchvision, several-output DAGs).

Each spec in tests/specs_outside/ was written by reading README.md and docs/ only. A spec is right
when the compiled module accepts the reference's state_dict with strict=True (the reference's
weights redrawn at random and its BatchNorm running statistics perturbed) and gives the same
outputs, every output map, at two input sizes. References are torchvision's models, or small
modules written here from the papers (DeepLabV3+, PSPNet, BiFPN).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec
from tests.outside_harness import assert_same
from tests.outside_harness import fresh as _fresh

torchvision = pytest.importorskip("torchvision")

SPECS = Path(__file__).parent / "specs_outside"


def _assert_same(spec: Path, reference: nn.Module, sizes: list[tuple[int, int, int]], seed: int = 0) -> None:
    """:func:`tests.outside_harness.assert_same` at the sizes given only."""
    assert_same(spec, reference, sizes, seed, smallest=False)


@pytest.mark.slow
def test_vgg11_bn() -> None:
    ref = _fresh(lambda: torchvision.models.vgg11_bn(weights=None))
    _assert_same(SPECS / "vgg11_bn.yaml", ref, [(224, 224, 1), (67, 45, 2)])


@pytest.mark.slow
def test_alexnet() -> None:
    ref = _fresh(lambda: torchvision.models.alexnet(weights=None))
    _assert_same(SPECS / "alexnet.yaml", ref, [(224, 224, 1), (63, 80, 2)])
    # check's minimum input size is the reference's: 63×63 runs (above), 62 is refused by torch
    assert archspec.check(SPECS / "alexnet.yaml").min_input_size == (63, 63)
    with pytest.raises(RuntimeError), torch.no_grad():
        ref(torch.zeros(1, 3, 62, 80))


@pytest.mark.slow
def test_wide_resnet50_2() -> None:
    ref = _fresh(lambda: torchvision.models.wide_resnet50_2(weights=None))
    _assert_same(SPECS / "wide_resnet50_2.yaml", ref, [(96, 96, 1), (67, 45, 2)])


@pytest.mark.slow
def test_efficientnet_v2_s() -> None:
    ref = _fresh(lambda: torchvision.models.efficientnet_v2_s(weights=None))
    _assert_same(SPECS / "efficientnet_v2_s.yaml", ref, [(96, 96, 1), (67, 45, 2)])
    # stochastic depth 0.2·i/40 over all 40 blocks (a counter shared by both kinds of block): the
    # rate of every block with a residual, and the training-mode outputs for the same seed
    model = archspec.build(SPECS / "efficientnet_v2_s.yaml")
    model.load_state_dict(ref.state_dict(), strict=True)
    want = {n: m.p for n, m in ref.named_modules() if type(m).__name__ == "StochasticDepth"}
    got = {n: m.p for n, m in model.named_modules() if n.endswith("stochastic_depth")}
    assert len(got) == 35 and all(abs(p - want[n]) < 1e-12 for n, p in got.items()), got
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    expected = ref.train()(x)
    torch.manual_seed(5)
    torch.testing.assert_close(model.train()(x), expected, rtol=1e-4, atol=1e-5)


def test_regnet_y_800mf() -> None:
    ref = torchvision.models.regnet_y_800mf(weights=None)  # its constructor reads tensors: not on meta
    _assert_same(SPECS / "regnet_y_800mf.yaml", ref, [(64, 64, 2), (67, 45, 1)])


@pytest.mark.slow
def test_ssd300_vgg16_backbone() -> None:
    from torchvision.models.detection import ssd300_vgg16

    ref = _fresh(lambda: ssd300_vgg16(weights=None, weights_backbone=None).backbone)
    _assert_same(SPECS / "ssd300_vgg16_backbone.yaml", ref, [(300, 300, 1), (268, 331, 1)])


def test_fasterrcnn_mobilenet_v3_large_fpn_backbone() -> None:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    detector = _fresh(lambda: fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None))
    spec = SPECS / "fasterrcnn_mobilenet_v3_large_fpn_backbone.yaml"
    _assert_same(spec, detector.backbone, [(96, 96, 2), (67, 45, 1)])


def _cbr(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """conv (no bias) + BatchNorm + ReLU, padded to keep the size."""
    pad = dilation * (kernel - 1) // 2
    conv = nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU())


def _resnet18_body() -> nn.Module:
    body = torchvision.models.resnet18(weights=None)
    del body.avgpool, body.fc
    return body


class DeepLabV3PlusR18(nn.Module):
    """DeepLabv3+ (Chen et al., arXiv 1802.02611, Fig. 2 and section 3.1) on ResNet-18 at output
    stride 16 (layer4 unstrided, its 3×3 convs dilated by 2 but the first block's first): ASPP
    (1×1, 3×3 at rates 6/12/18, image pooling; each conv-BN-ReLU; concatenated, projected to 256),
    decoder (low-level layer1 reduced to 48 channels, the encoder output resized
    bilinearly to it, concatenated, two 3×3 convs of 256), 1×1 classifier, resized to the input."""

    def __init__(self, classes: int = 21) -> None:
        super().__init__()
        self.backbone = _resnet18_body()
        layer4 = self.backbone.layer4
        layer4[0].conv1.stride = layer4[0].downsample[0].stride = (1, 1)
        for conv in (layer4[0].conv2, layer4[1].conv1, layer4[1].conv2):
            conv.dilation, conv.padding = (2, 2), (2, 2)
        self.aspp = nn.Module()
        self.aspp.b0 = _cbr(512, 256)
        self.aspp.b1 = _cbr(512, 256, 3, 6)
        self.aspp.b2 = _cbr(512, 256, 3, 12)
        self.aspp.b3 = _cbr(512, 256, 3, 18)
        self.aspp.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_cbr(512, 256))
        self.aspp.project = nn.Sequential(*_cbr(5 * 256, 256), nn.Dropout(0.5))
        self.low_proj = _cbr(64, 48)
        self.decoder = nn.Sequential(*_cbr(256 + 48, 256, 3), *_cbr(256, 256, 3))
        self.classifier = nn.Conv2d(256, classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        low = b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(image)))))
        x = b.layer4(b.layer3(b.layer2(low)))
        a = self.aspp
        pooled = F.interpolate(a.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = a.project(torch.cat([a.b0(x), a.b1(x), a.b2(x), a.b3(x), pooled], 1))
        low = self.low_proj(low)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.classifier(self.decoder(torch.cat([x, low], 1)))
        return F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.slow
def test_deeplabv3plus_resnet18() -> None:
    # at 320×352 layer4 is 20×22, so every ASPP rate (up to 18) reaches past the centre tap
    spec = SPECS / "deeplabv3plus_resnet18.yaml"
    _assert_same(spec, _fresh(DeepLabV3PlusR18), [(320, 352, 1), (67, 45, 2)])


class PSPNetR18(nn.Module):
    """PSPNet's pyramid pooling module (Zhao et al., arXiv 1612.01105, Fig. 3 and section 3.2) on
    ResNet-18: bins 1, 2, 3, 6, each reduced to 1/4 of the channels (conv-BN-ReLU), upsampled
    bilinearly with aligned corners, concatenated with the map; 3×3 conv-BN-ReLU, dropout 0.1,
    1×1 classifier, upsampled to the input."""

    def __init__(self, classes: int = 21, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.backbone = _resnet18_body()
        self.ppm = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), *_cbr(512, 128)) for b in bins)
        self.bottleneck = nn.Sequential(*_cbr(512 + 128 * len(bins), 512, 3), nn.Dropout(0.1))
        self.classifier = nn.Conv2d(512, classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(image))))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        size = x.shape[-2:]
        levels = [F.interpolate(p(x), size=size, mode="bilinear", align_corners=True) for p in self.ppm]
        x = self.classifier(self.bottleneck(torch.cat([x, *levels], 1)))
        return F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=True)


def test_pspnet_resnet18() -> None:
    # layer4 is 13×9 and 4×3: bins that do not divide the map, and bins larger than it
    _assert_same(SPECS / "pspnet_resnet18.yaml", _fresh(PSPNetR18), [(416, 288, 1), (100, 67, 2)])


def _down(cin: int, cout: int) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU())


class SeparableConvBlock(nn.Module):
    """EfficientDet's fusion conv (arXiv 1911.09070, section 3.3): depthwise separable 3×3, BN, swish."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.bn(self.pointwise(self.depthwise(x))))


class BiFPNNet(nn.Module):
    """A strided backbone giving P3…P7 and one BiFPN layer (EfficientDet, arXiv 1911.09070, Fig. 2(d),
    eq. for P6_td and P6_out): top-down nearest resizing, bottom-up 3×3/2 max pooling; with
    weighted=True each node fuses by fast normalised fusion, Σ relu(w_i)·I_i / (ε + Σ relu(w_j)),
    else by a plain sum."""

    LEVELS = (3, 4, 5, 6, 7)

    def __init__(self, channels: int = 64, weighted: bool = False, eps: float = 1e-4) -> None:
        super().__init__()
        self.weighted, self.eps = weighted, eps
        self.backbone = nn.Module()
        self.backbone.stem = _down(3, 16)
        self.backbone.c2 = _down(16, 24)
        cin = 24
        for level in self.LEVELS:
            setattr(self.backbone, f"p{level}", _down(cin, channels))
            cin = channels
        self.bifpn = nn.Module()
        for name in ("conv6_up", "conv5_up", "conv4_up", "conv3_up"):
            setattr(self.bifpn, name, SeparableConvBlock(channels))
        for name in ("conv4_down", "conv5_down", "conv6_down", "conv7_down"):
            setattr(self.bifpn, name, SeparableConvBlock(channels))
        if weighted:
            for level in (6, 5, 4, 3):
                self.bifpn.register_parameter(f"p{level}_w1", nn.Parameter(torch.ones(2)))
            for level in (4, 5, 6):
                self.bifpn.register_parameter(f"p{level}_w2", nn.Parameter(torch.ones(3)))
            self.bifpn.register_parameter("p7_w2", nn.Parameter(torch.ones(2)))

    def _fuse(self, weight: str, *maps: torch.Tensor) -> torch.Tensor:
        if not self.weighted:  # the plain sum, nested as (first + (second + (...)))
            total = maps[-1]
            for m in reversed(maps[:-1]):
                total = m + total
            return total
        w = F.relu(getattr(self.bifpn, weight))
        w = w / (w.sum() + self.eps)
        return sum(wi * m for wi, m in zip(w, maps, strict=True))  # type: ignore[return-value]

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        b, f = self.backbone, self.bifpn
        x = b.c2(b.stem(image))
        p_in = {}
        for level in self.LEVELS:
            x = getattr(b, f"p{level}")(x)
            p_in[level] = x
        td = {7: p_in[7]}
        for level in (6, 5, 4, 3):  # top-down
            up = F.interpolate(td[level + 1], size=p_in[level].shape[-2:], mode="nearest")
            td[level] = getattr(f, f"conv{level}_up")(self._fuse(f"p{level}_w1", p_in[level], up))
        out = {3: td[3]}
        for level in (4, 5, 6, 7):  # bottom-up
            down = F.max_pool2d(out[level - 1], 3, stride=2, padding=1)
            maps = (td[level], p_in[level], down) if level < 7 else (p_in[level], down)
            out[level] = getattr(f, f"conv{level}_down")(self._fuse(f"p{level}_w2", *maps))
        return {f"p{level}": out[level] for level in self.LEVELS}


def test_bifpn_layer() -> None:
    # fast normalised fusion (`weighted_sum K`); the weights redrawn around 0: some negative, cut by the relu
    ref = _fresh(lambda: BiFPNNet(weighted=True))
    _assert_same(SPECS / "bifpn_layer.yaml", ref, [(256, 256, 2), (201, 150, 1)])
