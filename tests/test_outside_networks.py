"""Networks written from the documentation alone, outside the zoo, against their references.

Each spec under ``tests/specs_outside/`` was written by reading only README.md and docs/*.md (not
archspec's source, not the zoo's specs), to find what a new user hits. Each is checked as a user
would: the reference's ``state_dict`` (every float tensor redrawn, BatchNorm statistics included,
so that wrong wiring cannot hide) loads into the compiled network with ``strict=True``, and in eval
mode both give the same outputs at two accepted input sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402

SPECS = Path(__file__).resolve().parent / "specs_outside"


def _torchvision(name: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        models = pytest.importorskip("torchvision").models
        factory = getattr(models, name, None) or getattr(models.segmentation, name, None)
        if factory is None:
            pytest.skip(f"torchvision has no {name}")
        return factory(weights=None, **kwargs)

    return build


def _timm(name: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        timm = pytest.importorskip("timm")
        if name not in timm.list_models(name):
            pytest.skip(f"timm has no {name}")
        return timm.create_model(name, pretrained=False, **kwargs)

    return build


HRNET_FEATURES = ["act1", "incre_modules.0", "incre_modules.1", "incre_modules.2", "incre_modules.3"]

# case → (spec stem, overrides, reference, input sizes (H, W) that the spec accepts: small, to keep
# CI short; the default sizes were compared by hand when the specs were written)
CASES: dict[str, tuple[str, dict[str, Any], Callable[[], Any], list[tuple[int, int]]]] = {
    "squeezenet1_1": ("squeezenet1_1", {}, _torchvision("squeezenet1_1"), [(96, 96), (17, 33)]),
    "mobilenet_v2": ("mobilenet_v2", {}, _torchvision("mobilenet_v2"), [(64, 64), (1, 1)]),
    "mnasnet0_5": ("mnasnet0_5", {}, _torchvision("mnasnet0_5"), [(64, 64), (1, 1)]),
    "dla34": ("dla34", {}, _timm("dla34"), [(64, 64), (31, 63)]),
    "dpn68": ("dpn68", {}, _timm("dpn68"), [(64, 64), (45, 38)]),
    "fcn_resnet50": (
        "fcn_resnet50",
        {},
        _torchvision("fcn_resnet50", weights_backbone=None, aux_loss=True),
        [(64, 64), (45, 38)],
    ),
    "regnet_x_400mf": ("regnet_x_400mf", {}, _torchvision("regnet_x_400mf"), [(64, 64), (1, 1)]),
    "repvgg_a0": ("repvgg_a0", {}, _timm("repvgg_a0"), [(64, 64), (33, 45)]),
    "ese_vovnet19b_dw": ("ese_vovnet19b_dw", {}, _timm("ese_vovnet19b_dw"), [(64, 64), (29, 33)]),
    "ghostnet_100": ("ghostnet_100", {}, _timm("ghostnet_100"), [(64, 64), (1, 1)]),
    "rexnet_100": ("rexnet_100", {}, _timm("rexnet_100"), [(64, 64), (1, 1)]),
    "selecsls42b": ("selecsls42b", {}, _timm("selecsls42b"), [(64, 64), (33, 45)]),
    "hrnet_w18_small": ("hrnet_w18_small", {}, _timm("hrnet_w18_small"), [(64, 64), (32, 96)]),
    # several outputs: the stem and the four branches' bottlenecks, as timm's features_only gives them
    "hrnet_w18_small_features": (
        "hrnet_w18_small",
        {"outputs": HRNET_FEATURES},
        _timm("hrnet_w18_small", features_only=True),
        [(64, 64), (96, 32)],
    ),
    # session 9, DOC1: list A
    "mixnet_s": ("mixnet_s", {}, _timm("mixnet_s"), [(64, 64), (33, 45)]),
    "tf_efficientnetv2_s": ("tf_efficientnetv2_s", {}, _timm("tf_efficientnetv2_s"), [(64, 64), (33, 45)]),
    "cspdarknet53": ("cspdarknet53", {}, _timm("cspdarknet53"), [(64, 64), (33, 45)]),
    "xception41": ("xception41", {}, _timm("xception41"), [(64, 64), (33, 45)]),
    "lcnet_050": ("lcnet_050", {}, _timm("lcnet_050"), [(64, 64), (33, 45)]),
    "fbnetc_100": ("fbnetc_100", {}, _timm("fbnetc_100"), [(64, 64), (33, 45)]),
    "gernet_s": ("gernet_s", {}, _timm("gernet_s"), [(64, 64), (33, 45)]),
    "resnetblur50": ("resnetblur50", {}, _timm("resnetblur50"), [(64, 64), (33, 45)]),
    "resnet26t": ("resnet26t", {}, _timm("resnet26t"), [(64, 64), (33, 45)]),
    "mobilenet_v3_small": ("mobilenet_v3_small", {}, _torchvision("mobilenet_v3_small"), [(64, 64), (33, 45)]),
}


def _redrawn(state: Any) -> Any:
    """Every float tensor drawn afresh (variances positive), keeping the state_dict's metadata."""
    g = torch.Generator().manual_seed(0)
    out = type(state)()
    out._metadata = getattr(state, "_metadata", None)  # torchvision's MNASNet reads its version
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            out[key] = torch.randn(value.shape, generator=g) * 0.1
        else:
            fan_in = max(1, value[0].numel()) if value.dim() > 1 else 1
            out[key] = torch.randn(value.shape, generator=g) / fan_in**0.5
    return out


def _as_dict(out: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(out, dict):
        return dict(out)
    if isinstance(out, list):  # timm's features_only: the maps in the order of the spec's outputs
        return dict(zip(names, out, strict=True))
    return {"logits": out}


# cases that build a large network (over 10 M parameters or over 50 blocks): CI's slow tier only
SLOW = {"tf_efficientnetv2_s", "cspdarknet53", "xception41", "resnetblur50", "resnet26t"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in sorted(CASES)])
def test_outside_network_equals_reference(case: str) -> None:
    stem, overrides, make_reference, sizes = CASES[case]
    reference = make_reference().eval()
    model = archspec.build(SPECS / f"{stem}.yaml", overrides=overrides).eval()
    names = list(overrides.get("outputs", []))
    state = _redrawn(reference.state_dict())
    reference.load_state_dict(state)
    model.load_state_dict(state, strict=True)
    torch.manual_seed(0)
    for size in sizes:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            want, got = _as_dict(reference(x), names), _as_dict(model(x), names)
        assert list(got) == list(want), (case, size)
        for name, value in want.items():
            assert got[name].shape == value.shape, (case, size, name)
            scale = value.abs().max().item()
            assert torch.allclose(got[name], value, rtol=0, atol=1e-5 * max(1.0, scale)), (case, size, name)
