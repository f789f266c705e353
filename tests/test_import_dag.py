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
from references import DENSE_REFERENCES, perturb_bn

import archspec
from archspec.importer import to_spec

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
    the sum's side branch reads backbone.4 by name, the gate reads the backbone's value by name."""
    text = assert_imports_exactly(_segmentation("lraspp_mobilenet_v3_large")(), [(64, 64), (72, 56)])
    assert "size_of=backbone.4" in text and "{from: backbone.4}" in text, text


@pytest.mark.slow
def test_deeplabv3_is_the_zoo_s_network() -> None:
    from archspec.importer.coverage import compare_with_zoo

    text = assert_imports_exactly(DENSE_REFERENCES["deeplabv3_resnet50"](), [(64, 64), (48, 80)], spec_size=(224, 224))
    assert compare_with_zoo(text, "deeplabv3_resnet50")[1].startswith("same network")


def test_resnet_fpn_backbone_returns_its_ordered_dict_of_maps() -> None:
    """torchvision's BackboneWithFPN: lateral 1×1 convs on layer1…layer4 read by name, the top-down sums
    (nearest interpolation to each lateral's size), a 3×3 conv on each, and the extra max-pool level:
    outputs '0'…'3' and 'pool', in the reference's order."""
    text = assert_imports_exactly(DENSE_REFERENCES["resnet50_fpn"](), [(64, 64), (72, 88)])
    assert "'0': fpn.layer_blocks.0" in text and "pool: fpn.pool" in text, text
