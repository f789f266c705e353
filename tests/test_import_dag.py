"""archspec import of DAG-shaped networks (issue 26 meeting issue 30's language): skips read by name
(`from:`), `interpolate size_of=`, `crop to=`, several outputs on separate branches.

Truth is the module itself: the imported spec, built, loads the module's state_dict with strict=True
and returns the same outputs (every map of a dict) at two input sizes, BatchNorm statistics perturbed.
Where the zoo has the network written by hand, `archspec diff` between the import and the zoo spec
finds the same network (ops, module paths, shapes; names aside).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from references import DENSE_REFERENCES, perturb_bn

import archspec
from archspec.importer import ImportRefused, to_spec

torchvision = pytest.importorskip("torchvision")


def _maps(out: Any) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return {"": out}
    if isinstance(out, dict):
        return {str(k): v for k, v in out.items()}
    return {str(i): v for i, v in enumerate(out)}


def assert_imports_exactly(
    model: nn.Module, sizes: list[tuple[int, int]], channels: int = 3, spec_size: tuple[int, int] | None = None
) -> str:
    """Import (the spec's input size: ``spec_size``, else the first size); the spec built loads the
    state_dict strictly and gives the same maps at each size."""
    perturb_bn(model)
    model.eval()
    text = to_spec(model, name="imported", input_size=spec_size or sizes[0]).text
    ours = archspec.build(text)
    ours.load_state_dict(model.state_dict(), strict=True)
    ours.eval()
    torch.manual_seed(0)
    for h, w in sizes:
        x = torch.randn(2, channels, h, w)
        with torch.no_grad():
            theirs, mine = _maps(model(x)), _maps(ours(x))
        assert list(mine) == list(theirs), (list(mine), list(theirs))
        for k, v in theirs.items():
            assert mine[k].shape == v.shape, (k, mine[k].shape, v.shape)
            assert float(v.abs().max()) > 1e-3, k  # far from zero, so the tolerance means something
            torch.testing.assert_close(mine[k], v, rtol=1e-4, atol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    return text


def _segmentation(name: str, **kw: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from torchvision.models import segmentation

        return getattr(segmentation, name)(weights=None, weights_backbone=None, **kw)  # type: ignore[no-any-return]

    return make


@pytest.mark.slow
def test_fcn_resnet50_interpolates_its_logits_to_the_input_s_size() -> None:
    """`F.interpolate(x, size=input_shape)`, input_shape = x.shape[-2:]: `interpolate size_of=input`, the
    returned {'out': ...} an output named out."""
    text = assert_imports_exactly(_segmentation("fcn_resnet50", aux_loss=False)(), [(64, 64), (50, 70)])
    assert "out: interpolate size_of=input bilinear" in text and "outputs: [out]" in text, text


@pytest.mark.slow
def test_lraspp_reads_the_low_features_by_name_and_gates_the_high_ones() -> None:
    """LR-ASPP's head: low_classifier(low) + high_classifier(resize(cbr(high) · scale(high)), low's size):
    the sum's side branch reads backbone.4 by name, the gate reads the backbone's value by name. The
    sum is the head's (its forward computes it): a residual inside `classifier` whose body is the
    operand computed after the side branch starts (high_classifier), as the zoo writes it."""
    from archspec.importer.coverage import compare_with_zoo

    text = assert_imports_exactly(_segmentation("lraspp_mobilenet_v3_large")(), [(64, 64), (72, 56)], spec_size=(224, 224))
    assert "size_of=backbone.4" in text and "{from: backbone.4}" in text, text
    head = yaml.safe_load(text)["network"][1]["classifier"]
    body, shortcut = [{"high_classifier": "conv2d 21 1x1"}], [{"from": "backbone.4"}, {"low_classifier": "conv2d 21 1x1"}]
    assert head[-1] == {"residual": {"body": body, "shortcut": shortcut}}, text
    zoo_blocks, verdict = compare_with_zoo(text, "lraspp_mobilenet_v3_large")
    assert verdict.startswith("same network"), verdict


@pytest.mark.slow
def test_deeplabv3_is_the_zoo_s_network() -> None:
    from archspec.importer.coverage import compare_with_zoo

    text = assert_imports_exactly(DENSE_REFERENCES["deeplabv3_resnet50"](), [(64, 64), (48, 80)], spec_size=(224, 224))
    zoo_blocks, verdict = compare_with_zoo(text, "deeplabv3_resnet50")
    assert verdict.startswith("same network"), verdict
    # ASPP, its pooling branch and its ModuleList are each held once: written in place, as the zoo does
    assert list(yaml.safe_load(text)["blocks"]) == ["bottleneck"] and zoo_blocks == 1, text
    assert "- '0':\n    - convs:\n        concat:" in text, text


@pytest.mark.slow
def test_resnet_fpn_backbone_returns_its_ordered_dict_of_maps() -> None:
    """torchvision's BackboneWithFPN: lateral 1×1 convs on layer1…layer4 read by name, the top-down sums
    (nearest interpolation to each lateral's size), a 3×3 conv on each, and the extra max-pool level:
    outputs '0'…'3' and 'pool', in the reference's order."""
    from archspec.importer.coverage import compare_with_zoo

    text = assert_imports_exactly(DENSE_REFERENCES["resnet50_fpn"](), [(64, 64), (72, 88)], spec_size=(224, 224))
    assert "'0': fpn.layer_blocks.0" in text and "pool: fpn.pool" in text, text
    assert "- '0': [{from: body.layer1}, {'0': conv2d 256 1x1}]" in text, text  # the zoo's lateral
    assert compare_with_zoo(text, "resnet50_fpn")[1].startswith("same network")


def _double(cin: int, cout: int, pad: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=pad), nn.ReLU())


class _UNet(nn.Module):
    """Ronneberger et al.'s U-Net (arXiv 1505.04597, Fig. 1), two levels, written as people write it: the
    encoder's maps kept in variables, each cropped to the up-convolution's size (``crop=True``, valid
    convolutions) or taken whole (padded convolutions), and concatenated before the decoder's convs."""

    def __init__(self, crop: bool, c: int = 8) -> None:
        super().__init__()
        pad = 0 if crop else 1
        self.crop = crop
        self.enc1, self.enc2 = _double(1, c, pad), _double(c, 2 * c, pad)
        self.pool = nn.MaxPool2d(2)
        self.bottom = _double(2 * c, 4 * c, pad)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), _double(4 * c, 2 * c, pad)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2), _double(2 * c, c, pad)
        self.head = nn.Conv2d(c, 2, 1)

    def centre(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if not self.crop:
            return x
        h, w = like.shape[2], like.shape[3]
        top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        return x[:, :, top : top + h, left : left + w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2))
        u2 = self.up2(b)
        d2 = self.dec2(torch.cat([self.centre(e2, u2), u2], dim=1))
        u1 = self.up1(d2)
        d1 = self.dec1(torch.cat([self.centre(e1, u1), u1], dim=1))
        return self.head(d1)  # type: ignore[no-any-return]


def test_a_u_net_reads_its_skips_by_name_and_crops_them_to_the_up_convolution() -> None:
    """Valid convolutions: `crop to=up1` of the skip read by name, concatenated with the up-convolution;
    the spine stays one list in the module's order (enc1, pool, enc2, …, dec1, head)."""
    torch.manual_seed(0)
    text = assert_imports_exactly(_UNet(crop=True), [(60, 60), (68, 76)], channels=1)
    assert "{from: enc1}" in text and "crop to=up1" in text and "{from: enc2}" in text, text
    spine = [k for item in __import__("yaml").safe_load(text)["network"] for k in (item if isinstance(item, dict) else {})]
    assert spine[:1] == ["enc1"] and spine[-1] == "head", spine


def test_a_padded_u_net_concatenates_its_skips_whole() -> None:
    torch.manual_seed(0)
    text = assert_imports_exactly(_UNet(crop=False), [(32, 32), (24, 40)], channels=1)
    assert "{from: enc1}" in text and "crop" not in text, text


class _Up(nn.Module):
    """One decoder level of U-Net as a module of its own (the form most U-Net code takes): the up-convolution,
    the skip cropped to its centre at the up-convolution's size, the concatenation and two valid 3×3 convs."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = _double(2 * cout, cout, 0)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        h, w = x.shape[2], x.shape[3]
        top, left = (skip.shape[2] - h) // 2, (skip.shape[3] - w) // 2
        return self.conv(torch.cat([skip[:, :, top : top + h, left : left + w], x], dim=1))  # type: ignore[no-any-return]


class _UNetLevels(nn.Module):
    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.enc1, self.enc2, self.enc3 = _double(1, c, 0), _double(c, 2 * c, 0), _double(2 * c, 4 * c, 0)
        self.pool = nn.MaxPool2d(2)
        self.bottom = _double(4 * c, 8 * c, 0)
        self.up3, self.up2, self.up1 = _Up(8 * c, 4 * c), _Up(4 * c, 2 * c), _Up(2 * c, c)
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        b = self.bottom(self.pool(e3))
        return self.head(self.up1(self.up2(self.up3(b, e3), e2), e1))  # type: ignore[no-any-return]


def test_u_net_decoder_levels_of_one_class_are_one_block_taking_the_skip_as_a_parameter() -> None:
    """Each `_Up` reads an encoder map kept in a variable: one block, `from: $skip`, its crop to its own `up`
    (read inside the instance), each level passing its skip (`skip=enc2`), as the zoo's `up_step` is written."""
    torch.manual_seed(0)
    text = assert_imports_exactly(_UNetLevels(), [(188, 188), (204, 196)], channels=1)
    doc = yaml.safe_load(text)
    assert list(doc["blocks"]) == ["up"], text
    assert doc["blocks"]["up"]["params"] == {"out": 32, "skip": "enc3"}
    assert doc["blocks"]["up"]["chain"][1] == {"concat": [[{"from": "$skip"}, "crop to=up"], "identity"]}
    levels = [item for item in doc["network"] if isinstance(item, dict) and set(item) & {"up3", "up2", "up1"}]
    assert levels == [{"up3": "up"}, {"up2": "up out=16 skip=enc2"}, {"up1": "up out=8 skip=enc1"}]


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.left, self.right = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.body(x)
        return {"left": self.left(y), "right": self.right(y)}


def test_outputs_on_separate_branches_each_read_their_value() -> None:
    torch.manual_seed(0)
    text = assert_imports_exactly(_TwoHeads(), [(16, 16), (12, 20)])
    assert "outputs: [left, right]" in text and "{from: body}" in text, text


class _Resize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return F.interpolate(y, size=(x.shape[2] * 2, 7))


def test_a_resize_to_a_computed_size_is_one_located_refusal() -> None:
    with pytest.raises(ImportRefused, match="no archspec op|computes with a tensor's shape|size computed"):
        to_spec(_Resize().eval(), input_size=(16, 16))


class _Reused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.c = nn.Conv2d(7, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        return torch.cat([a, self.c(torch.cat([x, a], 1))], 1)  # a merged twice, with values it does not dominate


def test_a_value_merged_twice_is_read_by_name() -> None:
    """Once refused ("one fork per merge"): the input and `a` are read by name where they are merged again."""
    torch.manual_seed(0)
    text = assert_imports_exactly(_Reused(), [(8, 8), (5, 9)])
    assert "concat: [{from: input}, identity]" in text and "concat: [{from: a}, identity]" in text, text
