"""Networks written from archspec's docs alone (list F: torchvision, several-output DAGs).

Each spec in tests/specs_outside/ named below was written by reading README.md and docs/ only. A spec
is right when the compiled module accepts the reference's state_dict with strict=True (the reference's
weights redrawn at random, its BatchNorm running statistics perturbed, so a miswired norm cannot hide)
and gives the same outputs, every output map, in eval mode at two input sizes and at the minimum
input size `archspec check` reports. References are torchvision's models, or small modules written
here from the papers (a YOLOv3 neck and head, PANet's bottom-up path, a stacked hourglass, BiSeNet's
context path).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec
from tests.outside_harness import assert_same as _assert_same
from tests.outside_harness import fresh as _fresh

torchvision = pytest.importorskip("torchvision")

SPECS = Path(__file__).parent / "specs_outside"


@pytest.mark.slow
def test_densenet161() -> None:
    ref = _fresh(lambda: torchvision.models.densenet161(weights=None))
    _assert_same(SPECS / "densenet161.yaml", ref, [(64, 64, 2), (67, 45, 1)])
    assert archspec.check(SPECS / "densenet161.yaml").min_input_size == (29, 29)


@pytest.mark.parametrize(
    ("member", "make"),
    [(None, "shufflenet_v2_x0_5"), *((m, f"shufflenet_v2_{m}") for m in ("x1_0", "x1_5", "x2_0"))],
)
def test_shufflenet_v2(member: str | None, make: str) -> None:
    # one spec, two members of its family (`variants:`): the stage widths set as --set sets them
    ref = _fresh(lambda: getattr(torchvision.models, make)(weights=None))
    overrides = {"variant": member} if member else None
    _assert_same(SPECS / "shufflenet_v2_x0_5.yaml", ref, [(64, 64, 2), (67, 45, 1)], overrides=overrides)


def test_mnasnet1_0() -> None:
    ref = _fresh(lambda: torchvision.models.mnasnet1_0(weights=None))
    _assert_same(SPECS / "mnasnet1_0.yaml", ref, [(64, 64, 2), (67, 45, 1)])


def test_squeezenet1_0() -> None:
    # ceil-mode pools: at 67×45 the last pools' windows reach past the map
    ref = _fresh(lambda: torchvision.models.squeezenet1_0(weights=None))
    _assert_same(SPECS / "squeezenet1_0.yaml", ref, [(96, 96, 2), (67, 45, 1)])
    assert archspec.check(SPECS / "squeezenet1_0.yaml").min_input_size == (21, 21)
    with pytest.raises(RuntimeError), torch.no_grad():  # one pixel less and torch refuses too
        ref(torch.zeros(1, 3, 20, 21))


def test_regnet_y_400mf() -> None:
    ref = torchvision.models.regnet_y_400mf(weights=None)  # its constructor reads tensors: not on meta
    _assert_same(SPECS / "regnet_y_400mf.yaml", ref, [(64, 64, 2), (67, 45, 1)])


@pytest.mark.slow
def test_resnext101_64x4d() -> None:
    ref = _fresh(lambda: torchvision.models.resnext101_64x4d(weights=None))
    _assert_same(SPECS / "resnext101_64x4d.yaml", ref, [(64, 64, 2), (67, 45, 1)])


def _as_head(outputs: dict[str, torch.Tensor], prefix: str, k: int) -> torch.Tensor:
    """The per-level maps (N, A·K, H, W) of levels 3-7 laid out as torchvision's detection heads lay
    them out: each as (N, H·W·A, K), the levels concatenated."""
    maps = [outputs[f"{prefix}_p{level}"] for level in (3, 4, 5, 6, 7)]
    return torch.cat([m.view(m.shape[0], -1, k, *m.shape[-2:]).permute(0, 3, 4, 1, 2).flatten(1, 3) for m in maps], 1)


class RetinaNetLevels(nn.Module):
    """torchvision's retinanet_resnet50_fpn_v2 up to its head's per-level maps: the backbone with FPN
    (P3-P7), then the classification and regression heads' modules applied to each level."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.detection import retinanet_resnet50_fpn_v2

        detector = retinanet_resnet50_fpn_v2(weights=None, weights_backbone=None)
        self.backbone, self.head = detector.backbone, detector.head

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        cls, reg = self.head.classification_head, self.head.regression_head
        out = {}
        for level, x in zip((3, 4, 5, 6, 7), self.backbone(image).values(), strict=True):
            out[f"cls_p{level}"] = cls.cls_logits(cls.conv(x))
            out[f"reg_p{level}"] = reg.bbox_reg(reg.conv(x))
        return out


def test_retinanet_resnet50_fpn_v2_head() -> None:
    # one set of head weights over five levels (share:), ten outputs; sizes where P7 is 1×1 and 2×1
    ref = RetinaNetLevels()
    spec = SPECS / "retinanet_resnet50_fpn_v2.yaml"
    _assert_same(spec, ref, [(128, 128, 2), (161, 97, 1)])
    # the per-level maps are what torchvision's RetinaNetHead concatenates: laid out as its forward lays
    # them out (N, A·K, H, W → N, H·W·A, K, levels concatenated), they are its outputs
    model = archspec.build(spec).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 97, 130, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        got = model(x)
        want = ref.head(list(ref.backbone(x).values()))

    torch.testing.assert_close(_as_head(got, "cls", 91), want["cls_logits"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(_as_head(got, "reg", 4), want["bbox_regression"], rtol=1e-4, atol=1e-4)
    # the head's weights are held once: the state_dict has torchvision's keys and nothing per level
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


class FCOSLevels(nn.Module):
    """torchvision's fcos_resnet50_fpn up to its head's per-level maps: the backbone with FPN (P3-P7),
    then the classification tower and logits, and the regression tower with relu(bbox_reg) and
    bbox_ctrness, applied to each level."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.detection import fcos_resnet50_fpn

        detector = fcos_resnet50_fpn(weights=None, weights_backbone=None)
        self.backbone, self.head = detector.backbone, detector.head

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        cls, reg = self.head.classification_head, self.head.regression_head
        out = {}
        for level, x in zip((3, 4, 5, 6, 7), self.backbone(image).values(), strict=True):
            out[f"cls_p{level}"] = cls.cls_logits(cls.conv(x))
            tower = reg.conv(x)
            out[f"reg_p{level}"] = F.relu(reg.bbox_reg(tower))
            out[f"ctr_p{level}"] = reg.bbox_ctrness(tower)
        return out


def test_fcos_resnet50_fpn_head() -> None:
    # the towers and the two regression predictors shared as separate parts; fifteen outputs
    ref = FCOSLevels()
    spec = SPECS / "fcos_resnet50_fpn.yaml"
    _assert_same(spec, ref, [(128, 128, 2), (161, 97, 1)])
    model = archspec.build(spec).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 97, 130, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        got = model(x)
        want = ref.head(list(ref.backbone(x).values()))

    torch.testing.assert_close(_as_head(got, "cls", 91), want["cls_logits"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(_as_head(got, "reg", 4), want["bbox_regression"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(_as_head(got, "ctr", 1), want["bbox_ctrness"], rtol=1e-4, atol=1e-4)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


def _cbl(cin: int, cout: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """Darknet's convolution: conv (no bias), BatchNorm, LeakyReLU(0.1), padded to keep the size."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


class DarkResidual(nn.Module):
    """Darknet-53's residual (arXiv 1804.02767, Table 1): 1x1 to half the channels, 3x3 back, added."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _cbl(channels, channels // 2)
        self.conv2 = _cbl(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class YOLOv3Small(nn.Module):
    """YOLOv3's detection at three scales (arXiv 1804.02767, section 2.3) on a small Darknet-like
    backbone: at stride 32 a convolutional set (1x1 w, 3x3 2w, 1x1 w, 3x3 2w, 1x1 w), a 3x3 conv and a
    1x1 predictor of 3·(5 + 20); then the set's output reduced by a 1x1 conv, upsampled ×2, concatenated
    (upsampled first) with the backbone's map at stride 16, and the same again down to stride 8."""

    def __init__(self, anchors: int = 3, classes: int = 20) -> None:
        super().__init__()
        self.stem = _cbl(3, 16, 3)
        cin = 16
        for k, (c, n) in enumerate([(32, 1), (64, 1), (128, 2), (256, 2), (512, 1)], 1):
            setattr(self, f"stage{k}", nn.Sequential(_cbl(cin, c, 3, 2), *[DarkResidual(c) for _ in range(n)]))
            cin = c
        out = anchors * (5 + classes)
        for level, (cin, w) in {5: (512, 256), 4: (256 + 128, 128), 3: (128 + 64, 64)}.items():
            layers = [_cbl(cin, w), _cbl(w, 2 * w, 3), _cbl(2 * w, w), _cbl(w, 2 * w, 3), _cbl(2 * w, w)]
            setattr(self, f"set{level}", nn.Sequential(*layers))
            setattr(self, f"head{level}", nn.Sequential(_cbl(w, 2 * w, 3), nn.Conv2d(2 * w, out, 1)))
            if level > 3:
                setattr(self, f"lat{level}", nn.Sequential(_cbl(w, w // 2), nn.Upsample(scale_factor=2)))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        c3 = self.stage3(self.stage2(self.stage1(self.stem(image))))
        c4 = self.stage4(c3)
        x = self.set5(self.stage5(c4))
        out32 = self.head5(x)
        x = self.set4(torch.cat([self.lat5(x), c4], 1))
        out16 = self.head4(x)
        x = self.set3(torch.cat([self.lat4(x), c3], 1))
        return {"out32": out32, "out16": out16, "out8": self.head3(x)}


def test_yolov3_neck_head() -> None:
    spec = SPECS / "yolov3_neck_head.yaml"
    ref = _fresh(YOLOv3Small)
    # the upsampled maps meet the backbone's where ceil(H/16) = 2·ceil(H/32): check accepts H mod 32 in
    # {0, 25 … 31}, the sizes at which the reference's torch.cat runs; 25×25 is its minimum
    assert archspec.check(spec).min_input_size == (25, 25)
    model = _assert_same(spec, ref, [(128, 96, 2), (121, 153, 1)])
    with pytest.raises(RuntimeError), torch.no_grad():  # 24: the reference's concat refuses it too
        ref(torch.zeros(1, 3, 24, 32))
    with pytest.raises(ValueError, match="24"), torch.no_grad():  # and the built model's input guard
        model(torch.zeros(1, 3, 24, 32))


class PANetR18(nn.Module):
    """PANet's bottom-up path augmentation (arXiv 1803.01534, section 3.1, Fig. 2(b)) on torchvision's
    FeaturePyramidNetwork over ResNet-18's C2-C5: N2 = P2, N(i+1) = relu(fuse(P(i+1) + relu(down(Ni)))),
    down a 3x3 stride-2 conv and fuse a 3x3 conv, every map of `channels`."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.backbone = torchvision.models.resnet18(weights=None)
        del self.backbone.avgpool, self.backbone.fc
        self.fpn = torchvision.ops.FeaturePyramidNetwork([64, 128, 256, 512], channels)
        self.pan = nn.Module()
        for level in (2, 3, 4):
            setattr(self.pan, f"down{level}", nn.Conv2d(channels, channels, 3, 2, 1))
            setattr(self.pan, f"fuse{level + 1}", nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(image))))
        c: dict[str, torch.Tensor] = {}
        for k in (1, 2, 3, 4):
            x = c[f"c{k + 1}"] = getattr(b, f"layer{k}")(x)
        p = list(self.fpn(c).values())
        n = [p[0]]
        for level in (2, 3, 4):
            down = F.relu(getattr(self.pan, f"down{level}")(n[-1]))
            n.append(F.relu(getattr(self.pan, f"fuse{level + 1}")(down + p[level - 1])))
        return {f"n{level}": m for level, m in zip((2, 3, 4, 5), n, strict=True)}


def test_panet_resnet18_fpn() -> None:
    ref = PANetR18()
    _assert_same(SPECS / "panet_resnet18_fpn.yaml", ref, [(128, 128, 2), (97, 130, 1)])


class HourglassResidual(nn.Module):
    """The hourglass network's residual module (arXiv 1603.06937, Fig. 4 left): BN-ReLU-1x1 (half the
    channels), BN-ReLU-3x3, BN-ReLU-1x1 (all of them), added to the input (a 1x1 conv of it where the
    channels change)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout // 2, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout // 2), nn.Conv2d(cout // 2, cout // 2, 3, padding=1)
        self.bn3, self.conv3 = nn.BatchNorm2d(cout // 2), nn.Conv2d(cout // 2, cout, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (x if self.skip is None else self.skip(x))


class Hourglass(nn.Module):
    """One hourglass (arXiv 1603.06937, Fig. 3, section 3.1), recursive: a residual branch at this
    resolution, plus max pool 2x2, residual, the hourglass of depth − 1 (a residual at depth 1),
    residual, nearest ×2 upsampling."""

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.up1 = HourglassResidual(channels, channels)
        self.low1 = HourglassResidual(channels, channels)
        self.low2: nn.Module
        self.low2 = Hourglass(depth - 1, channels) if depth > 1 else HourglassResidual(channels, channels)
        self.low3 = HourglassResidual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode="nearest")


class StackedHourglass(nn.Module):
    """Stacked hourglasses with intermediate supervision (arXiv 1603.06937, section 3.4): after each
    hourglass a residual, a 1x1 conv-BN-ReLU and a 1x1 heatmap conv; the next stack reads the stack's
    input + a 1x1 conv of the features + a 1x1 conv of the heatmaps. Module lists as in common ports."""

    def __init__(self, stacks: int = 2, channels: int = 64, joints: int = 16, depth: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 7, 2, 3), nn.BatchNorm2d(32), nn.ReLU())
        self.res1 = HourglassResidual(32, channels)
        self.res2 = HourglassResidual(channels, channels)
        self.features = HourglassResidual(channels, channels)
        c = channels
        self.hg = nn.ModuleList(Hourglass(depth, c) for _ in range(stacks))
        self.res = nn.ModuleList(HourglassResidual(c, c) for _ in range(stacks))
        self.lin = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU()) for _ in range(stacks))
        self.heatmap = nn.ModuleList(nn.Conv2d(c, joints, 1) for _ in range(stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(stacks - 1))
        self.merge_preds = nn.ModuleList(nn.Conv2d(joints, c, 1) for _ in range(stacks - 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.features(self.res2(F.max_pool2d(self.res1(self.stem(image)), 2, 2)))
        out = {}
        for i in range(len(self.hg)):
            y = self.lin[i](self.res[i](self.hg[i](x)))
            heatmap = out[f"heatmap{i}"] = self.heatmap[i](y)
            if i < len(self.hg) - 1:
                x = x + self.merge_features[i](y) + self.merge_preds[i](heatmap)
        return out


def test_stacked_hourglass2() -> None:
    # each hourglass pools 4 times and upsamples back: the sums agree where the hourglass's input (H/4,
    # the stem striding with ceil) is a multiple of 16; check's accepted sizes are the reference's
    spec = SPECS / "stacked_hourglass2.yaml"
    ref = _fresh(StackedHourglass)
    assert archspec.check(spec).min_input_size == (63, 63)
    model = _assert_same(spec, ref, [(128, 192, 2), (130, 127, 1)])
    for bad in (64 + 3, 61):  # 67 and 61: refused by the reference's sums and by the model's guard
        with pytest.raises(RuntimeError), torch.no_grad():
            ref(torch.zeros(1, 3, bad, 64))
        with pytest.raises(ValueError), torch.no_grad():
            model(torch.zeros(1, 3, bad, 64))


def _cbr(cin: int, cout: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """conv (no bias), BatchNorm, ReLU, padded to keep the size at stride 1."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU())


class AttentionRefinement(nn.Module):
    """BiSeNet's attention refinement module (arXiv 1808.00897, Fig. 2(b)), after a 3x3 conv-BN-ReLU:
    the map times sigmoid(BN(1x1 conv(global average))); the attention's layers beside the conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _cbr(cin, cout, 3)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * torch.sigmoid(self.bn_atten(self.conv_atten(x.mean((2, 3), keepdim=True))))


class BiSeNetR18(nn.Module):
    """BiSeNet v1 (arXiv 1808.00897, Fig. 2, section 3) on ResNet-18: spatial path, context path with
    ARMs on the 1/16 and 1/32 maps and the global context, feature fusion module (concat, 1x1
    conv-BN-ReLU, x + x·SE(x) with reduction 4), output head and two auxiliary heads, each resized
    bilinearly to the input."""

    def __init__(self, classes: int = 19) -> None:
        super().__init__()
        self.backbone = torchvision.models.resnet18(weights=None)
        del self.backbone.avgpool, self.backbone.fc
        self.context = nn.Module()
        self.context.global_conv = _cbr(512, 128)
        self.context.arm32 = AttentionRefinement(512, 128)
        self.context.head32 = _cbr(128, 128, 3)
        self.context.arm16 = AttentionRefinement(256, 128)
        self.context.head16 = _cbr(128, 128, 3)
        self.spatial = nn.Sequential(_cbr(3, 64, 7, 2), _cbr(64, 64, 3, 2), _cbr(64, 64, 3, 2), _cbr(64, 128))
        self.ffm = nn.Module()
        self.ffm.convblk = _cbr(256, 256)
        self.ffm.conv1 = nn.Conv2d(256, 64, 1, bias=False)
        self.ffm.conv2 = nn.Conv2d(64, 256, 1, bias=False)
        self.head = nn.Sequential(_cbr(256, 256, 3), nn.Conv2d(256, classes, 1))
        self.aux16 = nn.Sequential(_cbr(128, 64, 3), nn.Conv2d(64, classes, 1))
        self.aux32 = nn.Sequential(_cbr(128, 64, 3), nn.Conv2d(64, classes, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        b, c = self.backbone, self.context
        f8 = b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(image))))))
        f16 = b.layer3(f8)
        f32 = b.layer4(f16)
        context = F.interpolate(c.global_conv(f32.mean((2, 3), keepdim=True)), size=f32.shape[-2:], mode="nearest")
        up32 = c.head32(F.interpolate(c.arm32(f32) + context, size=f16.shape[-2:], mode="nearest"))
        up16 = c.head16(F.interpolate(c.arm16(f16) + up32, size=f8.shape[-2:], mode="nearest"))
        fused = self.ffm.convblk(torch.cat([self.spatial(image), up16], 1))
        atten = torch.sigmoid(self.ffm.conv2(F.relu(self.ffm.conv1(fused.mean((2, 3), keepdim=True)))))
        fused = fused * atten + fused
        size = image.shape[-2:]
        return {
            "out": F.interpolate(self.head(fused), size=size, mode="bilinear"),
            "aux16": F.interpolate(self.aux16(up16), size=size, mode="bilinear"),
            "aux32": F.interpolate(self.aux32(up32), size=size, mode="bilinear"),
        }


def test_bisenet_v1_resnet18() -> None:
    _assert_same(SPECS / "bisenet_v1_resnet18.yaml", _fresh(BiSeNetR18), [(128, 256, 2), (97, 130, 1)])


def _bn_prelu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.PReLU(channels))


class ENetInitial(nn.Module):
    """ENet's initial block (arXiv 1606.02147, Fig. 2(a)): a 3x3 stride-2 conv of 13 filters beside a
    2x2 max pool, concatenated (16 channels), BN, PReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 13, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.prelu = nn.PReLU(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2, 2)], 1)))


class ENetBottleneck(nn.Module):
    """ENet's bottleneck (arXiv 1606.02147, Fig. 2(b), section 3): projection to a quarter (2x2 stride 2
    when downsampling), a 3x3 conv (dilated, or 5x1 then 1x5 when asymmetric), expansion, each
    conv-BN-PReLU but the expansion's (conv-BN), spatial dropout; added to the main branch (max pooled and
    zero-padded in the channels when downsampling); PReLU. No biases."""

    def __init__(self, cin: int, cout: int, down: bool = False, dilation: int = 1, asym: bool = False) -> None:
        super().__init__()
        mid, self.down = cin // 4, down
        self.proj = _bn_prelu(nn.Conv2d(cin, mid, 2 if down else 1, 2 if down else 1, bias=False), mid)
        if asym:
            conv5x1 = nn.Conv2d(mid, mid, (5, 1), padding=(2, 0), bias=False)
            conv1x5 = nn.Conv2d(mid, mid, (1, 5), padding=(0, 2), bias=False)
            self.conv = nn.Sequential(conv5x1, conv1x5, nn.BatchNorm2d(mid), nn.PReLU(mid))
        else:
            self.conv = _bn_prelu(nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation, bias=False), mid)
        self.expand = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.dropout = nn.Dropout2d(0.1)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = x
        if self.down:
            main = F.max_pool2d(x, 2, 2)
            zeros = main.new_zeros(main.shape[0], self.expand[0].out_channels - main.shape[1], *main.shape[2:])
            main = torch.cat([main, zeros], 1)
        return self.act(main + self.dropout(self.expand(self.conv(self.proj(x)))))


class ENetEncoder(nn.Module):
    """ENet's initial block and stages 1 and 2 (arXiv 1606.02147, Table 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.initial = ENetInitial()
        self.bottleneck1 = nn.Sequential(ENetBottleneck(16, 64, down=True), *[ENetBottleneck(64, 64) for _ in range(4)])
        kinds = [{}, {"dilation": 2}, {"asym": True}, {"dilation": 4}, {}, {"dilation": 8}, {"asym": True}, {"dilation": 16}]
        stage2 = [ENetBottleneck(128, 128, **kind) for kind in kinds]  # type: ignore[arg-type]
        self.bottleneck2 = nn.Sequential(ENetBottleneck(64, 128, down=True), *stage2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.bottleneck2(self.bottleneck1(self.initial(image)))


def test_enet_encoder() -> None:
    # PReLU written as relu(x) - a·relu(-x) with a layer_scale named weight: PReLU's slopes redrawn in
    # [0.5, 1.5] as 1-D weights; the initial block's concat agrees at even sizes only, as the reference's
    spec = SPECS / "enet_encoder.yaml"
    ref = _fresh(ENetEncoder)
    assert archspec.check(spec).min_input_size == (8, 8)
    _assert_same(spec, ref, [(128, 96, 2), (130, 66, 1)])
    with pytest.raises(RuntimeError), torch.no_grad():
        ref(torch.zeros(1, 3, 65, 64))


def _down(cin: int, cout: int) -> nn.Sequential:
    """A strided 3x3 conv (no bias), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SeparableConv(nn.Module):
    """EfficientDet's separable conv (arXiv 1911.09070, section 3.3): depthwise 3x3 (no bias), pointwise 1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise_conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class EfficientDetHead(nn.Module):
    """A box or class prediction network of EfficientDet (arXiv 1911.09070, Fig. 3): its separable convs
    and predictor shared across the levels, a BatchNorm per level and layer, swish."""

    def __init__(self, channels: int, out: int, layers: int = 3, levels: int = 5) -> None:
        super().__init__()
        self.conv_list = nn.ModuleList(SeparableConv(channels, channels) for _ in range(layers))
        bns = (nn.ModuleList(nn.BatchNorm2d(channels, 1e-3, 0.01) for _ in range(layers)) for _ in range(levels))
        self.bn_list = nn.ModuleList(bns)
        self.header = SeparableConv(channels, out)

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for x, bns in zip(maps, self.bn_list, strict=True):
            for conv, bn in zip(self.conv_list, bns, strict=True):  # type: ignore[call-overload]
                x = F.silu(bn(conv(x)))
            out.append(self.header(x))
        return out


class EfficientDetHeads(nn.Module):
    """A strided backbone giving P3-P7 (64 channels), then EfficientDet's box (9·4) and class (9·20)
    prediction networks on every level."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.stem = _down(3, 16)
        self.backbone.c2 = _down(16, 24)
        cin = 24
        for level in (3, 4, 5, 6, 7):
            setattr(self.backbone, f"p{level}", _down(cin, 64))
            cin = 64
        self.regressor = EfficientDetHead(64, 9 * 4)
        self.classifier = EfficientDetHead(64, 9 * 20)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.backbone
        x = b.c2(b.stem(image))
        maps = []
        for level in (3, 4, 5, 6, 7):
            x = getattr(b, f"p{level}")(x)
            maps.append(x)
        out = {}
        for level, box, cls in zip((3, 4, 5, 6, 7), self.regressor(maps), self.classifier(maps), strict=True):
            out[f"box_p{level}"], out[f"cls_p{level}"] = box, cls
        return out


def test_efficientdet_heads() -> None:
    # shared separable convs with a BatchNorm per level (bn_list.LEVEL.I): the BatchNorms redrawn apart,
    # so a level reading another's statistics would show
    ref = _fresh(EfficientDetHeads)
    _assert_same(SPECS / "efficientdet_heads.yaml", ref, [(128, 128, 2), (161, 97, 1)])


class VGGBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU: UNet++'s convolution unit H (arXiv 1807.10165, section 2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class NestedUNet(nn.Module):
    """UNet++ (arXiv 1807.10165, Fig. 1, eq. 1) of depth 4 with deep supervision: X(i,j) =
    H([X(i,0) … X(i,j-1), Up(X(i+1,j-1))]), Up bilinear ×2 with aligned corners; four 1x1 heads."""

    def __init__(self, filters: tuple[int, ...] = (8, 16, 32, 64, 128), classes: int = 1) -> None:
        super().__init__()
        for i, f in enumerate(filters):
            setattr(self, f"conv{i}_0", VGGBlock(3 if i == 0 else filters[i - 1], f))
        for j in range(1, 5):
            for i in range(5 - j):
                setattr(self, f"conv{i}_{j}", VGGBlock(filters[i] * j + filters[i + 1], filters[i]))
        for j in range(1, 5):
            setattr(self, f"final{j}", nn.Conv2d(filters[0], classes, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x: dict[tuple[int, int], torch.Tensor] = {(0, 0): self.conv0_0(image)}
        for i in range(1, 5):
            x[i, 0] = getattr(self, f"conv{i}_0")(F.max_pool2d(x[i - 1, 0], 2, 2))
        for j in range(1, 5):
            for i in range(5 - j):
                up = F.interpolate(x[i + 1, j - 1], scale_factor=2, mode="bilinear", align_corners=True)
                x[i, j] = getattr(self, f"conv{i}_{j}")(torch.cat([*(x[i, k] for k in range(j)), up], 1))
        return {f"final{j}": getattr(self, f"final{j}")(x[0, j]) for j in range(1, 5)}


def test_unet_plus_plus() -> None:
    # the nested skips concatenate every earlier node of a level with the upsampled node below; the
    # maps meet where the input is a multiple of 16, check's accepted sizes and the reference's
    spec = SPECS / "unet_plus_plus.yaml"
    assert archspec.check(spec).min_input_size == (16, 16)
    model = _assert_same(spec, _fresh(NestedUNet), [(64, 96, 2), (80, 48, 1)])
    with pytest.raises(ValueError), torch.no_grad():
        model(torch.zeros(1, 3, 72, 64))


class RoIHeads(nn.Module):
    """Parts of a torchvision detector's roi_heads, run one after the other on RoI features; a predictor
    giving several tensors gives them as a dict, under the names of its layers."""

    def __init__(self, roi_heads: nn.Module, head: str, predictor: str, names: tuple[str, ...] = ()) -> None:
        super().__init__()
        setattr(self, head, getattr(roi_heads, head))
        setattr(self, predictor, getattr(roi_heads, predictor))
        self.parts, self.names = (head, predictor), names

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        out = getattr(self, self.parts[1])(getattr(self, self.parts[0])(x))
        return dict(zip(self.names, out, strict=True)) if self.names else out


def test_fasterrcnn_v2_box_head() -> None:
    # two outputs from one vector; the flatten fixes the input at 7×7, as the reference's Linear does
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    detector = _fresh(lambda: fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None))
    ref = RoIHeads(detector.roi_heads, "box_head", "box_predictor", ("cls_score", "bbox_pred"))
    spec = SPECS / "fasterrcnn_v2_box_head.yaml"
    _assert_same(spec, ref, [(7, 7, 3), (7, 7, 1)], channels=256)


def test_keypointrcnn_keypoint_head() -> None:
    from torchvision.models.detection import keypointrcnn_resnet50_fpn

    detector = _fresh(lambda: keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None))
    ref = RoIHeads(detector.roi_heads, "keypoint_head", "keypoint_predictor")
    spec = SPECS / "keypointrcnn_keypoint_head.yaml"
    _assert_same(spec, ref, [(14, 14, 2), (9, 13, 1)], channels=256)
