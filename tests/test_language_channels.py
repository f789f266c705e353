"""Language features for ConvNeXt (issue 14): `layer_norm` over channels, `linear ... per_pixel`, the
`layer_scale` tensor and `in` (the input channels) in ${...}. Each built network is compared, in value
and gradients, with a functional reference written here from the model's own weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archspec
from tests.reference_macs import reference_macs
from tests.test_miscompilations import assert_same

HEADER = "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"

BLOCK_NET = """network:
  - stem: conv2d 8 2x2 s2
  - ln: layer_norm eps=1e-6
  - b:
      residual:
        body:
          chain:
            block:
              chain:
                "0": conv2d ${in} 3x3 p1 dw
                "2": layer_norm
                "3": linear ${in * 4} per_pixel
                "4": gelu
                "5": linear ${in // 4} per_pixel
            layer_scale: layer_scale 0.5
  - global_avgpool
  - head: layer_norm
  - fc: linear 5
"""


def _ln_channels(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the channels of each pixel, written out (mean and biased variance over C)."""
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w[None, :, None, None] + b[None, :, None, None]


def test_a_convnext_block_equals_its_functional_form() -> None:
    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, sd["stem.weight"], sd["stem.bias"], stride=2)
        y = _ln_channels(y, sd["ln.weight"], sd["ln.bias"], 1e-6)
        z = F.conv2d(y, sd["b.block.0.weight"], sd["b.block.0.bias"], padding=1, groups=8)
        z = _ln_channels(z, sd["b.block.2.weight"], sd["b.block.2.bias"], 1e-5)
        z = torch.einsum("oc,nchw->nohw", sd["b.block.3.weight"], z) + sd["b.block.3.bias"][None, :, None, None]
        z = F.gelu(z)
        z = torch.einsum("oc,nchw->nohw", sd["b.block.5.weight"], z) + sd["b.block.5.bias"][None, :, None, None]
        y = y + sd["b.layer_scale"] * z
        v = y.mean((2, 3))
        v = (v - v.mean(1, keepdim=True)) / torch.sqrt(v.var(1, unbiased=False, keepdim=True) + 1e-5)
        v = v * sd["head.weight"] + sd["head.bias"]
        return F.linear(v, sd["fc.weight"], sd["fc.bias"])

    assert_same(BLOCK_NET, reference)


def test_shapes_params_and_keys() -> None:
    report = archspec.check(HEADER + BLOCK_NET)
    c = 8
    assert report.params == (3 * 4 * c + c) + 2 * c + (9 * c + c) + 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c) + c + 2 * c + (
        c * 5 + 5
    )
    keys = set(archspec.build(HEADER + BLOCK_NET).state_dict())
    assert {"b.layer_scale", "b.block.3.weight", "b.block.5.bias", "head.weight"} <= keys
    assert not any(k.startswith("b.layer_scale.") for k in keys)  # a tensor, not a module
    sd = archspec.build(HEADER + BLOCK_NET).state_dict()
    assert sd["b.block.3.weight"].shape == (32, 8) and sd["b.layer_scale"].shape == (8, 1, 1)
    assert (sd["b.layer_scale"] == 0.5).all()


def test_macs_of_a_per_pixel_linear_are_counted_on_every_pixel() -> None:
    """archspec's count against hooks on an equivalent torch module (nn.Linear on a channels-last map)."""

    class Reference(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 2, stride=2)
            self.fc1 = torch.nn.Linear(8, 24)
            self.fc2 = torch.nn.Linear(24, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.fc1(self.conv(x).permute(0, 2, 3, 1)).mean((1, 2)))

    spec = HEADER + "network: [conv2d 8 2x2 s2, linear 24 per_pixel, global_avgpool, linear 10]\n"
    report = archspec.check(spec)
    assert report.macs == reference_macs(Reference(), torch.randn(1, 3, 16, 16))[1]
    assert report.macs == 8 * 3 * 4 * 64 + 8 * 24 * 64 + 24 * 10


def test_a_linear_on_a_map_without_per_pixel_is_a_located_error() -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + "network:\n  - conv2d 8 3x3\n  - linear 10\n")
    assert (e.value.line, e.value.code) == (6, "shape") and "per_pixel" in (e.value.hint or "")


def test_in_is_the_input_channels_of_each_node() -> None:
    spec = (
        HEADER
        + """blocks:
  mlp:
    params: {c: 8}
    chain: ["linear ${in * 4} per_pixel", gelu, linear $c per_pixel]
network:
  - conv2d 24 3x3
  - conv2d ${in * 2} 3x3 p1 groups=${in}
  - {op: conv2d, out: "${in // 2}", kernel: 1}
  - mlp c=${in}
  - mlp c=${in + 1} * 2
  - conv2d $in 1x1
"""
    )
    report = archspec.check(spec)
    assert [r.shape.channels for r in report.rows] == [24, 48, 24, 24, 25, 26, 26]
    wide = archspec.check(spec, overrides={"scale.width": 2})  # what comes from `in` is not scaled again
    assert [r.shape.channels for r in wide.rows] == [48, 96, 48, 48, 49, 50, 50]


def test_in_decides_structure_in_conditions() -> None:
    """`in` joins the conditions of `if:` and `A if COND else B` (a projection only where the channels
    change, as a block that is not told its input width decides), and block_index."""
    spec = (
        HEADER
        + """blocks:
  unit:
    params: {c: 8}
    chain:
      - if: ${in != c}
        then: {proj: conv2d $c 1x1}
      - conv2d ${in * 2 if block_index > 0 else in} 3x3 p1
network:
  - conv2d 8 3x3
  - unit c=8
  - unit c=12
"""
    )
    report = archspec.check(spec)
    keys = archspec.build(spec).state_dict()
    assert "2.proj.weight" in keys and "1.proj.weight" not in keys  # 8 → 8 needs none; 8 → 12 does
    assert keys["2.1.weight"].shape[:2] == (24, 12)  # the conv after the projection reads its 12 channels
    assert [r.shape.channels for r in report.rows] == [8, 8, 24]
    for bad in ("${e in 1}", "${e not in 2}"):  # Python's membership test is not `in`
        with pytest.raises(archspec.SpecError) as e:
            archspec.check(HEADER + f"network: ['conv2d {bad} 1x1']\n")
        assert e.value.code == "param" and "is not allowed" in e.value.message


def test_in_cannot_name_a_parameter_and_is_no_python() -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + "blocks:\n  b:\n    params: {in: 3}\n    op: conv2d 8 1x1\nnetwork: [b]\n")
    assert e.value.line == 6 and "'in' cannot name a parameter" in e.value.message
    for bad in ("${3 in x}", "${__archspec_in__}", "${in.real}"):
        with pytest.raises(archspec.SpecError) as e:
            archspec.check(HEADER + f"network: ['conv2d {bad} 1x1']\n")
        assert (e.value.line, e.value.code) == (4, "param")


def test_optimize_keeps_the_layer_scale_and_the_permutes() -> None:
    torch.manual_seed(0)
    model = archspec.build(HEADER + BLOCK_NET).eval()
    fast = archspec.optimize(model)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_layer_scale_at_the_top_level_of_a_network_with_aux_heads() -> None:
    """The aux model holds the root's own tensors too (found by the fuzzer: 'AuxModel' has no attribute '2')."""
    spec = HEADER + (
        "network: [conv2d 4 3x3, relu, layer_scale 0.5, global_avgpool]\naux:\n  a: {tap: '2', head: global_avgpool}\n"
    )
    model = archspec.build(spec)
    assert (model.state_dict()["2"] == 0.5).all()
    x = torch.randn(1, 3, 16, 16)
    model.train()
    out = model(x)
    assert set(out) == {"logits", "a"}
    torch.testing.assert_close(out["logits"], out["a"])
    out["logits"].sum().backward()
    assert model.get_parameter("2").grad is not None


@pytest.mark.parametrize(
    "net",
    [
        # a stateless op and a layer scale in the same numbered slot (an unnamed nested list restarts at 0)
        "blocks:\n  b:\n    chain: [tanh, [layer_scale 0.5]]\nnetwork: [{block: b}]\n",
        # block instances written as one class: the class makes its tensors, and the first op reads one
        "blocks:\n  b: {op: layer_scale 2 * 2}\nnetwork:\n  up: {block: b, repeat: 2}\n",
        # a block class ending in a per-pixel layer: its channels-first permute is the class's, not the caller's
        "blocks:\n  b:\n    chain: [layer_norm]\nnetwork: [b * 2]\n",
        BLOCK_NET,
    ],
)
def test_the_standalone_file_holds_and_reads_the_layer_scales(net: str) -> None:
    """Found by the fuzzer: codegen crashed on both first specs."""
    from archspec.api import analyze
    from archspec.codegen import generate

    graph = analyze(HEADER + net).graph
    env: dict[str, object] = {}
    exec(compile(generate(graph), "<generated>", "exec"), env)  # noqa: S102 - code generated from our own spec
    model = archspec.build(HEADER + net).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    standalone = env[type(model).__name__]().eval()  # type: ignore[operator]
    standalone.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(standalone(x), model(x), rtol=0, atol=0)
