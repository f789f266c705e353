"""The zoo networks added for issue 30 start from their references' initial distribution (tests/test_init.py
does the same for the classifiers with a reference, timm's res2net50_26w_4s, cspresnet50,
resnetv2_50x1_bit and tf_efficientnet_b0 among them).

Truth: torchvision's `resnet_fpn_backbone("resnet50")`, `deeplabv3_resnet50`, `lraspp_mobilenet_v3_large`
and `efficientnet_b1` … `b4`, each freshly constructed; a two-sample Kolmogorov–Smirnov test per tensor of
the state_dict against archspec's fresh build (constants must be equal: BatchNorm's γ and β, statistics,
zero biases). U-Net has no reference module: its convolutions are tested against the paper's rule (Sec. 3:
"a Gaussian distribution with a standard deviation of √(2/N), where N denotes the number of incoming nodes
of one neuron"), N worked out here from each layer's shape. One test shows the check is not blind: the
same network without its spec's `init:` table fails it."""

from __future__ import annotations

import math

import pytest
import torch

import archspec
from tests.paths import SPECS
from tests.references import DENSE_REFERENCES, assert_same_init

pytest.importorskip("scipy.stats")
torchvision = pytest.importorskip("torchvision")


def _fresh(name: str, overrides: dict[str, object] | None = None) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(1)
    reference = DENSE_REFERENCES[name]()
    torch.manual_seed(2)
    return archspec.build(SPECS / f"{name}.yaml", overrides), reference


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("lraspp_mobilenet_v3_large"),
        *(pytest.param(n, marks=pytest.mark.slow) for n in ("resnet50_fpn", "deeplabv3_resnet50")),
    ],
)
def test_dense_networks_start_like_their_references(name: str) -> None:
    """FPN: the body Kaiming-normal (fan_out), the FPN's convs kaiming_uniform(a=1) with zero biases;
    DeepLabv3: the backbone Kaiming-normal, the ASPP head PyTorch's default; LR-ASPP: the backbone's convs
    Kaiming-normal with zero biases, its SE linears and the head PyTorch's default."""
    assert_same_init(*_fresh(name), name)


@pytest.mark.slow
def test_the_check_sees_a_wrong_init() -> None:
    """Without its `init:` table (PyTorch's defaults everywhere), LR-ASPP's backbone convs are drawn
    uniformly with another scale: the test above must fail."""
    with pytest.raises(AssertionError, match="is not drawn like the reference's"):
        assert_same_init(*_fresh("lraspp_mobilenet_v3_large", {"init": {}}), "lraspp without init")


@pytest.mark.slow
@pytest.mark.parametrize("member", ["b1", "b2", "b3", "b4"])
def test_efficientnet_variants_start_like_torchvision_s(member: str) -> None:
    """The B0 spec's table (convs Kaiming-normal fan_out, the classifier U(±1/√1000), biases 0) holds for
    every member: torchvision draws the classifier with 1/√(its outputs), the same 1000 in each."""
    torch.manual_seed(1)
    reference = getattr(torchvision.models, f"efficientnet_{member}")()
    torch.manual_seed(2)
    assert_same_init(archspec.build("zoo:efficientnet_b0", {"variant": member}), reference, member)


@pytest.mark.slow
@pytest.mark.parametrize(
    "member", ["densenet161", "densenet169", "densenet201", "shufflenet_v2_x0_5", "shufflenet_v2_x2_0", "convnext_small"]
)
def test_the_other_families_start_like_torchvision_s(member: str) -> None:
    """The DenseNet-121 spec's table (convs Kaiming-normal fan_in, the classifier's bias 0; BatchNorm at
    its defaults), ShuffleNetV2's (PyTorch's defaults) and ConvNeXt's (truncated normal, std 0.02) hold
    for the members of their families."""
    torch.manual_seed(1)
    reference = getattr(torchvision.models, member)()
    torch.manual_seed(2)
    assert_same_init(archspec.build(f"zoo:{member}"), reference, member)


def _incoming(name: str, weight: torch.Tensor) -> int:
    """The paper's N: how many inputs one output neuron of this layer sums. A conv's: its input channels
    times its kernel's area; a 2×2 up-convolution of stride 2 (weight: in, out, 2, 2) places each input
    pixel's 2×2 patch apart from the others', so one output neuron sees one tap of every input channel."""
    if name.endswith(".up.weight"):
        assert weight.shape[2:] == (2, 2)
        return weight.shape[0]
    return weight.shape[1] * weight.shape[2] * weight.shape[3]


@pytest.mark.slow
def test_unet_starts_as_its_paper_says() -> None:
    from scipy import stats

    torch.manual_seed(3)
    sd = archspec.build(SPECS / "unet.yaml").state_dict()
    weights = [k for k in sd if k.endswith(".weight")]
    assert len(weights) == 23  # Fig. 1: 18 3×3 convs, 4 up-convolutions, the final 1×1 conv
    gen = torch.Generator().manual_seed(0)
    alpha = 0.01 / len(weights)
    for key in weights:
        w = sd[key].flatten().double()
        w = w[torch.randperm(w.numel(), generator=gen)[:20_000]]
        truth = torch.randn(20_000, generator=gen, dtype=torch.float64) * math.sqrt(2 / _incoming(key, sd[key]))
        p = stats.ks_2samp(w.numpy(), truth.numpy()).pvalue
        assert p > alpha, f"{key}: not N(0, 2/N) (KS p = {p:.2e}, std {w.std():.4g})"
    assert all((sd[k] == 0).all() for k in sd if k.endswith(".bias"))
