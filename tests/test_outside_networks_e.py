"""Networks written from the documentation alone, outside the zoo (list E: timm 1.0's newer mobile
networks, ResNet variants with attention, NAS networks, re-parameterisable networks before their
re-parameterisation, Res2NeXt, Xception-65, NFNet-F0, FastViT, MambaOut).

As tests/test_outside_networks.py (whose weight redrawing this file reuses): each spec under
``tests/specs_outside/`` was written from README.md and docs/*.md only; timm's ``state_dict`` with
every float tensor redrawn (BatchNorm statistics too, so that wrong wiring cannot hide) loads into the
compiled network with ``strict=True``, and in eval mode the logits equal timm's at two input sizes and
at the smallest input size ``archspec check`` reports (which timm's network must accept too).

Both networks run in float64: with redrawn weights and BatchNorm statistics the logits of a deep
network reach 1e6 and float32 rounding alone differs by up to 3e-4 of that between two correct
orders of summation (RepViT's three-way sum), while in float64 correct wiring agrees to 1e-13 and a
wrong one by the order of the logits; the comparison is allclose at rtol 1e-4.

Specs with ``variants:`` carry their timm family; every member listed is compared.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from tests.test_outside_networks import SPECS, _redrawn, _timm  # noqa: E402

SIZES = [(64, 64), (45, 38)]


# timm name → (spec stem, overrides, input sizes (H, W) besides the minimum: small, to keep CI short)
CASES: dict[str, tuple[str, dict[str, Any], list[tuple[int, int]]]] = {
    "repvit_m0_9": ("repvit_m0_9", {}, SIZES),
    **{f"repvit_{v}": ("repvit_m0_9", {"variant": v}, [(45, 38)]) for v in ("m1_0", "m1_1", "m1_5", "m2_3", "m1", "m2", "m3")},
    "hgnetv2_b0": ("hgnetv2_b0", {}, SIZES),
    **{f"hgnetv2_{v}": ("hgnetv2_b0", {"variant": v}, [(45, 38)]) for v in ("b1", "b2", "b3", "b4", "b5", "b6")},
    "starnet_s1": ("starnet_s1", {}, SIZES),
    **{f"starnet_{v}": ("starnet_s1", {"variant": v}, [(45, 38)]) for v in ("s2", "s3", "s4", "s050", "s100", "s150")},
    "resnet50d": ("resnet50d", {}, SIZES),
    **{f"resnet{v}d": ("resnet50d", {"variant": f"r{v}"}, [(45, 38)]) for v in ("26", "101", "152", "200")},
    "seresnext26ts": ("seresnext26ts", {}, SIZES),
    "eca_resnext26ts": ("seresnext26ts", {"variant": "eca"}, [(45, 38)]),
    "spnasnet_100": ("spnasnet_100", {}, SIZES),
    "fbnetv3_b": ("fbnetv3_b", {}, SIZES),
    **{f"fbnetv3_{v}": ("fbnetv3_b", {"variant": v}, [(45, 38)]) for v in ("d", "g")},
    "ghostnetv3_050": ("ghostnetv3_050", {}, SIZES),
    **{f"ghostnetv3_{w}": ("ghostnetv3_050", {"variant": f"w{w}"}, [(45, 38)]) for w in ("100", "130", "160")},
    "mobileone_s1": ("mobileone_s1", {}, SIZES),
    **{f"mobileone_{v}": ("mobileone_s1", {"variant": v}, [(45, 38)]) for v in ("s0", "s2", "s3", "s4")},
    "rdnet_tiny": ("rdnet_tiny", {}, SIZES),
    **{f"rdnet_{v}": ("rdnet_tiny", {"variant": v}, [(45, 38)]) for v in ("small", "base", "large")},
    "res2next50": ("res2next50", {}, SIZES),
    "resnetrs50": ("resnetrs50", {}, SIZES),
    **{f"resnetrs{v}": ("resnetrs50", {"variant": f"r{v}"}, [(45, 38)]) for v in ("101", "152", "200")},
    "xception65": ("xception65", {}, SIZES),
    "xception41": ("xception65", {"variant": "x41"}, [(45, 38)]),
    "dm_nfnet_f0": ("dm_nfnet_f0", {}, SIZES),
    "dm_nfnet_f1": ("dm_nfnet_f0", {"variant": "f1"}, [(45, 38)]),
    "fastvit_t8": ("fastvit_t8", {}, SIZES),
    **{f"fastvit_{v}": ("fastvit_t8", {"variant": v}, [(45, 38)]) for v in ("t12", "s12")},
    "mambaout_femto": ("mambaout_femto", {}, SIZES),
    **{f"mambaout_{v}": ("mambaout_femto", {"variant": v}, [(45, 38)]) for v in ("kobe", "tiny", "small", "base")},
    "gcresnet33ts": ("gcresnet33ts", {}, SIZES),
    "resnet33ts": ("gcresnet33ts", {"variant": "plain"}, [(45, 38)]),
    "seresnet33ts": ("gcresnet33ts", {"variant": "se"}, [(45, 38)]),
    "eca_resnet33ts": ("gcresnet33ts", {"variant": "eca"}, [(45, 38)]),
}

# over 15 M parameters or deep, or a family's members beside its first: the slow tier
FAST = {"repvit_m0_9", "repvit_m1_0", "repvit_m1", "hgnetv2_b0", "hgnetv2_b1", "starnet_s1", "starnet_s2"}
FAST |= {"starnet_s050", "starnet_s100", "starnet_s150", "resnet26d", "spnasnet_100", "fbnetv3_b", "ghostnetv3_050"}
FAST |= {"mobileone_s1", "mobileone_s0", "fastvit_t8", "mambaout_femto"}
SLOW = set(CASES) - FAST


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_outside_network_e_equals_timm(name: str) -> None:
    stem, overrides, sizes = CASES[name]
    reference = _timm(name)().eval()
    spec = SPECS / f"{stem}.yaml"
    model = archspec.build(spec, overrides=overrides).eval()
    state = _redrawn(reference.state_dict())
    reference.load_state_dict(state)
    model.load_state_dict(state, strict=True)
    reference.double()
    model.double()
    smallest = archspec.check(spec, overrides=overrides).min_input_size
    torch.manual_seed(0)
    for size in [*sizes, smallest]:
        x = torch.randn(1, 3, *size, dtype=torch.float64)
        with torch.no_grad():
            want, got = reference(x), model(x)
        assert got.shape == want.shape == (1, 1000), (name, size)
        scale = want.abs().max().item()
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6 * max(1.0, scale)), (name, size)
