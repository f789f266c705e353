"""Networks written from the documentation alone, outside the zoo (list C: timm's mobile and NAS networks,
GroupNorm, MetaFormer, re-parameterisable and anti-aliased networks).

As tests/test_outside_networks.py (whose reference builders and weight redrawing this file reuses):
each spec under ``tests/specs_outside/`` was written from README.md and docs/*.md only; timm's
``state_dict`` with every float tensor redrawn (BatchNorm statistics too) loads into the compiled
network with ``strict=True``, and in eval mode the logits equal timm's at two input sizes and at the
smallest input size ``archspec.check`` reports, which timm's network must accept too (the default
sizes, 224×224 and 97×131, were compared when the specs were written). Four specs carry their timm
family as ``variants:`` (TinyNet b–e, MNASNet-A1 at 0.5–1.4, RepGhostNet at 0.58–2.0: widths and
depths computed from ``width_mult`` and ``depth_mult`` as timm rounds them; HardCoRe-NAS b–f: each
member's stages set as ``--set`` would); each member is compared.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from tests.test_outside_networks import SPECS, _redrawn, _timm  # noqa: E402

REPGHOST_WIDTHS = ("058", "080", "100", "111", "130", "150", "200")

# timm name → (spec stem, overrides, input sizes (H, W) besides the minimum: small, to keep CI short)
CASES: dict[str, tuple[str, dict[str, Any], list[tuple[int, int]]]] = {
    "hardcorenas_a": ("hardcorenas_a", {}, [(64, 64), (45, 38)]),
    **{f"hardcorenas_{v}": ("hardcorenas_a", {"variant": v}, [(45, 38)]) for v in "bcdef"},
    "tinynet_a": ("tinynet_a", {}, [(64, 64), (45, 38)]),
    # the family, as timm rounds its widths and depths (tests/specs_outside/tinynet_a.yaml's variants:)
    **{f"tinynet_{v}": ("tinynet_a", {"variant": v}, [(45, 38)]) for v in "bcde"},
    "semnasnet_075": ("semnasnet_075", {}, [(64, 64), (45, 38)]),
    **{f"semnasnet_{w}": ("semnasnet_075", {"variant": f"w{w}"}, [(45, 38)]) for w in ("050", "100", "140")},
    "legacy_seresnext26_32x4d": ("legacy_seresnext26_32x4d", {}, [(64, 64), (45, 38)]),
    "darknet53": ("darknet53", {}, [(64, 64), (45, 38)]),
    "resnet50_gn": ("resnet50_gn", {}, [(64, 64), (45, 38)]),
    "convmixer_768_32": ("convmixer_768_32", {}, [(64, 64), (45, 38)]),
    "poolformer_s12": ("poolformer_s12", {}, [(64, 64), (45, 38)]),
    "repghostnet_050": ("repghostnet_050", {}, [(64, 64), (45, 38)]),
    **{f"repghostnet_{w}": ("repghostnet_050", {"variant": f"w{w}"}, [(45, 38)]) for w in REPGHOST_WIDTHS},
    "efficientnet_es": ("efficientnet_es", {}, [(64, 64), (45, 38)]),
    "mobilenetv4_conv_small": ("mobilenetv4_conv_small", {}, [(64, 64), (45, 38)]),
    "densenetblur121d": ("densenetblur121d", {}, [(64, 64), (45, 38)]),
}

# over 15 M parameters, or DenseNet's 58 dense layers, or the family's other members beside one: the slow tier
SLOW = {"darknet53", "resnet50_gn", "convmixer_768_32", "legacy_seresnext26_32x4d", "densenetblur121d"}
SLOW |= {f"repghostnet_{w}" for w in ("080", "130", "150", "200")} | {"semnasnet_140", "tinynet_b", "tinynet_d"}
SLOW |= {"hardcorenas_b", "hardcorenas_d", "hardcorenas_e"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(CASES)])
def test_outside_network_c_equals_timm(name: str) -> None:
    stem, overrides, sizes = CASES[name]
    reference = _timm(name)().eval()
    spec = SPECS / f"{stem}.yaml"
    model = archspec.build(spec, overrides=overrides).eval()
    state = _redrawn(reference.state_dict())
    reference.load_state_dict(state)
    model.load_state_dict(state, strict=True)
    smallest = archspec.check(spec, overrides=overrides).min_input_size
    torch.manual_seed(0)
    for size in [*sizes, smallest]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            want, got = reference(x), model(x)
        assert got.shape == want.shape == (1, 1000), (name, size)
        scale = want.abs().max().item()
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, scale)), (name, size)
