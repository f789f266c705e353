"""`pad` with `reflect`, `replicate` and `circular` (docs/language.md, op reference). Truth: torch's F.pad with the
same mode written out by hand, timm's BlurPool2d (a reflection by 1, then the binomial [1, 2, 1]/4 filter at stride 2,
which two 2×2 box filters compose exactly), and torch's own refusals of maps too small to reflect or wrap."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.errors import SpecError
from tests.test_codegen import compile_to, run_standalone

MODES = """\
archspec: 1
name: pad_modes
input: {channels: 3, size: [9, 9]}
network:
  a: pad 2 reflect
  b: pad p1,2 replicate
  c: pad 3 circular
  d: {op: pad, padding: [1, 0, 2, 1], mode: reflect}
  e: conv2d 4 3x3
"""


def _by_hand(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.pad(x, (2, 2, 1, 1), mode="replicate")
    x = F.pad(x, (3, 3, 3, 3), mode="circular")
    return conv(F.pad(x, (1, 0, 2, 1), mode="reflect"))


def test_each_mode_equals_torch_at_every_size_check_accepts(tmp_path: Path) -> None:
    model = archspec.build(MODES).eval()
    conv = torch.nn.Conv2d(3, 4, 3)
    conv.load_state_dict({k.removeprefix("e."): v for k, v in model.state_dict().items()})
    for size in (9, 5, 3):  # reflect 2 needs 3 pixels: the least size
        x = torch.randn(2, 3, size, size + 1)
        with torch.no_grad():
            torch.testing.assert_close(model(x), _by_hand(x, conv), rtol=0, atol=1e-6)
    spec = tmp_path / "pad.yaml"
    spec.write_text(MODES)
    compile_to(spec, tmp_path / "pad.py")
    x = torch.randn(1, 3, 4, 6)
    with torch.no_grad():
        want = _by_hand(x, conv)
    torch.testing.assert_close(run_standalone(tmp_path, tmp_path / "pad.py", "PadModes", model.state_dict(), x), want)


def test_a_map_too_small_to_reflect_is_refused_where_torch_refuses() -> None:
    model = archspec.build(MODES).eval()
    x = torch.randn(1, 3, 2, 9)
    with pytest.raises(RuntimeError):  # torch itself: padding size should be less than the input dimension
        F.pad(x, (2, 2, 2, 2), mode="reflect")
    with pytest.raises(ValueError, match="H >= 3"):
        model(x)
    with pytest.raises(SpecError, match="at least"):  # the spec's own input size too small: located
        archspec.check(MODES.replace("size: [9, 9]", "size: [2, 2]"))


def test_blur_pool_equals_timm() -> None:
    timm = pytest.importorskip("timm")
    spec = MODES.split("network:")[0] + "network:\n  blur: [pad 1 reflect, avgpool 2x2, avgpool 2x2 s2]\n"
    model = archspec.build(spec).eval()
    reference = timm.layers.blur_pool.BlurPool2d(3, filt_size=3, stride=2)
    for size in (9, 8, 2):
        x = torch.randn(2, 3, size, size)
        torch.testing.assert_close(model(x), reference(x), rtol=1e-6, atol=1e-6)


def test_a_value_with_reflect_is_a_located_error() -> None:
    spec = MODES.replace("a: pad 2 reflect", "a: pad 2 reflect value=1")
    with pytest.raises(SpecError, match="value applies to constant padding only") as info:
        archspec.check(spec)
    assert info.value.loc.line == 5


@pytest.mark.parametrize(
    ("layer", "written"),
    [
        (torch.nn.ReflectionPad2d(1), "pad 1 reflect"),
        (torch.nn.ReplicationPad2d((1, 1, 2, 2)), "pad padding=[1,1,2,2] replicate"),
        (torch.nn.CircularPad2d(2), "pad 2 circular"),
    ],
)
def test_torch_padding_layers_import_with_their_mode(layer: torch.nn.Module, written: str) -> None:
    from archspec.importer.pipeline import import_module

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), layer, torch.nn.Conv2d(4, 4, 3)).eval()
    text = import_module(net, input_size=8, name="padded")  # built, loaded strictly, outputs compared
    assert written in text
