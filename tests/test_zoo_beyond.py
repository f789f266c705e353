"""Zoo networks beyond the Inception/ResNet family equal their references: SE-ResNet-50
(specs/seresnet50.yaml, timm's `seresnet50`), ResNeXt-50 32×4d (specs/resnext50_32x4d.yaml,
torchvision's `resnext50_32x4d`), MobileNetV3-Large (specs/mobilenet_v3_large.yaml, torchvision's
`mobilenet_v3_large`), DenseNet-121 (specs/densenet121.yaml, torchvision's `densenet121`),
ShuffleNetV2 1.0× (specs/shufflenet_v2_x1_0.yaml, torchvision's `shufflenet_v2_x1_0`) and ConvNeXt-T
(specs/convnext_tiny.yaml, torchvision's `convnext_tiny`): strict state_dict load, logits at three
sizes (incl. the minimum), parameters, MACs (conv + linear, counted on the reference by hooks; in
ConvNeXt also by fvcore) and training-mode gradients. Truth is the reference's own module with random
weights and perturbed BatchNorm (ConvNeXt: perturbed LayerNorms and layer scales)."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.conftest import SPECS
from tests.references import REFERENCES, assert_same_gradients, assert_same_logits, perturb_bn, perturb_layer_norm

pytest.importorskip("timm")
pytest.importorskip("torchvision")
NETWORKS = ["seresnet50", "resnext50_32x4d", "mobilenet_v3_large", "densenet121", "shufflenet_v2_x1_0",
            "convnext_tiny"]
LAYER_NORM = {"convnext_tiny"}  # LayerNorm and layer scale instead of BatchNorm


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(50)
    reference = REFERENCES[name]().eval()
    if name in LAYER_NORM:  # its classifier is drawn with std 0.02 after a LayerNorm: logits far from zero already
        perturb_layer_norm(reference, 50)
    else:
        perturb_bn(reference, 50)
        with torch.no_grad():  # torchvision draws classifiers with std 0.01: scale up, so logits are far from zero
            for m in reference.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.mul_(10)
    model = archspec.build(SPECS / f"{name}.yaml").eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return model, reference


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_equals_reference(name: str) -> None:
    model, reference = _pair(name)
    report = archspec.check(SPECS / f"{name}.yaml")
    assert report.params == sum(p.numel() for p in reference.parameters())
    small = (1, 3, *report.min_input_size)  # the reference runs there too: the minimum is real
    assert_same_logits(model, reference, SPECS / f"{name}.yaml", [small, (1, 3, 67, 45), (1, 3, 224, 224)])


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_trains_like_reference(name: str) -> None:
    model, reference = _pair(name)
    assert_same_gradients(model, reference, torch.randn(2, 3, 64, 64))


def test_convnext_macs_are_fvcore_s() -> None:
    """fvcore counts the MLP's linear layers on every pixel of the channels-last map, as archspec does."""
    fvcore = pytest.importorskip("fvcore.nn")
    reference = REFERENCES["convnext_tiny"]().eval()
    report = archspec.check(SPECS / "convnext_tiny.yaml")
    x = torch.randn(1, 3, *report.input_size)
    by_op = (fvcore.FlopCountAnalysis(reference, x).unsupported_ops_warnings(False)
             .uncalled_modules_warnings(False).by_operator())
    assert report.macs == by_op["conv"] + by_op["linear"]
