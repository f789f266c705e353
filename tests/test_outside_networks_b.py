"""Networks written from the documentation alone, outside the zoo (list B: several outputs, rarer blocks).

As tests/test_outside_networks.py (whose reference builders and weight redrawing this file reuses):
each spec under ``tests/specs_outside/`` was written from README.md and docs/*.md only; the
reference's ``state_dict`` with every float tensor redrawn (BatchNorm statistics too) loads into the
compiled network with ``strict=True``, and in eval mode every output equals the reference's at two
input sizes the spec accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from tests.test_outside_networks import SPECS, _as_dict, _redrawn, _timm, _torchvision  # noqa: E402


def _resnet18_fpn_p6p7() -> Any:
    pytest.importorskip("torchvision")
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    return resnet_fpn_backbone(
        backbone_name="resnet18",
        weights=None,
        trainable_layers=5,
        returned_layers=[2, 3, 4],
        extra_blocks=LastLevelP6P7(256, 256),
    )


def _unet3() -> Any:
    """A plain three-level U-Net written here, the truth for tests/specs_outside/unet3.yaml."""
    nn = torch.nn

    def double(cin: int, cout: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    class UNet3(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.enc1, self.enc2, self.bottleneck = double(3, 16), double(16, 32), double(32, 64)
            self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), double(64, 32)
            self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), double(32, 16)
            self.head = nn.Conv2d(16, 2, 1)

        def forward(self, x: Any) -> dict[str, Any]:
            e1 = self.enc1(x)
            e2 = self.enc2(nn.functional.max_pool2d(e1, 2))
            b = self.bottleneck(nn.functional.max_pool2d(e2, 2))
            d2 = self.dec2(torch.cat([e2, self.up2(b)], 1))
            d1 = self.dec1(torch.cat([e1, self.up1(d2)], 1))
            return {"logits": self.head(d1), "bottleneck": b}

    return UNet3()


def _ssdlite_backbone() -> Any:
    pytest.importorskip("torchvision")
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).backbone


# case → (spec stem, overrides, reference, input sizes (H, W) the spec accepts, small for CI)
CASES: dict[str, tuple[str, dict[str, Any], Callable[[], Any], list[tuple[int, int]]]] = {
    "deeplabv3_mobilenet_v3_large": (
        "deeplabv3_mobilenet_v3_large",
        {},
        _torchvision("deeplabv3_mobilenet_v3_large", weights_backbone=None, aux_loss=True),
        [(64, 64), (45, 38)],
    ),
    # a gate whose body reads the map before the head's first conv; two resizes
    "lraspp_mobilenet_v3_large": (
        "lraspp_mobilenet_v3_large",
        {},
        _torchvision("lraspp_mobilenet_v3_large", weights_backbone=None),
        [(64, 64), (45, 38)],
    ),
    # six maps, the first cut inside a block (after its expansion conv), four from extra blocks
    "ssdlite320_mobilenet_v3_large_backbone": (
        "ssdlite320_mobilenet_v3_large_backbone",
        {},
        _ssdlite_backbone,
        [(64, 64), (45, 38)],
    ),
    # every output map: the FPN's three levels and RetinaNet's P6, P7
    "resnet18_fpn_p6p7": ("resnet18_fpn_p6p7", {}, _resnet18_fpn_p6p7, [(64, 64), (45, 38)]),
    # five maps, as timm's features_only returns them
    "efficientnet_b0_features": (
        "efficientnet_b0_features",
        {},
        _timm("efficientnet_b0", features_only=True),
        [(64, 64), (45, 38)],
    ),
    # the fusions' upsampling equals timm's where the sizes divide by 32
    "hrnet_w18": ("hrnet_w18", {}, _timm("hrnet_w18"), [(64, 64), (96, 32)]),
    # the trees' maxpool 2x2 beside the strided convs: H and W ≡ 0 or 31 (mod 32), as timm's adds allow
    "dla60": ("dla60", {}, _timm("dla60"), [(64, 64), (95, 63)]),
    "regnety_016": ("regnety_016", {}, _timm("regnety_016"), [(64, 64), (45, 38)]),
    "efficientnet_lite0": ("efficientnet_lite0", {}, _timm("efficientnet_lite0"), [(64, 64), (1, 1)]),
    # the train-time branches, before timm's reparameterisation
    "mobileone_s0": ("mobileone_s0", {}, _timm("mobileone_s0"), [(64, 64), (45, 38)]),
    "cs3darknet_s": ("cs3darknet_s", {}, _timm("cs3darknet_s"), [(64, 64), (45, 38)]),
    # global response normalisation (grn) in every block's MLP
    "convnextv2_atto": ("convnextv2_atto", {}, _timm("convnextv2_atto"), [(64, 64), (45, 38)]),
    # two outputs: the logits and the bottleneck map; the skips merge where H, W are multiples of 4
    "unet3": ("unet3", {}, _unet3, [(64, 64), (36, 44)]),
}


def _compare(stem: str, overrides: dict[str, Any], reference: Any, sizes: list[tuple[int, int]]) -> None:
    reference = reference.eval()
    model = archspec.build(SPECS / f"{stem}.yaml", overrides=overrides).eval()
    info = getattr(model, "feature_info", None)  # a list from the reference: named as the spec's outputs
    names = list(overrides.get("outputs", [])) or (list(info.names()) if info is not None else [])
    state = _redrawn(reference.state_dict())
    reference.load_state_dict(state)
    model.load_state_dict(state, strict=True)
    torch.manual_seed(0)
    for size in sizes:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            want, got = _as_dict(reference(x), names), _as_dict(model(x), names)
        assert list(got) == list(want), (stem, size)
        for name, value in want.items():
            assert got[name].shape == value.shape, (stem, size, name)
            scale = value.abs().max().item()
            assert torch.allclose(got[name], value, rtol=0, atol=1e-5 * max(1.0, scale)), (stem, size, name)


# the slow tier: the longest (HRNet), and ConvNeXt-V2, which tests/test_ops_grn.py checks in the fast tier
SLOW = {"hrnet_w18", "convnextv2_atto"}


@pytest.mark.parametrize("case", [pytest.param(case, marks=[pytest.mark.slow] if case in SLOW else []) for case in sorted(CASES)])
def test_outside_network_b_equals_reference(case: str) -> None:
    stem, overrides, make_reference, sizes = CASES[case]
    _compare(stem, overrides, make_reference(), sizes)


def test_inception_next_atto_loads_timm_state_dict_as_is() -> None:
    """timm's MetaNeXtBlock keeps its layer scale ``gamma`` as [C]: ``layer_scale 1e-6 flat`` (WALLS.md, DOC2 06:07)."""
    _compare("inception_next_atto", {}, _timm("inception_next_atto")(), [(64, 64)])
