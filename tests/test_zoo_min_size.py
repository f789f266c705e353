"""Every spec's minimum input size really runs, and one pixel less is refused.

Parametrized over specs/*.yaml, so a new zoo spec is covered without editing this file. Where a
reference implementation exists, it independently confirms the minimum: it runs at the size
archspec reports and fails one pixel below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import archspec
from tests.paths import SPECS

SPEC_FILES = sorted(p.name for p in SPECS.glob("*.yaml"))


@pytest.mark.parametrize("spec", SPEC_FILES)
def test_min_input_size_runs_and_one_pixel_less_is_refused(spec: str) -> None:
    report = archspec.check(SPECS / spec)
    mh, mw = report.min_input_size
    model = archspec.build(SPECS / spec).eval()
    with torch.no_grad():
        out = model(torch.randn(1, report.input_channels, mh, mw))
    if isinstance(out, dict):  # outputs: several named values, checked in order; the first one below
        assert list(out) == list(report.main) and all(torch.isfinite(v).all() for v in out.values())
        out = out[report.main[0]]
    # the output at that size (a segmentation map's size follows the input's)
    assert out.shape == (1, *report.outputs[report.main[0]].at(mh, mw)) and torch.isfinite(out).all()
    for h, w in ((mh - 1, mw), (mh, mw - 1)):
        if min(h, w) < 0:
            continue
        with pytest.raises(ValueError, match=f"H >= {mh} and W >= {mw}"):
            model(torch.randn(1, report.input_channels, h, w))
        if min(h, w) >= 1:  # sizes below 1 are refused by the schema already
            with pytest.raises(archspec.SpecError) as err:
                archspec.check(SPECS / spec, {"input.size": [h, w]})
            assert err.value.code == "input-too-small"


def _torchvision(name: str) -> Callable[[], Any]:
    def make() -> Any:
        torchvision = pytest.importorskip("torchvision")
        return getattr(torchvision.models, name)(weights=None)

    return make


def _timm(name: str) -> Callable[[], Any]:
    def make() -> Any:
        timm = pytest.importorskip("timm")
        return timm.create_model(name, pretrained=False)

    return make


def _facenet() -> Any:
    facenet = pytest.importorskip("facenet_pytorch")
    return facenet.InceptionResnetV1(classify=True, num_classes=1000)


REFERENCES: dict[str, Callable[[], Any]] = {
    **{f"resnet{d}.yaml": _torchvision(f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "inception_resnet_v2.yaml": _timm("inception_resnet_v2"),
    "facenet_inception_resnet_v1.yaml": _facenet,
}


@pytest.mark.parametrize("spec", sorted(REFERENCES))
def test_reference_agrees_on_min_input_size(spec: str) -> None:
    mh, mw = archspec.check(SPECS / spec).min_input_size
    reference = REFERENCES[spec]().eval()
    with torch.no_grad():
        assert reference(torch.randn(1, 3, mh, mw)).shape == (1, 1000)
        with pytest.raises(RuntimeError):
            reference(torch.randn(1, 3, mh - 1, mw))
