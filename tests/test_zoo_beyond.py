"""Zoo networks beyond the Inception/ResNet family equal their references: SE-ResNet-50
(specs/seresnet50.yaml, timm's `seresnet50`), ResNeXt-50 32×4d (specs/resnext50_32x4d.yaml,
torchvision's `resnext50_32x4d`), MobileNetV3-Large (specs/mobilenet_v3_large.yaml, torchvision's
`mobilenet_v3_large`), DenseNet-121 (specs/densenet121.yaml, torchvision's `densenet121`),
ShuffleNetV2 1.0× (specs/shufflenet_v2_x1_0.yaml, torchvision's `shufflenet_v2_x1_0`),
EfficientNet-B0 (specs/efficientnet_b0.yaml, torchvision's `efficientnet_b0`) and ConvNeXt-T
(specs/convnext_tiny.yaml, torchvision's `convnext_tiny`): strict state_dict load, logits at three
sizes (incl. the minimum), parameters, MACs (conv + linear, counted on the reference by hooks; in
ConvNeXt also by fvcore) and training-mode gradients. Truth is the reference's own module with random
weights and perturbed BatchNorm (ConvNeXt: perturbed LayerNorms and layer scales). EfficientNet and
ConvNeXt also train with the reference's random numbers: with dropout and stochastic depth on, the
same seed gives the same outputs and gradients."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import SPECS
from tests.references import (
    REFERENCES,
    assert_same_gradients,
    assert_same_logits,
    perturb_bn,
    perturb_group_norm,
    perturb_layer_norm,
)

pytest.importorskip("timm")
pytest.importorskip("torchvision")
NETWORKS = [
    "seresnet50",
    "resnext50_32x4d",
    "mobilenet_v3_large",
    "densenet121",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "convnext_tiny",
    "tf_efficientnet_b0",
    "cspresnet50",
    "resnetv2_50x1_bit",
    "res2net50_26w_4s",
]
LAYER_NORM = {"convnext_tiny"}  # LayerNorm and layer scale instead of BatchNorm
GROUP_NORM = {"resnetv2_50x1_bit"}  # GroupNorm and weight-standardised convs instead of BatchNorm


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(50)
    reference = REFERENCES[name]().eval()
    if name in LAYER_NORM:  # its classifier is drawn with std 0.02 after a LayerNorm: logits far from zero already
        perturb_layer_norm(reference, 50)
    elif name in GROUP_NORM:
        perturb_group_norm(reference, 50)
    else:
        perturb_bn(reference, 50)
        with torch.no_grad():  # torchvision draws classifiers with std 0.01: scale up, so logits are far from zero
            for m in reference.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.mul_(10)
        if name == "tf_efficientnet_b0":  # timm's TF init leaves the logits ~1e-6: a wider classifier
            torch.nn.init.normal_(reference.get_submodule("classifier").weight, std=0.5)
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


def _same_random_numbers(name: str) -> dict[str, float]:
    """Train ``name`` and its reference one step each, seeded alike, with dropout and stochastic depth
    on: outputs and gradients are equal; the reference seeded differently gives other outputs (the
    randomness is real). Returns archspec's drop-path rates by module path, checked against the
    reference's modules at the same paths."""
    model, reference = _pair(name)
    model.train(), reference.train()
    x = torch.randn(4, 3, 64, 64)
    outputs = []
    for net, seed in ((model, 7), (reference, 7), (reference, 8)):
        net.zero_grad()
        torch.manual_seed(seed)
        out = net(x)
        out.logsumexp(dim=1).mean().backward()
        outputs.append((out.detach(), {k: p.grad.clone() for k, p in net.named_parameters()}))
    (ours, our_grads), (theirs, their_grads), (other, _) = outputs
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert (other - theirs).abs().max() > 1e-2
    for param, grad in our_grads.items():
        torch.testing.assert_close(grad, their_grads[param], rtol=1e-4, atol=1e-5, msg=param)
    rates = {path: m.p for path, m in model.named_modules() if type(m).__name__ == "DropPath"}
    assert rates == {path: reference.get_submodule(path).p for path in rates}
    return rates


@pytest.mark.slow
def test_efficientnet_draws_the_reference_s_random_numbers() -> None:
    """Training mode with dropout (0.2) and stochastic depth (0 … 0.1875) on: seeded alike, archspec's
    EfficientNet-B0 drops the same samples' branches and the same features as torchvision's."""
    rates = _same_random_numbers("efficientnet_b0")
    # each residual block's rate is the reference's, at the same path (0.2 · block index / 16)
    assert len(rates) == 9


@pytest.mark.slow
def test_convnext_draws_the_reference_s_random_numbers() -> None:
    """Stochastic depth on (0 … 0.1 over the 18 blocks, torchvision's 0.1 · i / (18 − 1)): seeded alike,
    archspec's ConvNeXt-T drops the same samples' residual branches as torchvision's."""
    rates = _same_random_numbers("convnext_tiny")
    stochastic = [m for m in REFERENCES["convnext_tiny"]().modules() if type(m).__name__ == "StochasticDepth"]
    assert len(rates) == len(stochastic) == 18  # every block has one, at the reference's path
    assert max(rates.values()) == pytest.approx(0.1) and min(rates.values()) == 0


def test_convnext_macs_are_fvcore_s() -> None:
    """fvcore counts the MLP's linear layers on every pixel of the channels-last map, as archspec does."""
    fvcore = pytest.importorskip("fvcore.nn")
    reference = REFERENCES["convnext_tiny"]().eval()
    report = archspec.check(SPECS / "convnext_tiny.yaml")
    x = torch.randn(1, 3, *report.input_size)
    by_op = fvcore.FlopCountAnalysis(reference, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_operator()
    assert report.macs == by_op["conv"] + by_op["linear"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tf_efficientnet_b0", "cspresnet50", "resnetv2_50x1_bit", "res2net50_26w_4s"])
def test_macs_are_fvcore_s(name: str) -> None:
    """fvcore's conv and linear counts (its weight standardisation and padding count none), at the spec's size."""
    fvcore = pytest.importorskip("fvcore.nn")
    reference = REFERENCES[name]().eval()
    report = archspec.check(SPECS / f"{name}.yaml")
    x = torch.randn(1, 3, *report.input_size)
    analysis = fvcore.FlopCountAnalysis(reference, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    assert report.macs == by_op["conv"] + by_op.get("linear", 0)
