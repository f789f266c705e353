"""`grn`, global response normalisation (ConvNeXt-V2). Truth: timm's `convnextv2_atto` written as a spec
(tests/specs_outside/convnextv2_atto.yaml) loads timm's state_dict with strict=True (GRN's weights drawn,
BatchNorm-free) and gives its logits, built, optimized and as a standalone file; Algorithm 1 of arXiv
2301.00808 written out with numpy for one layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import archspec
from archspec.errors import SpecError
from tests.paths import ROOT
from tests.test_ops_attention import same_as_reference

CONVNEXTV2_ATTO = ROOT / "tests" / "specs_outside" / "convnextv2_atto.yaml"
ONE = "archspec: 1\nname: g\ninput: {channels: 6, size: [5, 7]}\nnetwork: {grn: grn eps=0.001}\n"


def test_convnextv2_atto_loads_timm_and_gives_its_logits(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    reference = timm.create_model("convnextv2_atto")
    with torch.no_grad():  # timm starts GRN at 0 (the identity): draw its weights so it computes something
        for name, p in reference.named_parameters():
            if ".grn." in name:
                p.normal_()
    model = same_as_reference(CONVNEXTV2_ATTO, reference, [(64, 64), (45, 71)], tmp_path, "Convnextv2Atto")
    assert archspec.check(CONVNEXTV2_ATTO).params == sum(p.numel() for p in model.parameters())


def test_grn_is_the_paper_s_algorithm_and_starts_as_the_identity() -> None:
    model = archspec.build(ONE).eval()
    x = torch.randn(3, 6, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)  # γ = β = 0 at the start, as timm's
        gamma, beta = torch.randn(6), torch.randn(6)
        model.load_state_dict({"grn.weight": gamma, "grn.bias": beta})
        got = model(x).numpy()
    a, g, b = x.double().numpy(), gamma.double().numpy()[None, :, None, None], beta.double().numpy()[None, :, None, None]
    gx = np.sqrt((a**2).sum(axis=(2, 3), keepdims=True))  # Algorithm 1: ‖x‖ over H, W per channel
    nx = gx / (gx.mean(axis=1, keepdims=True) + 1e-3)  # divided by the mean over the channels
    np.testing.assert_allclose(got, g * (a * nx) + b + a, rtol=1e-5, atol=1e-5)
    assert archspec.check(ONE).params == 12  # γ and β, C each


def test_grn_on_a_vector_is_refused() -> None:
    spec = "archspec: 1\nname: g\ninput: {channels: 6, size: [5, 7]}\nnetwork: [global_avgpool, grn]\n"
    with pytest.raises(SpecError, match="needs a C×H×W map"):
        archspec.check(spec)
