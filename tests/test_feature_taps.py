"""`features:` names the maps `features_only=True` returns, where a reference's stage boundaries are not the
last row at each reduction (DOC3, session 10: tinynet_a's ÷32 stage ends before the head conv in timm; densenet's
÷2 stage is norm0's output, not the pool after it). Truth: timm's own features_only models, the same weights
given to both through their pretrained loaders from one file: the same modules, channels, reductions and maps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archspec
from archspec.errors import SpecError
from tests.paths import ROOT

OUTSIDE = ROOT / "tests" / "specs_outside"


@pytest.mark.parametrize(
    "name, taps, size",
    [
        ("tinynet_a", ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"], 96),
        # timm's norm2 and norm5 are BatchNormAct2d (BN then ReLU): here the ReLU rows after them
        (
            "densenetblur121d",
            ["features.8", "features.denseblock1", "features.denseblock2", "features.denseblock3", "features.18"],
            64,
        ),
    ],
)
def test_features_named_in_the_spec_equal_timms_features_only(tmp_path: Path, name: str, taps: list[str], size: int) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model(name)
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    file = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), file)
    overlay = {"file": str(file)}
    theirs = timm.create_model(name, features_only=True, pretrained=True, pretrained_cfg_overlay=overlay).eval()
    spec = OUTSIDE / f"{name}.yaml"
    ours = archspec.build(spec, {"features": taps}, features_only=True, pretrained=True, pretrained_cfg_overlay=overlay).eval()
    keys = ("num_chs", "reduction")
    assert ours.feature_info.get_dicts(keys=keys) == theirs.feature_info.get_dicts(keys=keys)
    assert ours.feature_info.module_name() == taps
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        got, want = ours(x), theirs(x)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # out_indices picks among the named maps, as timm's does
    picked = archspec.build(spec, {"features": taps}, features_only=True, out_indices=(1, -1))
    assert picked.feature_info.channels() == [theirs.feature_info.channels()[i] for i in (1, -1)]


@pytest.mark.parametrize(
    "features, message",
    [
        ("[nope]", "features: 'nope' names no node of the network"),
        ("[a, a]", "features: 'a' is named twice"),
        ("[]", "features: names no value"),
        ("[side]", "features: 'side' is a value no output reads"),
    ],
)
def test_what_features_cannot_name_is_a_located_error(features: str, message: str) -> None:
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"
        f"features: {features}\n"
        "network:\n  - a: conv2d 4 3x3 s2 p1\n  - side: conv2d 4 1x1\n  - {from: a}\n  - global_avgpool\n  - fc: linear 3\n"
    )
    with pytest.raises(SpecError, match=message) as e:
        archspec.check(spec, strict=False)
    assert e.value.loc is not None and e.value.loc.line == 4


def test_a_vector_is_not_a_feature_map() -> None:
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"
        "features: [a, p]\nnetwork: [a: conv2d 4 3x3 s2 p1, p: global_avgpool]\n"
    )
    with pytest.raises(SpecError, match="features: 'p' is a vector") as e:
        archspec.build(spec, features_only=True)
    assert e.value.loc is not None and e.value.loc.line == 4


def test_a_stage_output_the_next_stage_overwrites_in_place_is_returned_as_made() -> None:
    """The full network runs the next stage's ReLU in place on the stage's output (nothing else reads it); the
    features_only cut returned that ReLU's result. The ÷2 map is the conv's output, negatives included."""
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\nblocks:\n  stage: {chain: [relu, conv2d 8 3x3 s2 p1]}\n"
        "network:\n  - a: conv2d 4 3x3 s2 p1\n  - b: stage\n  - global_avgpool\n  - fc: linear 3\n"
    )
    model = archspec.build(spec, features_only=True).eval()
    assert model.feature_info.module_name() == ["a", "b"]
    sd = model.state_dict()
    x = torch.randn(2, 3, 16, 16)
    a = torch.nn.functional.conv2d(x, sd["a.weight"], sd["a.bias"], stride=2, padding=1)
    b = torch.nn.functional.conv2d(a.relu(), sd["b.1.weight"], sd["b.1.bias"], stride=2, padding=1)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got[0], a)
    torch.testing.assert_close(got[1], b)
    assert (got[0] < 0).any()
