"""U-Net as the paper draws it (specs/unet.yaml; Ronneberger et al. 2015, arXiv 1505.04597, Fig. 1).

There is no reference module: every size, weight count and MAC count is worked out here by the
paper's arithmetic (an unpadded 3×3 conv loses 2 pixels, a 2×2 max pool of stride 2 halves rounding
down, a 2×2 up-convolution of stride 2 doubles, copy-and-crop takes the centre), apart from archspec.
The ops it needs are checked against torch by hand: conv_transpose against nn.ConvTranspose2d's
output size and fvcore's MACs, crop against slicing.
"""

from __future__ import annotations

import pytest
import torch

import archspec
from archspec.errors import SpecError
from tests.paths import SPECS

UNET = SPECS / "unet.yaml"
WIDTHS = (64, 128, 256, 512, 1024)


def paper_sizes(x: int) -> dict[str, int]:
    """Each level's output size for an input of x, by the paper's rules."""
    sizes: dict[str, int] = {}
    for level in range(1, 5):
        x = x - 2 - 2
        sizes[f"enc{level}"] = x
        x = x // 2
    x = x - 4
    sizes["bottom"] = x
    for level in range(4, 0, -1):
        up = 2 * x  # the up-convolution
        assert sizes[f"enc{level}"] >= up  # the skip is cropped to the up-convolution's size
        x = up - 4
        sizes[f"dec{level}"] = x
    sizes["head"] = x
    return sizes


def paper_params() -> int:
    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    total, cin = 0, 1
    for c in WIDTHS:  # the contracting path and the bottom: two 3×3 convs per level
        total += conv(cin, c, 3) + conv(c, c, 3)
        cin = c
    for c in reversed(WIDTHS[:-1]):  # up-conv halving the channels, then two 3×3 convs over the concat
        total += conv(2 * c, c, 2) + conv(2 * c, c, 3) + conv(c, c, 3)
    return total + conv(64, 2, 1)


def paper_macs(x: int) -> int:
    s = paper_sizes(x)
    macs, cin, h = 0, 1, x
    for c in WIDTHS[:-1]:
        macs += cin * c * 9 * (h - 2) ** 2 + c * c * 9 * (h - 4) ** 2
        cin, h = c, (h - 4) // 2
    macs += 512 * 1024 * 9 * (h - 2) ** 2 + 1024 * 1024 * 9 * (h - 4) ** 2
    h = s["bottom"]
    for c in reversed(WIDTHS[:-1]):
        macs += 2 * c * c * 4 * h * h  # fvcore counts a transposed conv over its input pixels
        h = 2 * h
        macs += 2 * c * c * 9 * (h - 2) ** 2 + c * c * 9 * (h - 4) ** 2
        h = h - 4
    return macs + 64 * 2 * h * h


@pytest.fixture(scope="module")
def report() -> archspec.Report:
    return archspec.check(UNET)


def test_paper_tile_572_gives_388(report) -> None:
    assert paper_sizes(572)["head"] == 388  # the paper's Fig. 1
    assert report.output_shape == (2, 388, 388)
    rows = {r.path: r for r in report.rows}
    for name, size in paper_sizes(572).items():
        assert rows[name].shape.at(572, 572)[1:] == (size, size), name
    assert [rows[f"enc{i}"].shape.channels for i in range(1, 5)] + [rows["bottom"].shape.channels] == list(WIDTHS)


def test_params_and_macs_by_hand(report) -> None:
    assert report.params == paper_params() == 31_030_658
    assert report.macs == paper_macs(572)


def test_sizes_at_every_input_and_the_minimum(report) -> None:
    def computable(x: int) -> bool:
        try:
            return min(paper_sizes(x).values()) >= 1 and (x - 4) // 2 >= 1
        except AssertionError:
            return False

    smallest = next(x for x in range(1, 600) if computable(x))
    assert report.min_input_size == (smallest, smallest) == (188, 188)
    head = report.outputs["logits"]
    for x in range(smallest, 700):
        assert head.at(x, x)[1:] == (paper_sizes(x)["head"],) * 2, x


def test_runs_at_the_minimum_and_an_odd_size() -> None:
    torch.manual_seed(0)
    model = archspec.build(UNET).eval()
    with torch.no_grad():
        for h, w in ((188, 188), (205, 190)):
            out = model(torch.randn(1, 1, h, w))
            assert out.shape == (1, 2, paper_sizes(h)["head"], paper_sizes(w)["head"])
        with pytest.raises(ValueError, match="H >= 188"):
            model(torch.randn(1, 1, 187, 188))


def test_the_standalone_file_computes_the_same(tmp_path) -> None:
    torch.manual_seed(0)
    model = archspec.build(UNET).eval()
    path = tmp_path / "unet_file.py"
    path.write_text(archspec.compile(UNET))
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - the file we just wrote
    standalone = namespace["Unet"]().eval()  # type: ignore[operator]
    standalone.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 1, 190, 197)
    with torch.no_grad():
        assert torch.equal(model(x), standalone(x))


SMALL = """
archspec: 1
name: small_unet
input: {channels: 3, size: [21, 22]}
network:
  - enc: conv2d 4 3x3
  - down: maxpool 2x2 s2
  - up: conv_transpose 4 2x2 s2
  - concat:
      skip: [{from: enc}, crop to=up]
      up: identity
"""


@pytest.mark.parametrize("kernel,stride,padding,output_padding,dilation", [(2, 2, 0, 0, 1), (3, 2, 1, 1, 1), (3, 3, 2, 1, 2)])
def test_conv_transpose_is_torchs(tmp_path, kernel, stride, padding, output_padding, dilation) -> None:
    """Sizes, weights and fvcore's MACs of conv_transpose against nn.ConvTranspose2d."""
    fvcore = pytest.importorskip("fvcore.nn")
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "archspec: 1\nname: t\ninput: {channels: 4, size: [9, 10]}\nnetwork:\n"
        f"  - {{op: conv_transpose, out: 6, kernel: {kernel}, stride: {stride}, padding: {padding}, "
        f"output_padding: {output_padding}, dilation: {dilation}, groups: 2}}\n"
    )
    ref = torch.nn.ConvTranspose2d(4, 6, kernel, stride, padding, output_padding, 2, True, dilation)
    ours = archspec.build(spec).eval()
    ours.load_state_dict({"0." + k: v for k, v in ref.state_dict().items()}, strict=True)
    report = archspec.check(spec)
    assert report.params == sum(p.numel() for p in ref.parameters())
    for h, w in ((9, 10), (1, 1), (4, 7)):
        x = torch.randn(2, 4, h, w)
        with torch.no_grad():
            expected = ref(x)
            assert torch.allclose(ours(x), expected, atol=1e-6)
        assert report.outputs["logits"].at(h, w) == tuple(expected.shape[1:])
    flops = fvcore.FlopCountAnalysis(ref, torch.randn(1, 4, 9, 10)).unsupported_ops_warnings(False).total()
    assert report.macs == flops


def test_crop_takes_the_centre(tmp_path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SMALL)
    model = archspec.build(spec).eval()
    for h, w in ((21, 22), (6, 9), (13, 8)):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            enc = model.enc(x)
            up = model.up(torch.nn.functional.max_pool2d(enc, 2, 2))
            uh, uw = up.shape[2:]
            top, left = (enc.shape[2] - uh) // 2, (enc.shape[3] - uw) // 2  # the odd row at the bottom
            expected = torch.cat([enc[:, :, top : top + uh, left : left + uw], up], 1)
            assert torch.equal(model(x), expected)


def test_crop_to_a_larger_map_is_refused(tmp_path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SMALL.replace("skip: [{from: enc}, crop to=up]", "skip: [{from: down}, crop to=up]"))
    with pytest.raises(SpecError, match=r"smaller than 'up'") as e:
        archspec.check(spec)
    assert e.value.code == "shape" and e.value.loc.line == 10


def test_crop_to_an_unknown_name_is_located(tmp_path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SMALL.replace("crop to=up", "crop to=upp"))
    with pytest.raises(SpecError, match=r"crop to= 'upp' names no node before this one") as e:
        archspec.check(spec)
    assert e.value.code == "name" and "did you mean 'up'" in (e.value.hint or "")
