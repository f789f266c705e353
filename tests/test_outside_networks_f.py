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
