"""The optimize passes for the zoo's other families (issue 28 §1): leaky ReLU as a conv post-op
(CSPResNet), FrozenBatchNorm folded into its conv (ResNet-50-FPN), weight-standardised convs turned
into plain ones on their standardised weights (BiT's ResNetV2). Each changes the graph as it says and
keeps the outputs of the eager model it was made from (small specs, trained-like norm terms); under
``slow``, every zoo network these families come from, and the other networks with a reference that
tests/test_optimize_modern.py does not cover, optimized against torchvision's or timm's network with
the same weights, every output map compared."""

from __future__ import annotations

import copy
import pickle

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import archspec  # noqa: E402
from archspec.inference import optimize  # noqa: E402
from archspec.passes import fold_bn, fuse_conv_act, remove_noops, shift_same_padding, standardize_convs  # noqa: E402
from archspec.passes.fuse_act import ConvAct, PostOp  # noqa: E402
from archspec.passes.same_pad import SameConvAct, SamePad  # noqa: E402
from archspec.runtime import Conv2dSame, FrozenBatchNorm2d, StdConv2d  # noqa: E402
from tests.references import (  # noqa: E402
    DENSE_REFERENCES,
    REFERENCES,
    SPECS,
    VARIANT_REFERENCES,
    perturb_bn,
    perturb_frozen_bn,
    perturb_group_norm,
)

LEAKY = """
archspec: 1
name: leaky
input: {channels: 3, size: [16, 16]}
network:
  a: [conv2d 8 3x3 p1, bn, leaky_relu]
  b: [conv2d 8 3x3 p1 dw, bn, leaky_relu 0.2]
  c: [conv2d 8 1x1, leaky_relu 0.0]
  pool: global_avgpool
  head: [linear 12, leaky_relu, linear 5]
"""

FROZEN = """
archspec: 1
name: frozen
input: {channels: 3, size: [16, 16]}
network:
  a: [conv2d 8 3x3 p1 no_bias, frozen_bn, relu]
  b: [conv2d 8 1x1, frozen_bn eps=1.0e-3]
  pool: global_avgpool
  fc: linear 5
"""

STD = """
archspec: 1
name: std
input: {channels: 3, size: [16, 16]}
network:
  a: [std_conv2d 16 3x3 p1, group_norm 4, relu]
  b: [std_conv2d 16 1x1 no_bias, group_norm 4, relu]
  c: [std_conv2d 16 3x3 s2 same, relu]
  pool: global_avgpool
  fc: linear 5
"""


def _model(write_spec, text: str) -> nn.Module:
    torch.manual_seed(0)
    model = archspec.build(write_spec(text)).eval()
    perturb_bn(model)
    perturb_frozen_bn(model)
    perturb_group_norm(model)
    return model


def _close(got: object, want: object, rtol: float = 1e-4) -> None:
    """Every output map within ``rtol`` of the eager model's, relative to its largest magnitude."""
    gots = list(got.values()) if isinstance(got, dict) else [got]
    wants = list(want.values()) if isinstance(want, dict) else [want]
    assert (list(got) if isinstance(got, dict) else None) == (list(want) if isinstance(want, dict) else None)
    assert len(gots) == len(wants)
    for a, b in zip(gots, wants, strict=True):
        assert a.shape == b.shape
        scale = b.abs().max().item()
        assert scale > 1e-3  # far from zero: the tolerance means something
        assert (a - b).abs().max().item() <= rtol * scale


def _run(model: nn.Module, x: torch.Tensor, *passes) -> torch.fx.GraphModule:
    gm = copy.deepcopy(model).eval()
    gm.requires_grad_(False)
    for p in passes:
        p(gm)
    with torch.no_grad():
        _close(gm(x), model(x))
    return gm


def test_leaky_relu_runs_as_a_conv_post_op(write_spec) -> None:
    model = _model(write_spec, LEAKY)
    gm = _run(model, torch.randn(2, 3, 16, 16), remove_noops, fold_bn, fuse_conv_act)
    convs = [m for m in gm.modules() if isinstance(m, nn.Conv2d)]
    assert all(isinstance(c, ConvAct) for c in convs)
    assert [(c.post_op.name, c.post_op.scalars) for c in convs] == [
        ("leaky_relu", (0.01,)),
        ("leaky_relu", (0.2,)),
        ("leaky_relu", (0.0,)),
    ]
    # the linear's stays a call: oneDNN's matmul post-ops are not tested here for it
    leaky = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in (F.leaky_relu, F.leaky_relu_)]
    assert len(leaky) == 1


def test_leaky_relu_post_op_falls_back_to_public_torch(write_spec, monkeypatch) -> None:
    """With oneDNN off, the fused conv computes the same with public torch; the model still pickles."""
    from archspec.passes import onednn

    model = _model(write_spec, LEAKY)
    gm = pickle.loads(pickle.dumps(optimize(model)))
    monkeypatch.setattr(onednn, "_SUPPORTED", frozenset())
    monkeypatch.setattr(onednn, "conv_pointwise", None)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        _close(gm(x), model(x))


def test_frozen_batchnorm_folds_into_its_conv(write_spec) -> None:
    model = _model(write_spec, FROZEN)
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == 2
    gm = _run(model, torch.randn(2, 3, 16, 16), fold_bn)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in gm.modules())
    assert gm.get_submodule("a.0").bias is not None  # the conv without a bias gets the folded shift


def test_std_convs_become_plain_convs_on_standardised_weights(write_spec) -> None:
    model = _model(write_spec, STD)
    gm = _run(model, torch.randn(2, 3, 16, 16), standardize_convs)
    kinds = [type(m) for m in gm.modules() if isinstance(m, nn.Conv2d)]
    assert kinds == [nn.Conv2d] * 3 and StdConv2d not in kinds  # the `same`-padded one with its padding before it
    assert sum(isinstance(m, SamePad) for m in gm.modules()) == 1
    # on its own the rewrite changes no bit: the same weights, computed by the same formula
    for size in (16, 15):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            assert torch.equal(gm(x), model(x))
    fused = optimize(model)
    assert sum(isinstance(m, ConvAct) for m in fused.modules()) == 3
    with torch.no_grad():
        _close(fused(x), model(x))


SAME = """
archspec: 1
name: same
input: {channels: 3, size: [16, 16]}
network:
  stem: [conv2d 8 3x3 s2 same no_bias, bn, silu]
  dw: [conv2d 8 5x5 s2 same dw no_bias, bn, silu]
  even: [conv2d 8 2x2 same, relu]
  pool: global_avgpool
  fc: linear 5
"""


def test_same_padded_convs_are_their_padding_then_a_fused_conv(write_spec) -> None:
    """TensorFlow's `same` at a stride (timm's Conv2dSame): a conv whose BatchNorm is folded and whose
    activation is a post-op; at a stride ≥ 2 its padding is inside the conv (a shifted kernel, no padded copy),
    at stride 1 with an even kernel pad_same stays a step; the same outputs at even, odd and mixed sizes."""
    model = _model(write_spec, SAME)
    assert sum(isinstance(m, Conv2dSame) for m in model.modules()) == 3
    gm = optimize(model)
    assert not any(isinstance(m, Conv2dSame | nn.BatchNorm2d) for m in gm.modules())
    assert [m.post_op.name for m in gm.modules() if isinstance(m, ConvAct)] == ["swish", "swish", "relu"]
    assert [type(m) for m in gm.modules() if isinstance(m, ConvAct)] == [SameConvAct, SameConvAct, ConvAct]
    assert sum(isinstance(m, SamePad) for m in gm.modules()) == 1
    unfused = optimize(model, fuse_act=False)  # the portable graph (exports): pad_same, then a plain conv
    assert sum(isinstance(m, SamePad) for m in unfused.modules()) == 3
    loaded = pickle.loads(pickle.dumps(gm))  # its graph traced again on load
    for size in ((16, 16), (15, 15), (9, 9), (16, 13), (2, 3)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            _close(gm(x), model(x))
            _close(loaded(x), model(x))
            _close(unfused(x), model(x))


@pytest.mark.parametrize(("k", "s", "groups"), [(3, 2, 1), (5, 2, 6), (4, 2, 6), (3, 3, 1), (7, 2, 6)])
def test_shifted_same_conv_is_timms_conv2d_same(k: int, s: int, groups: int) -> None:
    """The shifted kernel against timm's Conv2dSame (its own pad_same, then conv2d) with the same weights, at
    every size from 1 to 17 on each axis (even, odd, mixed): oneDNN's kernel and the public fallback (grad on)."""
    timm_layers = pytest.importorskip("timm.layers")
    torch.manual_seed(k * 10 + s)
    ref = timm_layers.Conv2dSame(6, 6, k, stride=s, groups=groups).eval()
    plain = nn.Conv2d(6, 6, k, stride=s, groups=groups)
    plain.load_state_dict(ref.state_dict())
    fused = ConvAct.from_conv(plain)
    fused.post_op = PostOp("none", lambda t: t)
    root, graph = nn.Module(), torch.fx.Graph()
    root.pad, root.conv = SamePad(plain.kernel_size, plain.stride, plain.dilation), fused
    graph.output(graph.call_module("conv", (graph.call_module("pad", (graph.placeholder("x"),)),)))
    gm = torch.fx.GraphModule(root, graph)
    assert shift_same_padding(gm).rewrites == 1
    (shifted,) = [m for m in gm.modules() if isinstance(m, SameConvAct)]
    for h in range(1, 18):
        for w in (h, 17 - h + 1):
            x = torch.randn(2, 6, h, w).to(memory_format=torch.channels_last)
            want = ref(x)
            with torch.no_grad():
                got = gm(x)
            assert got.shape == want.shape, (h, w)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(shifted(x), want, rtol=1e-5, atol=1e-5)  # autograd on: public conv2d


# Zoo networks with a reference that tests/test_optimize_modern.py does not cover: (spec, overrides, reference)
ZOO = {
    **{n: (n, None, REFERENCES[n]) for n in ("cspresnet50", "resnetv2_50x1_bit", "res2net50_26w_4s", "tf_efficientnet_b0")},
    **{n: (n, None, make) for n, make in DENSE_REFERENCES.items()},
    "efficientnet_b1": VARIANT_REFERENCES["efficientnet_b1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_optimized_zoo_network_matches_its_reference(name: str) -> None:
    """optimize on the zoo spec against the reference with the same weights: every map within 1e-4 relative."""
    pytest.importorskip("timm"), pytest.importorskip("torchvision")
    spec, overrides, make = ZOO[name]
    torch.manual_seed(0)
    model = archspec.build(SPECS / f"{spec}.yaml", overrides=overrides).eval()
    perturb_bn(model)
    perturb_frozen_bn(model)
    perturb_group_norm(model)
    ref = make().eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        _close(optimize(model)(x), ref(x))


GROUP_NORM = """
archspec: 1
name: gn
input: {channels: 4, size: [13, 13]}
network:
  a: [conv2d 16 3x3 p1, group_norm 4, relu]
  b: [channel_slice 2 14, group_norm g3]
  c: [conv2d 8 1x1, group_norm 1]
"""


@pytest.mark.parametrize("mean", [0.0, 40.0])
def test_group_norm_runs_on_the_channels_last_map(mean: float) -> None:
    """No copy to channels-first and back around a GroupNorm whose input is channels_last; exact (against
    float64) also where a group's mean dwarfs its spread, which torch's channels_last kernel gets wrong."""
    from archspec.passes.group_norm import ChannelsLastGroupNorm

    torch.manual_seed(0)
    model = archspec.build(GROUP_NORM).eval()
    perturb_group_norm(model)
    with torch.no_grad():
        for conv in ("a.0", "c.0"):
            model.get_submodule(conv).bias.fill_(mean)
        x = torch.randn(2, 4, 13, 13)
        want = copy.deepcopy(model).double()(x.double()).float()
        gm = optimize(model)
        got = gm(x)
    norms = [m for m in gm.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 3 and all(type(m) is ChannelsLastGroupNorm for m in norms)
    copies = [n for n in gm.graph.nodes if n.op == "call_method" and n.target == "contiguous"]
    assert not copies
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert (got - want).abs().max() <= 1e-4 * (1 + want.abs().max())


def test_group_norm_keeps_the_channels_last_kernel_only_where_it_is_exact() -> None:
    """Groups with (mean/σ)² ≤ SAFE_RATIO: torch's channels_last kernel, bit for bit; a larger one anywhere:
    the whole call on a channels-first copy, bit for bit torch's channels-first result."""
    from archspec.passes.group_norm import SAFE_RATIO, ChannelsLastGroupNorm

    torch.manual_seed(0)
    norm = nn.GroupNorm(4, 16).eval()
    perturb_group_norm(norm)
    fast = ChannelsLastGroupNorm.__new__(ChannelsLastGroupNorm)
    fast.__dict__.update(norm.__dict__)
    x = torch.randn(2, 16, 9, 9).contiguous(memory_format=torch.channels_last)
    bumped = x.clone()
    bumped[1, 4:8] += 3 * SAFE_RATIO**0.5  # one group of one sample: (mean/σ)² ≈ 9 · SAFE_RATIO
    with torch.no_grad():
        assert torch.equal(fast(x), norm(x))  # torch's channels_last kernel
        got = fast(bumped)
        assert torch.equal(got, norm(bumped.contiguous()))  # the channels-first kernel
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert not torch.equal(norm(bumped.contiguous()), norm(bumped))  # (the two kernels do differ there)


RES2 = """
archspec: 1
name: res2
input: {channels: 3, size: [12, 12]}
blocks:
  scales:
    params: {first: false}
    residual:
      body:
        - conv1: conv2d 24 1x1
        - bn1: bn
        - act1: relu
        - concat:
            - - s1: channel_slice 0 6
              - k1: conv2d 6 3x3 p1
              - y1: relu
            - - if: $first
                then: {s2: channel_slice 6 12}
                else: {residual: {shortcut: {from: y1}, body: {s2: channel_slice 6 12}}}
              - k2: conv2d 6 3x3 p1
              - y2: relu
            - - if: $first
                then: {s3: channel_slice 12 18}
                else: {residual: {shortcut: {from: y2}, body: {s3: channel_slice 12 18}}}
              - k3: conv2d 6 3x3 p1
              - y3: relu
            - - s4: channel_slice 18 24
              - if: $first
                then: {pool: avgpool 3x3 s1 p1}
        - conv3: conv2d 16 1x1
        - bn3: bn
      shortcut:
        if: $first
        then: {downsample: {chain: {"0": conv2d 16 1x1, "1": bn}}}
      then: relu
network:
  stem: [conv2d 16 3x3 p1, bn, relu]
  a: scales first=true
  b: scales
  c: scales
  pool: global_avgpool
  fc: linear 5
"""


def test_a_concat_of_a_maps_own_channels_is_written_into_that_map(write_spec) -> None:
    """Res2Net's cat(f₀, f₁, f₂, s[3]): the three results written over s's first groups, no concat left;
    the first block's concat (its last group pooled) stays."""
    from archspec.passes.concat_in_place import write_channels

    model = _model(write_spec, RES2)
    x = torch.randn(2, 3, 12, 12)
    for layout in (True, False):
        gm = optimize(model, channels_last=layout)
        called = [n.target for n in gm.graph.nodes if n.op == "call_function"]
        assert called.count(write_channels) == 2 and called.count(torch.cat) == 1
        with torch.no_grad():
            _close(gm(x), model(x))
        with torch.no_grad():  # twice: the map written into is a fresh one each call; and after a pickle
            _close(gm(x), model(x))
            _close(pickle.loads(pickle.dumps(gm))(x), model(x))


class _Split(nn.Module):
    """cat(k(s[:4]), s[4:]) with ``s[:4]`` also read by another conv, before the concat or after it."""

    def __init__(self, late: bool) -> None:
        super().__init__()
        self.late = late
        self.conv, self.k, self.other = nn.Conv2d(3, 8, 1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.conv(x)
        a, b = torch.narrow(s, 1, 0, 4), torch.narrow(s, 1, 4, 4)
        if not self.late:
            z = self.other(a)
        y = torch.cat([self.k(a), b], dim=1)
        if self.late:
            z = self.other(a)
        return y, z


@pytest.mark.parametrize("late", [False, True])
def test_a_group_read_after_the_concat_is_not_written_over(late: bool) -> None:
    from archspec.passes.concat_in_place import concat_in_place

    torch.manual_seed(0)
    model = _Split(late).eval()
    gm = torch.fx.symbolic_trace(model)
    assert concat_in_place(gm).rewrites == (0 if late else 1)
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        for got, want in zip(gm(x), model(x), strict=True):
            assert torch.equal(got, want)


@pytest.mark.parametrize("batch", [1, 8])
def test_a_pointwise_conv_on_a_one_pixel_map_is_a_matrix_product(batch: int, monkeypatch) -> None:
    """An SE gate's 1×1 convs after its pool: ``x @ Wᵀ + b`` and the activation, the conv's values; a second
    call on the same shape runs the same product without the general checks."""
    from archspec.passes import onednn

    torch.manual_seed(0)
    conv = nn.Conv2d(40, 10, 1).eval()
    fused = ConvAct.from_conv(conv)
    fused.post_op = PostOp("swish", F.silu)
    x = torch.randn(batch, 40, 1, 1).contiguous(memory_format=torch.channels_last)
    calls = []
    linear = F.linear

    def spy(*args: torch.Tensor) -> torch.Tensor:
        calls.append(args[0].shape)
        return linear(*args)

    monkeypatch.setattr(F, "linear", spy)
    with torch.no_grad():
        got, want = fused(x), F.silu(conv(x))
    assert calls == [(batch, 40)] and onednn.one_pixel(x)
    assert got.shape == want.shape == (batch, 10, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        again = fused(x)
    torch.testing.assert_close(again, want, rtol=1e-5, atol=1e-6)
    assert calls == [(batch, 40)] * 2 and (fused._repeat is not None) == bool(onednn.mkldnn_dtypes())
