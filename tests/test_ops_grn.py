"""Global response normalisation (`grn`, ConvNeXt V2, arXiv 2301.00808). Truth: timm's ConvNeXt V2-Atto
(`convnextv2_atto`, whose MLP carries timm's own `GlobalResponseNorm`), with every float tensor redrawn so
that γ and β are not their initial zeros (a GRN at zero is the identity and would hide a wrong formula): its
state_dict loads into tests/specs/convnextv2_atto.yaml with strict=True and the logits agree, eager, after
`optimize` and in the standalone file; and `archspec import` reads timm's layer back as `grn`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archspec
from archspec.errors import SpecError
from tests.references import timm_redrawn
from tests.test_codegen import compile_to, run_standalone

timm = pytest.importorskip("timm")

SPEC = Path(__file__).resolve().parent / "specs" / "convnextv2_atto.yaml"


def test_convnextv2_atto_equals_timm_eager_and_optimized() -> None:
    reference, state = timm_redrawn("convnextv2_atto")
    model = archspec.build(SPEC).eval()
    model.load_state_dict(state, strict=True)
    fast = archspec.optimize(model)
    with torch.no_grad():
        for size in (224, 96):
            x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
            want = reference(x)
            torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast(x), want, rtol=1e-4, atol=1e-4)


def test_convnextv2_atto_standalone_file_equals_timm(tmp_path: Path) -> None:
    reference, state = timm_redrawn("convnextv2_atto")
    compile_to(SPEC, tmp_path / "net.py")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = reference(x)
    got = run_standalone(tmp_path, tmp_path / "net.py", "Convnextv2Atto", state, x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_timm_grn_imports_as_grn() -> None:
    from timm.layers.grn import GlobalResponseNorm

    from archspec.importer.pipeline import import_module

    layer = GlobalResponseNorm(8, eps=1e-3, channels_last=False)
    with torch.no_grad():  # not the initial zeros, so that the check run by import_module can see the layer
        layer.weight.normal_()
        layer.bias.normal_()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), layer).eval()
    text = import_module(net, input_size=16, name="grn_net")  # built, loaded strictly, outputs compared
    assert "grn eps=0.001" in text


def test_grn_on_a_vector_is_a_located_shape_error() -> None:
    spec = "archspec: 1\nname: v\ninput: {channels: 3, size: [8, 8]}\nnetwork: [conv2d 4 1x1, global_avgpool, grn]\n"
    with pytest.raises(SpecError, match="needs a C×H×W feature map") as info:
        archspec.check(spec)
    assert info.value.loc.line == 4
