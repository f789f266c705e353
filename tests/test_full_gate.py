"""A gate giving the whole C×H×W of its input (docs/language.md, "Gates"): the gate is broadcast onto x,
each of its C, H and W x's or 1. Truth: torch's product of the same tensors; timm's `GhostModuleV2` and the
whole `ghostnetv2_100` (tests/specs_outside/ghostnetv2_100.yaml, written from the docs) with their
state_dict redrawn and BatchNorm statistics perturbed, strict load, equal outputs at two sizes, built,
optimized and as a standalone file."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402
from tests.test_ops_attention import same_as_reference  # noqa: E402
from tests.test_outside_networks import _redrawn  # noqa: E402

GHOSTNETV2 = Path(__file__).resolve().parent / "specs_outside" / "ghostnetv2_100.yaml"


def _spec(gate: str, size: str = "[12, 10]") -> str:
    return f"archspec: 1\nname: g\ninput: {{channels: 3, size: {size}}}\nnetwork:\n  - stem: conv2d 8 3x3 p1\n  - att: {gate}\n"


def test_a_gate_of_the_input_s_shape_multiplies_element_by_element() -> None:
    model = archspec.build(_spec("{gate: [conv: conv2d 8 3x3 p1, sigmoid]}")).eval()
    s = model.state_dict()
    f = torch.nn.functional
    for size in ((12, 10), (1, 1), (5, 7)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            y = f.conv2d(x, s["stem.weight"], s["stem.bias"], padding=1)
            want = y * torch.sigmoid(f.conv2d(y, s["att.conv.weight"], s["att.conv.bias"], padding=1))
            torch.testing.assert_close(model(x), want)


def test_a_gate_computed_at_half_size_and_resized_back_is_a_full_gate() -> None:
    gate = "{gate: {chain: {pool: avgpool 2x2 s2, conv: conv2d 8 1x1, act: sigmoid, up: interpolate size_of=stem}}}"
    model = archspec.build(_spec(gate)).eval()
    s = model.state_dict()
    f = torch.nn.functional
    for size in ((12, 10), (7, 5)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            y = f.conv2d(x, s["stem.weight"], s["stem.bias"], padding=1)
            g = torch.sigmoid(f.conv2d(f.avg_pool2d(y, 2, 2), s["att.conv.weight"], s["att.conv.bias"]))
            torch.testing.assert_close(model(x), y * f.interpolate(g, size=y.shape[-2:], mode="nearest"))


@pytest.mark.parametrize(
    "gate, got",
    [
        ("{gate: [conv2d 4 1x1, sigmoid]}", "got 4×H×W"),  # channels neither x's nor 1
        ("{gate: [conv2d 8 3x3, sigmoid]}", "got 8×(H - 2)×(W - 2)"),  # a size neither x's nor 1
        ("{gate: [avgpool 2x2 s2, conv2d 8 1x1, sigmoid]}", "got 8×floor(H/2)×floor(W/2)"),  # not resized back
    ],
)
def test_a_gate_that_does_not_broadcast_onto_x_is_refused(gate: str, got: str) -> None:
    with pytest.raises(SpecError) as e:
        archspec.check(_spec(gate))
    assert e.value.code == "shape-mismatch" and got in str(e.value), str(e.value)
    assert "one value per element" in str(e.value)


def _ghostnetv2() -> torch.nn.Module:
    timm = pytest.importorskip("timm")
    reference = timm.create_model("ghostnetv2_100", pretrained=False).eval()
    reference.load_state_dict(_redrawn(reference.state_dict()))  # every tensor redrawn, BatchNorm statistics too
    return reference


def test_ghostnetv2_100_equals_timm() -> None:
    reference = _ghostnetv2()
    model = archspec.build(GHOSTNETV2).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    assert archspec.check(GHOSTNETV2).params == sum(p.numel() for p in reference.parameters())
    torch.manual_seed(0)
    for size in ((64, 64), (33, 45)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            want, got = reference(x), model(x)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * max(1.0, want.abs().max().item()))


@pytest.mark.slow
def test_ghostnetv2_100_equals_timm_optimized_and_standalone(tmp_path: Path) -> None:
    same_as_reference(GHOSTNETV2, _ghostnetv2(), [(64, 64), (33, 45)], tmp_path, "Ghostnetv2100")
