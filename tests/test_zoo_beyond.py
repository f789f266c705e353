"""Zoo networks beyond the Inception/ResNet family equal their references: SE-ResNet-50
(specs/seresnet50.yaml, timm's `seresnet50`) and ResNeXt-50 32×4d (specs/resnext50_32x4d.yaml,
torchvision's `resnext50_32x4d`): strict state_dict load, logits at three sizes (incl. the minimum),
parameters, MACs (conv + linear, counted on the reference by hooks) and training-mode gradients.
Truth is the reference's own module with random weights and perturbed BatchNorm."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.conftest import SPECS
from tests.reference_macs import reference_macs
from tests.references import REFERENCES, perturb_bn

pytest.importorskip("timm")
pytest.importorskip("torchvision")
NETWORKS = ["seresnet50", "resnext50_32x4d"]


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(50)
    reference = REFERENCES[name]().eval()
    perturb_bn(reference, 50)
    model = archspec.build(SPECS / f"{name}.yaml").eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return model, reference


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_equals_reference(name: str) -> None:
    model, reference = _pair(name)
    report = archspec.check(SPECS / f"{name}.yaml")
    assert report.params == sum(p.numel() for p in reference.parameters())
    assert report.min_input_size == (1, 1)
    for shape in [(1, 3, 1, 1), (1, 3, 67, 45), (1, 3, 224, 224)]:
        x = torch.randn(shape)
        with torch.no_grad():
            ours = model(x)
        theirs, macs = reference_macs(reference, x)
        if shape[2:] == report.input_size:
            assert report.macs == macs
        assert theirs.std() > 1e-2
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_trains_like_reference(name: str) -> None:
    model, reference = _pair(name)
    model.train(), reference.train()
    x = torch.randn(2, 3, 64, 64)
    for net in (model, reference):
        net(x).logsumexp(dim=1).mean().backward()
    theirs = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-4, atol=1e-5, msg=name)
