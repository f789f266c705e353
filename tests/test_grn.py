"""`grn`, global response normalisation (ConvNeXt-V2), against Algorithm 1 of arXiv 2301.00808 written out
with numpy (tests/test_ops_grn.py checks it against timm's layer and timm's convnextv2_atto)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import archspec
from archspec.errors import SpecError

ONE = "archspec: 1\nname: g\ninput: {channels: 6, size: [5, 7]}\nnetwork: {grn: grn eps=0.001}\n"


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
    with pytest.raises(SpecError):  # a vector has no H×W to take norms over
        archspec.check(spec)
