"""The ops of TensorFlow-ported, BiT, CSP and segmentation networks, each against an independent layer:
`same` padding against timm's Conv2dSame (and its static padding), `std_conv2d` against timm's StdConv2d
and StdConv2dSame, `group_norm`, `leaky_relu`, `pad`, `upsample` and a dilated `maxpool` against
torch's own layers — outputs, and the shapes archspec states as formulas of H and W at many sizes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import archspec
from archspec.errors import SpecError

timm_layers = pytest.importorskip("timm.layers")


def _spec(network: str, channels: int = 4, size: int = 17) -> str:
    return f"archspec: 1\nname: t\ninput: {{channels: {channels}, size: [{size}, {size}]}}\nnetwork: [{network}]\n"


def _single(network: str, channels: int = 4) -> tuple[torch.nn.Module, archspec.Report]:
    spec = _spec(network, channels)
    return archspec.build(spec).eval(), archspec.check(spec)


def _out(report: archspec.Report, h: int, w: int) -> tuple[int, ...]:
    return (1, *report.outputs["logits"].at(h, w))


@settings(max_examples=15, deadline=None)
@given(
    k=st.integers(1, 5),
    s=st.integers(1, 3),
    d=st.integers(1, 2),
    h=st.integers(1, 23),
    w=st.integers(1, 23),
)
def test_same_padding_is_timm_s(k: int, s: int, d: int, h: int, w: int) -> None:
    """TensorFlow's SAME: ceil(X / stride) at every size, padded as timm pads (static where it can be)."""
    model, report = _single(f"conv2d 6 {k}x{k} s{s} d{d} same")
    reference = timm_layers.create_conv2d(4, 6, k, stride=s, dilation=d, padding="same", bias=True).eval()
    reference.load_state_dict(model.get_submodule("0").state_dict())
    assert type(model.get_submodule("0")).__name__ == type(reference).__name__  # Conv2dSame exactly where timm's is
    x = torch.randn(1, 4, h, w)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape == _out(report, h, w)
    assert ours.shape[2:] == (-(-h // s), -(-w // s))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("same", [False, True])
def test_std_conv2d_is_timm_s(same: bool) -> None:
    pad = "same" if same else "p1"
    model, report = _single(f"std_conv2d 8 3x3 s2 {pad} eps=1e-8 bias")
    layer = timm_layers.StdConv2dSame if same else timm_layers.StdConv2d
    reference = layer(4, 8, 3, stride=2, padding="SAME" if same else 1, bias=True, eps=1e-8).eval()
    with torch.no_grad():
        reference.weight.normal_()
        reference.bias.normal_()
    model.get_submodule("0").load_state_dict(reference.state_dict())
    for h, w in ((17, 17), (16, 9), (2, 3)):
        x = torch.randn(2, 4, h, w)
        with torch.no_grad():
            ours, theirs = model(x), reference(x)
        assert ours.shape == theirs.shape and ours.shape[1:] == _out(report, h, w)[1:]
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert report.macs == 8 * 4 * 9 * 9 * 9  # 8 filters of 4·3·3 at 9×9: the standardisation counts none
    assert report.params == 8 * 4 * 9 + 8


def test_group_norm_and_leaky_relu_are_torch_s() -> None:
    model, report = _single("group_norm 2 eps=1e-3, leaky_relu 0.2, conv 6 3x3 p1 act=leaky_relu")
    reference = torch.nn.Sequential(
        torch.nn.GroupNorm(2, 4, eps=1e-3),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(4, 6, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(6),
        torch.nn.LeakyReLU(0.01),
    ).eval()
    with torch.no_grad():
        reference[0].weight.uniform_(0.5, 1.5)
        reference[0].bias.normal_()
    keys = dict(zip(reference.state_dict(), model.state_dict(), strict=True))
    model.load_state_dict({keys[k]: v for k, v in reference.state_dict().items()})
    x = torch.randn(2, 4, 7, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=1e-6)
    assert report.params == 2 * 4 + 6 * 4 * 9 + 2 * 6


def test_group_norm_groups_must_divide_the_channels() -> None:
    with pytest.raises(SpecError, match=r"group_norm 3 needs channels divisible by 3, got 4") as e:
        archspec.check(_spec("group_norm 3"))
    assert e.value.code == "shape" and e.value.loc.line == 4


@pytest.mark.parametrize(
    ("op", "layer"),
    [
        ("upsample 2", torch.nn.Upsample(scale_factor=2.0, mode="nearest")),
        ("upsample 3 bilinear", torch.nn.Upsample(scale_factor=3.0, mode="bilinear")),
        ("upsample 2 bilinear align_corners", torch.nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=True)),
        ("upsample 1.5", torch.nn.Upsample(scale_factor=1.5, mode="nearest")),
        ("upsample 0.5 bilinear", torch.nn.Upsample(scale_factor=0.5, mode="bilinear")),
        ("upsample 9x4 bilinear", torch.nn.Upsample(size=(9, 4), mode="bilinear")),
        ("pad 2 value=-1", torch.nn.ConstantPad2d(2, -1.0)),
        ("{op: pad, padding: [0, 1, 2, 3]}", torch.nn.ConstantPad2d((0, 1, 2, 3), 0.0)),
        ("maxpool 3x3 s2 p1 d2", torch.nn.MaxPool2d(3, 2, 1, dilation=2)),
        ("maxpool 2x3 d3,1 ceil", torch.nn.MaxPool2d((2, 3), 1, dilation=(3, 1), ceil_mode=True)),
    ],
)
def test_resizing_ops_are_torch_s(op: str, layer: torch.nn.Module) -> None:
    """Outputs equal torch's layer, and the stated shape formula holds at every size from the minimum."""
    spec = _spec(op if op.startswith("{") else f"'{op}'")
    model, report = archspec.build(spec).eval(), archspec.check(spec)
    lo_h, lo_w = report.min_input_size
    for h in range(lo_h, 30):
        w = max(lo_w, 31 - h)
        x = torch.randn(1, 4, h, w)
        with torch.no_grad():
            ours, theirs = model(x), layer(x)
        assert ours.shape == theirs.shape == _out(report, h, w), (op, h, w)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    if lo_h > 1:  # one pixel less is refused by the guard (torch would fail or give an empty map)
        with pytest.raises(ValueError, match="expected input"):
            model(torch.randn(1, 4, lo_h - 1, lo_w))


def test_upsample_size_formulas() -> None:
    report = archspec.check(_spec("conv2d 4 3x3 s2, upsample 2, conv2d 4 3x3, upsample 1.5"))
    assert report.outputs["logits"].formula() == "4×floor((2·floor((H - 1)/2) - 2)·1.5)×floor((2·floor((W - 1)/2) - 2)·1.5)"
    assert report.min_input_size == (5, 5)  # 2·floor(4/2) = 4 ≥ 3 at H = 5; at H = 4, 2·1 < 3


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ("upsample", "give exactly one of scale"),
        ("upsample 2 4x4", "give exactly one of scale"),
        ("upsample 2 align_corners", "align_corners applies to bilinear"),
        ("upsample 0", "greater than 0"),
    ],
)
def test_upsample_refuses_bad_arguments(op: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as e:
        archspec.check(_spec(f"'{op}'"))
    assert e.value.code == "bad-op-args"


def test_same_padding_in_the_standalone_file() -> None:
    """The generated file carries the runtime layers it uses and computes what the compiled model does."""
    from archspec.api import analyze
    from archspec.codegen import generate

    spec = _spec("conv 8 3x3 s2 same, std_conv2d 8 4x4 same, conv2d 8 3x3 same, global_avgpool")
    model = archspec.build(spec).eval()
    source = generate(analyze(spec).graph)
    assert "class Conv2dSame(nn.Conv2d)" in source and "class StdConv2d(nn.Conv2d)" in source
    assert source.count("def pad_same(") == 1  # their one helper, copied once
    scope: dict[str, object] = {}
    exec(compile(source, "<generated>", "exec"), scope)  # noqa: S102 - the file archspec just wrote
    cls = scope["T"]
    generated = cls().eval()  # type: ignore[operator]
    generated.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 11, 6)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), model(x), rtol=0, atol=0)


def test_std_conv2d_of_one_weight_filters_has_a_zero_gradient() -> None:
    # a filter of one weight standardises to (w - w) / sqrt(0 + eps) = 0 whatever w: the output is 0 (no bias)
    # and the weight's gradient is 0 (found by the differential tester, seed 2001596: none, expected one)
    spec = "archspec: 1\nname: t\ninput: {channels: 1, size: [5, 5]}\nnetwork: {right: std_conv2d out=3}\n"
    model = archspec.build(spec).train()
    x = torch.randn(2, 1, 5, 5)
    y = model(x)
    assert model.right.bias is None and torch.equal(y, torch.zeros(2, 3, 5, 5))
    y.sum().backward()
    assert model.right.weight.grad is not None
    assert torch.equal(model.right.weight.grad, torch.zeros(3, 1, 1, 1))
