"""ResNet-18/34/50/101/152 equal torchvision's `resnet*` (weights=None).

Truth is torchvision's own module: built with random init, its weights copied into ours
through `state_dict` with strict=True, both run in eval mode on the same random input.
"""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import SPECS
from tests.references import assert_same_gradients, assert_same_logits, perturb_bn

torchvision = pytest.importorskip("torchvision")

DEPTHS = [18, 34, 50, 101, 152]


def _pair(depth: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(depth)
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    perturb_bn(reference, depth)  # random BN statistics, so eval mode exercises them too
    model = archspec.build(SPECS / f"resnet{depth}.yaml").eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return model, reference


@pytest.mark.fast_params("18")
@pytest.mark.parametrize("depth", DEPTHS)
def test_resnet_equals_torchvision(depth: int) -> None:
    model, reference = _pair(depth)
    report = archspec.check(SPECS / f"resnet{depth}.yaml")
    assert report.params == sum(p.numel() for p in reference.parameters())
    # a small, odd, non-square size (odd sizes through every stride-2 stage), then the default 224×224
    assert_same_logits(model, reference, SPECS / f"resnet{depth}.yaml", [(1, 3, 67, 45), (1, 3, 224, 224)])


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_trains_like_torchvision(depth: int) -> None:
    """Training mode: the same gradients. The plain model adds each residual into its body's output
    in place, as torchvision does; autograd must accept it."""
    model, reference = _pair(depth)
    assert_same_gradients(model, reference, torch.randn(2, 3, 64, 64))
