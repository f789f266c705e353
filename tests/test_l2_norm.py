"""`l2_norm [eps=E]` (docs/language.md, "Normalisation"): x / max(‖x‖₂, eps), the norm over the channels at
each pixel of a map (over the values of a vector). Truth: the definition written out here with sums and a
square root (not torch's F.normalize, which the op calls), and torchvision's SSD backbone, whose conv4_3
norm it is (tests/test_outside_networks_d.py, tests/specs_outside/ssd300_vgg16_backbone.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402
from tests.test_codegen import compile_to, run_standalone  # noqa: E402

SPEC = """archspec: 1
name: l2
input: {channels: 3, size: [11, 9]}
network:
  - conv2d 8 3x3 p1
  - norm: l2_norm
  - scale_weight: layer_scale 20 flat
  - small: l2_norm eps=0.5
  - global_avgpool
  - vec: l2_norm
"""


def _by_definition(x: torch.Tensor, eps: float) -> torch.Tensor:
    norm = (x * x).sum(dim=1, keepdim=True).sqrt()
    return x / torch.where(norm > eps, norm, torch.full_like(norm, eps))


def _reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    state = model.state_dict()
    y = torch.nn.functional.conv2d(x, state["0.weight"], state["0.bias"], padding=1)
    y = _by_definition(y, 1e-12) * state["scale_weight"][:, None, None]
    y = _by_definition(y, 0.5).mean(dim=(2, 3))
    return _by_definition(y, 1e-12)


def test_l2_norm_is_x_over_its_norm_over_the_channels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = archspec.build(SPEC).eval()
    with torch.no_grad():
        model.state_dict()["scale_weight"].copy_(torch.rand(8) * 0.01)  # norms around 0.5: eps=0.5 bites
    fast = archspec.optimize(model)
    source = tmp_path / "l2.yaml"
    source.write_text(SPEC)
    out = tmp_path / "L2.py"
    compile_to(source, out)
    for size in ((11, 9), (3, 5)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            want = _reference(model, x)
            torch.testing.assert_close(model(x), want)
            torch.testing.assert_close(fast(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(run_standalone(tmp_path, out, "L2", model.state_dict(), x), want)
    report = archspec.check(SPEC)
    assert report.params == 8 * 3 * 9 + 8 + 8 and report.macs == 8 * 3 * 9 * 11 * 9  # the conv's only


def test_an_eps_that_is_not_a_small_positive_number_is_one_located_error() -> None:
    with pytest.raises(SpecError) as e:
        archspec.check(SPEC.replace("eps=0.5", "eps=0"))
    assert e.value.line == 8
