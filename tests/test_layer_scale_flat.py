"""`layer_scale INIT flat`: the per-channel scale stored as a vector of C, as timm's ConvNeXt keeps `gamma`.
Truth: timm's convnext_atto with every float tensor redrawn (γ included, so a wrongly broadcast scale shows):
its state_dict loads into tests/specs/convnext_atto.yaml with strict=True and the logits agree, eager, after
`optimize` and in the standalone file; on a vector the flat scale is the plain one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archspec
from tests.references import timm_redrawn
from tests.test_codegen import compile_to, run_standalone

timm = pytest.importorskip("timm")

SPEC = Path(__file__).resolve().parent / "specs" / "convnext_atto.yaml"


def test_convnext_atto_loads_timm_gamma_and_equals_timm(tmp_path: Path) -> None:
    reference, state = timm_redrawn("convnext_atto")
    assert state["stages.1.blocks.0.gamma"].shape == (80,)
    model = archspec.build(SPEC).eval()
    model.load_state_dict(state, strict=True)
    fast = archspec.optimize(model)
    with torch.no_grad():
        for size in (96, 75):
            x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
            want = reference(x)
            torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast(x), want, rtol=1e-4, atol=1e-4)
    compile_to(SPEC, tmp_path / "net.py")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = reference(x)
    torch.testing.assert_close(run_standalone(tmp_path, tmp_path / "net.py", "ConvnextAtto", state, x), want)


def test_a_flat_scale_on_a_vector_is_the_plain_one() -> None:
    head = "archspec: 1\nname: v\ninput: {channels: 3, size: [8, 8]}\n"
    head += "network: [conv2d 4 1x1, global_avgpool, s: layer_scale 0.5{}]\n"
    flat, plain = archspec.build(head.replace("{}", " flat")), archspec.build(head.replace("{}", ""))
    assert flat.state_dict()["s"].shape == plain.state_dict()["s"].shape == (4,)
    plain.load_state_dict(flat.state_dict())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(flat(x), plain(x), rtol=0, atol=0)
