"""ECA's attention (`channel_conv`, a conv across the channels of a pooled vector). Truth: timm's
`ecaresnet26t` written as a spec (tests/specs_outside/ecaresnet26t.yaml) loads timm's state_dict with
strict=True and gives its logits, built, optimized and as a standalone file; timm's EcaModule on its
own for the kernel rule over many channel counts; ECA's rule as the paper's code states it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from archspec.errors import SpecError
from tests.paths import ROOT
from tests.test_ops_attention import same_as_reference

ECARESNET26T = ROOT / "tests" / "specs_outside" / "ecaresnet26t.yaml"


def _paper_kernel(channels: int) -> int:
    """ECA-Net's adaptive K (arXiv 1910.03151, eq. 12, γ = 2, b = 1: the odd number nearest |log2(C)/γ + b/γ|),
    with timm's floor of 3."""
    t = int(abs((math.log(channels, 2) + 1) / 2))
    return max(t if t % 2 else t + 1, 3)


def _gate(channels: int, kernel: str = "") -> str:
    return (
        f"archspec: 1\nname: eca\ninput: {{channels: {channels}, size: [5, 4]}}\nnetwork:\n"
        f"  se: {{gate: [adaptive_avgpool 1x1, conv: channel_conv {kernel}, sigmoid]}}\n"
    )


@pytest.mark.parametrize("channels", [1, 3, 16, 64, 100, 128, 256, 1000, 2048, 4096])
def test_a_gate_with_channel_conv_equals_timm_eca_module(channels: int) -> None:
    from timm.layers.eca import EcaModule

    reference = EcaModule(channels).eval()
    assert reference.conv.kernel_size == (_paper_kernel(channels),)
    model = archspec.build(_gate(channels)).eval()
    model.load_state_dict({f"se.{k}": v for k, v in reference.state_dict().items()}, strict=True)
    x = torch.randn(2, channels, 5, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


def test_a_written_kernel_and_the_rule_s_options() -> None:
    from timm.layers.eca import EcaModule

    assert archspec.build(_gate(64, "7")).state_dict()["se.conv.weight"].shape == (1, 1, 7)
    for gamma, beta in ((3.0, 1.0), (2.0, 3.0)):
        reference = EcaModule(256, gamma=gamma, beta=beta)
        model = archspec.build(_gate(256, f"gamma={gamma} beta={beta}"))
        assert model.state_dict()["se.conv.weight"].shape == reference.conv.weight.shape


def test_channel_conv_counts_as_fvcore_counts_a_conv1d() -> None:
    report = archspec.check(_gate(256))
    row = next(r for r in report.rows if r.path == "se")
    assert row.params == 5  # K = 5 for 256 channels, no bias
    assert report.macs == 256 * 5  # fvcore: a Conv1d of one channel over C outputs, K weights each


def test_an_even_kernel_and_a_map_are_refused() -> None:
    with pytest.raises(SpecError, match="must be odd"):
        archspec.check(_gate(8, "4"))
    spec = "archspec: 1\nname: m\ninput: {channels: 8, size: [5, 4]}\nnetwork: [channel_conv 3]\n"
    with pytest.raises(SpecError, match="one value per channel") as e:
        archspec.check(spec)
    assert "adaptive_avgpool 1x1" in str(e.value.hint)


def test_ecaresnet26t_loads_timm_and_gives_its_logits(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    reference: nn.Module = timm.create_model("ecaresnet26t")
    model = same_as_reference(ECARESNET26T, reference, [(64, 64), (65, 47)], tmp_path, "Ecaresnet26t")
    assert archspec.check(ECARESNET26T).params == sum(p.numel() for p in model.parameters())
    # MACs: the convs' (the Conv1d across the channels among them) and the linear's, as fvcore counts them
    fvcore = pytest.importorskip("fvcore.nn")
    analysis = fvcore.FlopCountAnalysis(reference, torch.randn(1, 3, 40, 56))
    by_op = analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_operator()
    assert archspec.check(ECARESNET26T, overrides={"input.size": [40, 56]}).macs == int(by_op["conv"] + by_op["linear"])
