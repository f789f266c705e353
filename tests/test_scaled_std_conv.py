"""Scaled weight standardisation (`std_conv2d … gain [gamma=G]`) and the constant `scale C` (docs/language.md,
"Padding `same`, weight standardisation …"). Truth: timm's ScaledStdConv2d and ScaledStdConv2dSame with the
same weights; torch's product with a number; timm's nf_resnet50 (tests/specs_outside/nf_resnet50.yaml,
written from the docs) with every tensor of its state_dict redrawn: strict load, equal logits at two sizes,
built, optimized (the standardisation computed once, the gain in it) and as a standalone file."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402
from tests.test_ops_attention import same_as_reference  # noqa: E402
from tests.test_outside_networks import _redrawn  # noqa: E402

NF_RESNET50 = Path(__file__).resolve().parent / "specs_outside" / "nf_resnet50.yaml"


def _one(op: str, channels: int = 6, size: tuple[int, int] = (11, 9)) -> str:
    return f"archspec: 1\nname: one\ninput: {{channels: {channels}, size: [{size[0]}, {size[1]}]}}\nnetwork:\n  - c: {op}\n"


@pytest.mark.parametrize(
    "op, timm_args",
    [
        (
            "std_conv2d 8 3x3 p1 gain gamma=1.7139588594436646 eps=1e-5 bias",
            dict(kernel_size=3, gamma=1.7139588594436646, eps=1e-5),
        ),
        ("std_conv2d 8 1x1 gain", dict(kernel_size=1, bias=False)),
        ("std_conv2d 6 3x3 s2 p1 dw gain gamma=2.0 bias", dict(kernel_size=3, stride=2, groups=6, gamma=2.0)),
        ("std_conv2d 8 5x5 s2 same gain gamma=0.5 bias", dict(kernel_size=5, stride=2, gamma=0.5, same=True)),
    ],
)
def test_std_conv2d_with_gain_equals_timm_scaled_std_conv2d(op: str, timm_args: dict) -> None:
    from timm.layers.std_conv import ScaledStdConv2d, ScaledStdConv2dSame

    same = timm_args.pop("same", False)
    out = 6 if timm_args.get("groups") == 6 else 8
    reference = (ScaledStdConv2dSame if same else ScaledStdConv2d)(6, out, **timm_args).eval()
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) for k, v in reference.state_dict().items()}  # the gain too
    reference.load_state_dict(state)
    model = archspec.build(_one(op)).eval()
    model.load_state_dict({f"c.{k}": v for k, v in state.items()}, strict=True)
    fast = archspec.optimize(model)  # the standardised, gained weights computed once
    for size in ((11, 9), (4, 7)):
        x = torch.randn(2, 6, *size)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x))
            torch.testing.assert_close(fast(x), reference(x), rtol=1e-4, atol=1e-4)


def test_the_gain_starts_at_one_and_counts_as_parameters() -> None:
    model = archspec.build(_one("std_conv2d 8 3x3 gain"))
    assert torch.equal(model.state_dict()["c.gain"], torch.ones(8, 1, 1, 1))
    assert archspec.check(_one("std_conv2d 8 3x3 gain")).params == 8 * 6 * 9 + 8  # weight and gain, no bias


def test_gamma_without_gain_is_refused_with_a_hint() -> None:
    with pytest.raises(SpecError) as e:
        archspec.check(_one("std_conv2d 8 3x3 gamma=2"))
    assert e.value.code == "bad-op-args" and "write the flag gain too" in str(e.value)


def test_scale_multiplies_by_a_constant_on_maps_and_vectors() -> None:
    spec = "archspec: 1\nname: s\ninput: {channels: 3, size: [5, 4]}\nnetwork: [scale -0.5, global_avgpool, scale 3]\n"
    model = archspec.build(spec).eval()
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(model(x), (x * -0.5).mean((2, 3)) * 3)
    assert archspec.check(spec).params == 0 and archspec.check(spec).macs == 0


def _nf_resnet50() -> torch.nn.Module:
    timm = pytest.importorskip("timm")
    reference = timm.create_model("nf_resnet50", pretrained=False).eval()
    reference.load_state_dict(_redrawn(reference.state_dict()))  # every tensor redrawn, the gains too
    return reference


@pytest.mark.slow
def test_nf_resnet50_equals_timm_built_optimized_and_standalone(tmp_path: Path) -> None:
    reference = _nf_resnet50()
    model = same_as_reference(NF_RESNET50, reference, [(64, 64), (33, 45)], tmp_path, "NfResnet50")
    assert archspec.check(NF_RESNET50).params == sum(p.numel() for p in model.parameters())


class _Scaled(torch.nn.Module):
    def __init__(self) -> None:
        from timm.layers.std_conv import ScaledStdConv2d, ScaledStdConv2dSame

        super().__init__()
        self.a = ScaledStdConv2d(3, 8, 3, gamma=1.7139588594436646, eps=1e-5)
        self.b = ScaledStdConv2d(8, 8, 1, bias=False)
        self.c = ScaledStdConv2dSame(8, 8, 3, stride=2, gamma=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(self.a(x))))


def test_archspec_import_reads_timm_scaled_std_convs() -> None:
    pytest.importorskip("timm")
    from archspec.importer import import_module

    reference = _Scaled().eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.randn_like(p))  # the gains too
    text = import_module(reference, input_size=16)
    assert "a: std_conv2d 8 3x3 same bias eps=1e-05 gain gamma=1.71395885944366" in text
    model = archspec.build(text).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 17, 15)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
