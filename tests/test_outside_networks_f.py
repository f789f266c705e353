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

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec

torchvision = pytest.importorskip("torchvision")

SPECS = Path(__file__).parent / "specs_outside"


def _redraw(module: nn.Module, seed: int) -> None:
    """Draws every floating tensor of module's state_dict afresh: weights ~ N(0, 1/fan_in), 1-D
    scales in [0.5, 1.5], biases and running means N(0, 0.1²), running variances in [0.5, 1.5]."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.dtype.is_floating_point:
                tensor.zero_()  # num_batches_tracked
                continue
            leaf = name.rsplit(".", 1)[-1]
            if tensor.dim() >= 2:
                new = torch.randn(tensor.shape, generator=gen) / tensor[0].numel() ** 0.5
            elif leaf == "running_var" or (leaf == "weight" and tensor.dim() == 1):
                new = torch.rand(tensor.shape, generator=gen) + 0.5
            else:
                new = torch.randn(tensor.shape, generator=gen) * 0.1
            tensor.copy_(new)


def _fresh(make: Callable[[], nn.Module]) -> nn.Module:
    """The reference, built on the meta device (no initial draws: _redraw fills every tensor)."""
    with torch.device("meta"):
        module = make()
    return module.to_empty(device="cpu")


def _outputs(value: object) -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {"out": value}
    assert isinstance(value, dict), type(value)
    return {str(k): v for k, v in value.items()}


def _assert_same(spec: Path, reference: nn.Module, sizes: list[tuple[int, int, int]], seed: int = 0, **build: object) -> None:
    """Loads reference's redrawn state_dict into the compiled spec strictly and compares every
    output at each input size (height, width, batch), and at check's minimum input size."""
    _redraw(reference, seed)
    reference.eval()
    overrides = build.pop("overrides", None)
    smallest = archspec.check(spec, overrides=overrides).min_input_size  # type: ignore[arg-type]
    model = archspec.build(spec, overrides=overrides, **build).eval()  # type: ignore[arg-type]
    model.load_state_dict(reference.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(seed + 1)
    for h, w, batch in [*sizes, (*smallest, 1)]:
        x = torch.randn(batch, 3, h, w, generator=gen)
        with torch.no_grad():
            want = _outputs(reference(x))
            got = _outputs(model(x))
        assert list(got) == list(want), (list(got), list(want))
        for key, ref in want.items():
            scale = ref.abs().max().item()
            torch.testing.assert_close(
                got[key], ref, rtol=1e-4, atol=1e-4 * scale, msg=lambda m, k=key, s=(h, w): f"{k} at {s}: {m}"
            )


@pytest.mark.slow
def test_densenet161() -> None:
    ref = _fresh(lambda: torchvision.models.densenet161(weights=None))
    _assert_same(SPECS / "densenet161.yaml", ref, [(64, 64, 2), (67, 45, 1)])
    assert archspec.check(SPECS / "densenet161.yaml").min_input_size == (29, 29)


@pytest.mark.parametrize(("member", "make"), [(None, "shufflenet_v2_x0_5"), ("x2_0", "shufflenet_v2_x2_0")])
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
