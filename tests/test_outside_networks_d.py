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

import archspec

torchvision = pytest.importorskip("torchvision")

SPECS = Path(__file__).parent / "specs_outside"


def _redraw(module: torch.nn.Module, seed: int) -> None:
    """Draws every floating tensor of module's state_dict afresh: weights ~ N(0, 1/fan_in), 1-D
    scales in [0.5, 1.5], biases and running means N(0, 0.1²), running variances in [0.5, 1.5]."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            leaf = name.rsplit(".", 1)[-1]
            if tensor.dim() >= 2:
                fan_in = tensor[0].numel()
                new = torch.randn(tensor.shape, generator=gen) / fan_in**0.5
            elif leaf in ("running_var",) or (leaf == "weight" and tensor.dim() == 1):
                new = torch.rand(tensor.shape, generator=gen) + 0.5
            else:
                new = torch.randn(tensor.shape, generator=gen) * 0.1
            tensor.copy_(new)


def _outputs(value: object) -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {"out": value}
    assert isinstance(value, dict), type(value)
    return {str(k): v for k, v in value.items()}


def _assert_same(
    spec: str | Path, reference: torch.nn.Module, sizes: list[tuple[int, int]], seed: int = 0, names: dict[str, str] | None = None
) -> None:
    """Loads reference's redrawn state_dict into the compiled spec strictly and compares every
    output at each input size. names maps the reference's output names to the spec's."""
    _redraw(reference, seed)
    reference.eval()
    model = archspec.build(spec).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(seed + 1)
    for h, w in sizes:
        x = torch.randn(2, 3, h, w, generator=gen)
        with torch.no_grad():
            want = _outputs(reference(x))
            got = _outputs(model(x))
        if names is not None:
            want = {names[k]: v for k, v in want.items()}
        assert sorted(got) == sorted(want), (sorted(got), sorted(want))
        for key, ref in want.items():
            scale = ref.abs().max().item()
            torch.testing.assert_close(
                got[key], ref, rtol=1e-4, atol=1e-4 * scale, msg=lambda m, k=key, s=(h, w): f"{k} at {s}: {m}"
            )


@pytest.mark.slow
def test_vgg11_bn() -> None:
    ref = torchvision.models.vgg11_bn(weights=None)
    _assert_same(SPECS / "vgg11_bn.yaml", ref, [(224, 224), (67, 45)])


@pytest.mark.slow
def test_alexnet() -> None:
    ref = torchvision.models.alexnet(weights=None)
    _assert_same(SPECS / "alexnet.yaml", ref, [(224, 224), (63, 80)])


@pytest.mark.slow
def test_wide_resnet50_2() -> None:
    ref = torchvision.models.wide_resnet50_2(weights=None)
    _assert_same(SPECS / "wide_resnet50_2.yaml", ref, [(224, 224), (67, 45)])


@pytest.mark.slow
def test_efficientnet_v2_s() -> None:
    ref = torchvision.models.efficientnet_v2_s(weights=None)
    _assert_same(SPECS / "efficientnet_v2_s.yaml", ref, [(224, 224), (67, 45)])


def test_regnet_y_800mf() -> None:
    ref = torchvision.models.regnet_y_800mf(weights=None)
    _assert_same(SPECS / "regnet_y_800mf.yaml", ref, [(64, 64), (67, 45)])
