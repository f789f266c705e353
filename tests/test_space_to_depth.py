"""`space_to_depth B [channel_major]` (docs/language.md, "Space to depth"): each B×B block of pixels moved into
the channels. Truth: timm's SpaceToDepth (TResNet's stem, block-major order) and torch's pixel_unshuffle
(channel-major); the accepted sizes (H and W multiples of B, after whatever comes before) against torch itself,
which fails to reshape at the others."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402
from tests.test_codegen import compile_to, run_standalone  # noqa: E402

SPEC = """archspec: 1
name: s2d
input: {channels: 3, size: [24, 16]}
network:
  - stem: space_to_depth 4
  - conv: conv2d 8 3x3 p1
  - space_to_depth 2 channel_major
"""


def test_block_major_is_timm_s_and_channel_major_is_pixel_unshuffle(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    from timm.layers.space_to_depth import SpaceToDepth

    model = archspec.build(SPEC).eval()
    state = model.state_dict()
    fast = archspec.optimize(model)
    source = tmp_path / "s2d.yaml"
    source.write_text(SPEC)
    out = tmp_path / "S2d.py"
    compile_to(source, out)
    for size in ((24, 16), (8, 40)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            y = torch.nn.functional.conv2d(SpaceToDepth(4)(x), state["conv.weight"], state["conv.bias"], padding=1)
            want = torch.nn.functional.pixel_unshuffle(y, 2)
            torch.testing.assert_close(model(x), want)
            torch.testing.assert_close(fast(x), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(model.to(memory_format=torch.channels_last)(x), want)
        torch.testing.assert_close(run_standalone(tmp_path, out, "S2d", state, x), want)
    report = archspec.check(SPEC)
    assert report.outputs["logits"].at(24, 16) == (8 * 4, 3, 2)


def _torch_takes(h: int, w: int) -> bool:
    """Whether the chain below computes at h×w in torch: a 3×3/2 conv (padding 1), then blocks of 2."""
    try:
        y = torch.nn.functional.conv2d(torch.zeros(1, 1, h, w), torch.zeros(1, 1, 3, 3), stride=2, padding=1)
        if y.shape[2] % 2 or y.shape[3] % 2:  # pixel_unshuffle's own rule
            raise RuntimeError("not divisible")
        torch.nn.functional.pixel_unshuffle(y, 2)
        return True
    except RuntimeError:
        return False


def test_the_sizes_it_accepts_are_torch_s() -> None:
    text = "archspec: 1\nname: t\ninput: {channels: 1, size: [8, 12]}\n"
    text += "network: [conv2d 1 3x3 s2 p1, space_to_depth 2 channel_major]\n"
    report = archspec.check(text)
    for h in range(1, 30):
        assert report.accepted.ok(h, 12) == _torch_takes(h, 12), h
    with pytest.raises(SpecError) as e:
        archspec.check(text.replace("size: [8, 12]", "size: [8, 10]"))
    assert e.value.code == "shape" and e.value.line == 4 and "multiple of 2" in str(e.value)
    model = archspec.build(text)
    with pytest.raises(Exception, match="input"):
        model(torch.zeros(1, 1, 8, 10))  # the input guard: 10 → 5, not a multiple of 2


@pytest.mark.slow
def test_tresnet_m_equals_timm() -> None:
    """tests/specs_outside/tresnet_m.yaml (by LANG2, from timm's module): timm's tresnet_m, every tensor redrawn, strict
    load, equal logits at two sizes (multiples of 4 for the stem's blocks; 100 is odd after layer2's stride)."""
    timm = pytest.importorskip("timm")
    from tests.test_outside_networks_d import SPECS, _assert_same

    ref = timm.create_model("tresnet_m", pretrained=False)  # not on the meta device: BlurPool2d's filter is no state
    _assert_same(SPECS / "tresnet_m.yaml", ref, [(128, 96, 1), (100, 68, 1)])
