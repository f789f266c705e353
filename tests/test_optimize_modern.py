"""The optimize passes for the modern networks (issue 28): each changes the graph as it says and keeps
the logits of the eager model it was made from (small specs, trained-like BatchNorm and LayerNorm);
the zoo networks against their torchvision/timm references under ``slow``."""

from __future__ import annotations

import copy
import operator
import shutil

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import archspec  # noqa: E402
from archspec.inference import PASSES, optimize  # noqa: E402
from archspec.passes import (  # noqa: E402
    dense_concat,
    fold_bn,
    fold_preact,
    fuse_conv_act,
    fuse_gate,
    fuse_linear,
    fuse_shuffle,
    remove_noops,
)
from archspec.passes.fold_preact import ChannelClamp  # noqa: E402
from archspec.passes.fuse_act import ConvAct  # noqa: E402
from archspec.passes.fuse_linear import LinearAct, LinearAdd  # noqa: E402
from archspec.passes.fuse_shuffle import interleave  # noqa: E402
from tests.references import REFERENCES, SPECS, perturb_bn, perturb_layer_norm  # noqa: E402

ACTS = """
archspec: 1
name: acts
input: {channels: 3, size: [16, 16]}
network:
  a: [conv2d 8 3x3 p1, bn, hardswish]
  b: [conv2d 8 3x3 p1 dw, bn, silu]
  c: [conv2d 8 1x1, gelu]
  d: [conv2d 8 1x1, relu6]
  e: [conv2d 8 1x1, hardsigmoid]
  f: [conv2d 8 1x1, sigmoid]
  g: [conv2d 8 1x1, bn]
  pool: global_avgpool
  head: [linear 12, hardswish, linear 5]
"""

CONVNEXT = """
archspec: 1
name: tiny_convnext
input: {channels: 3, size: [16, 16]}
defaults:
  layer_norm: {eps: 1.0e-6}
blocks:
  cn_block:
    residual:
      body:
        chain:
          block:
            chain:
              "0": conv2d ${in} 7x7 p3 dw
              "2": layer_norm
              "3": linear ${in * 4} per_pixel
              "4": gelu
              "5": linear ${in // 4} per_pixel
          layer_scale: layer_scale 1e-6
          stochastic_depth: drop_path 0.1
network:
  features:
    - "0": [conv2d 8 4x4 s4, layer_norm]
    - "1": cn_block * 2
    - "2": [layer_norm, conv2d 16 2x2 s2]
    - "3": cn_block
  avgpool: adaptive_avgpool 1x1
  classifier: [layer_norm, flatten, linear 10]
"""

SE_RESNET = """
archspec: 1
name: tiny_se_resnet
input: {channels: 3, size: [16, 16]}
blocks:
  se:
    gate: [adaptive_avgpool 1x1, fc1: conv2d 4 1x1, relu, fc2: conv2d 16 1x1, sigmoid]
  se_block:
    residual:
      body:
        - conv1: conv2d 16 3x3 p1 no_bias
        - bn1: bn
        - relu
        - conv2: conv2d 16 1x1 no_bias
        - bn2: bn
        - se: se
      then: relu
network:
  stem: [conv2d 16 3x3 p1, bn, relu]
  blocks: se_block * 2
  pool: global_avgpool
  fc: linear 10
"""

SHUFFLE = """
archspec: 1
name: tiny_shufflenet
input: {channels: 3, size: [16, 16]}
blocks:
  down:
    params: {inp: 8, c: 6}
    chain:
      - concat:
          branch1: [conv2d $inp 3x3 s2 p1 dw no_bias, bn, conv2d $c 1x1 no_bias, bn, relu]
          branch2: [conv2d $c 1x1 no_bias, bn, relu, conv2d $c 3x3 s2 p1 dw no_bias, bn, conv2d $c 1x1 no_bias, bn, relu]
      - channel_shuffle 2
  unit:
    params: {c: 6}
    chain:
      - concat:
          - channel_slice 0 $c
          - - channel_slice $c ${2 * c}
            - branch2: [conv2d $c 1x1 no_bias, bn, relu, conv2d $c 3x3 p1 dw no_bias, bn, conv2d $c 1x1 no_bias, bn, relu]
      - channel_shuffle 2
network:
  stem: [conv2d 8 3x3 p1 no_bias, bn, relu]
  stage2: [down inp=8 c=6, unit c=6 * 2]
  stage3: [down inp=12 c=10, unit c=10]
  pool: global_avgpool
  fc: linear 10
"""

DENSE = """
archspec: 1
name: tiny_densenet
input: {channels: 3, size: [16, 16]}
blocks:
  dense_layer:
    concat:
      - identity
      - [bn, relu, conv2d 8 1x1 no_bias, bn, relu, conv2d 4 3x3 p1 no_bias]
network:
  stem: [conv2d 8 3x3 p1 no_bias, bn, relu]
  block1: dense_layer * 3
  transition: [bn, relu, conv2d 10 1x1 no_bias, avgpool 2x2 s2]
  block2: dense_layer * 2
  norm: bn
  relu: relu
  pool: global_avgpool
  fc: linear 10
"""


def _model(write_spec, text: str) -> nn.Module:
    torch.manual_seed(0)
    model = archspec.build(write_spec(text)).eval()
    perturb_bn(model)
    perturb_layer_norm(model)
    return model


def _run(model: nn.Module, *passes) -> torch.fx.GraphModule:
    """A copy of the model after remove_noops and fold_bn (the state later passes see) and the given passes."""
    gm = copy.deepcopy(model).eval()
    gm.requires_grad_(False)
    remove_noops(gm)
    fold_bn(gm)
    for p in passes:
        p(gm)
    return gm


def _close(gm: nn.Module, model: nn.Module, x: torch.Tensor, rtol: float = 1e-4) -> None:
    """Logits within ``rtol`` of the eager model's, relative to their largest magnitude."""
    with torch.no_grad():
        got, want = gm(x), model(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= rtol * want.abs().max().item()


def _targets(gm: torch.fx.GraphModule, op: str) -> list[object]:
    return [n.target for n in gm.graph.nodes if n.op == op]


def test_every_activation_runs_as_a_post_op(write_spec) -> None:
    model = _model(write_spec, ACTS)
    gm = _run(model, fuse_conv_act, fuse_linear)
    convs = [m for m in gm.modules() if isinstance(m, nn.Conv2d)]
    assert all(isinstance(c, ConvAct) for c in convs)
    assert [c.post_op.name for c in convs] == ["hardswish", "swish", "gelu", "hardtanh", "hardsigmoid", "sigmoid", "none"]
    assert [m.post_op.name for m in gm.modules() if isinstance(m, LinearAct)] == ["hardswish"]
    called = _targets(gm, "call_function")
    assert not {F.hardswish, F.silu, F.gelu, F.relu6, F.hardsigmoid, torch.sigmoid} & set(called)
    _close(gm, model, torch.randn(2, 3, 16, 16))


def test_post_ops_fall_back_to_public_torch(write_spec, monkeypatch) -> None:
    """With oneDNN off, every fused layer computes the same with public torch."""
    from archspec.passes import onednn

    model = _model(write_spec, ACTS)
    gm = optimize(model)
    monkeypatch.setattr(onednn, "_SUPPORTED", frozenset())
    monkeypatch.setattr(onednn, "conv_pointwise", None)
    monkeypatch.setattr(onednn, "linear_pointwise", None)
    _close(gm, model, torch.randn(2, 3, 16, 16))


def test_convnext_block_is_two_fused_matmuls(write_spec) -> None:
    model = _model(write_spec, CONVNEXT)
    gm = _run(model, fuse_conv_act, fuse_linear)
    # per block: linear+GELU and linear+scale+sum; the classifier's linear stays plain
    assert sum(isinstance(m, LinearAct) for m in gm.modules()) == 3
    assert sum(isinstance(m, LinearAdd) for m in gm.modules()) == 3
    assert F.gelu not in _targets(gm, "call_function")
    assert not _targets(gm, "get_attr")  # the layer scales went into the weights
    assert torch.add not in _targets(gm, "call_function")
    _close(gm, model, torch.randn(2, 3, 16, 16))
    _close(gm, model, torch.randn(1, 3, 32, 24))


def test_a_per_pixel_linear_added_with_broadcast_is_not_fused_into_one_sum(write_spec) -> None:
    """A residual whose per-pixel linear gives one channel added to a two-channel shortcut (broadcast over the
    channels: the fuzzer's seed 63202900, under scale.width 0.5): the sum stays torch's, and the logits
    equal the eager model's at batch 1 and 2 (before, oneDNN's fused sum read the shortcut as the
    product's shape and raised)."""
    spec = write_spec(
        "archspec: 1\nname: t\ninput: {channels: 2, size: [32, 23]}\n"
        "network:\n- residual: {body: [linear 1 per_pixel]}\n- global_maxpool\n- linear out=6\n"
    )
    model = archspec.build(spec).eval()
    gm = archspec.optimize(model)
    _close(gm, model, torch.randn(1, 2, 32, 23))
    _close(gm, model, torch.randn(2, 2, 32, 23))


def test_channels_last_drops_the_copies_back_to_channels_first(write_spec) -> None:
    model = _model(write_spec, CONVNEXT)
    # compile leaves per-pixel layers' results channels-last already (as torchvision's ConvNeXt): no copy to drop
    assert "contiguous" not in _targets(archspec.optimize(model, channels_last=False), "call_method")
    opt = optimize(model)
    assert "contiguous" not in _targets(opt, "call_method")
    x = torch.randn(2, 3, 16, 16)
    _close(opt, model, x)


def test_se_gate_and_sum_are_one_addcmul(write_spec) -> None:
    model = _model(write_spec, SE_RESNET)
    gm = _run(model, fuse_gate)
    called = _targets(gm, "call_function")
    assert called.count(torch.addcmul) == 2
    assert torch.mul not in called and "add_" not in _targets(gm, "call_method")
    _close(gm, model, torch.randn(2, 3, 16, 16))


MBCONV = """
archspec: 1
name: tiny_mbconv
input: {channels: 3, size: [32, 32]}
blocks:
  se:
    gate: [adaptive_avgpool 1x1, fc1: conv2d 4 1x1, silu, fc2: conv2d 24 1x1, sigmoid]
  mb:
    chain:
      - expand: [conv2d 24 1x1 no_bias, bn, silu]
      - dw: [conv2d 24 3x3 p1 dw no_bias, bn, silu]
      - se: se
      - project: [conv2d 8 1x1 no_bias, bn]
network:
  stem: [conv2d 8 3x3 p1, bn, silu]
  blocks: mb * 2
  pool: global_avgpool
  fc: linear 10
"""


def test_se_gate_and_projection_are_one_batched_matmul(write_spec) -> None:
    """EfficientNet's ``project(x · gate)``: no product left, the projection a GatedConv; the same logits as
    the eager model where the map is large enough for the matrix product (32×32) and where it is not (3×3,
    the product and the fused conv), at batch 1 and 3, and channels-first (the fallback)."""
    from archspec.passes.gate_conv import GatedConv

    model = _model(write_spec, MBCONV)
    gm = optimize(model)
    assert sum(isinstance(m, GatedConv) for m in gm.modules()) == 2
    assert torch.mul not in _targets(gm, "call_function")
    for shape in ((1, 3, 32, 32), (3, 3, 32, 32), (3, 3, 3, 3)):
        _close(gm, model, torch.randn(*shape))
    _close(optimize(model, channels_last=False), model, torch.randn(3, 3, 32, 32))
    assert not any(isinstance(m, GatedConv) for m in optimize(model, fuse_act=False).modules())


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_interleave_is_shuffle_of_concat(layout) -> None:
    a, b = (torch.randn(2, 6, 5, 4).to(memory_format=layout) for _ in range(2))
    want = torch.channel_shuffle(torch.cat([a, b], 1), 2)
    assert torch.equal(interleave([a, b]), want)
    assert torch.equal(interleave([a, b], 0, 6), want[:, :6])
    assert torch.equal(interleave([a, b], 6, 6), want[:, 6:])
    assert torch.equal(interleave([a, b], 3, 5), want[:, 3:8])  # off the groups: the general path
    c = torch.randn(2, 4, 5, 4)
    assert torch.equal(interleave([a, c], 0, 10), torch.channel_shuffle(torch.cat([a, c], 1), 2))  # unequal parts
    d = torch.randn(2, 2, 5, 4)
    assert torch.equal(interleave([a, c, d]), torch.channel_shuffle(torch.cat([a, c, d], 1), 3))


def test_shuffle_units_copy_once(write_spec) -> None:
    model = _model(write_spec, SHUFFLE)
    gm = _run(model, fuse_shuffle)
    called = _targets(gm, "call_function")
    assert torch.cat not in called and torch.channel_shuffle not in called and torch.narrow not in called
    assert called.count(interleave) == 2 * 3 + 2  # both halves for each unit that follows; the whole map twice
    _close(gm, model, torch.randn(2, 3, 16, 16))
    _close(gm.to(memory_format=torch.channels_last), model, torch.randn(3, 3, 16, 16).to(memory_format=torch.channels_last))


def test_dense_block_writes_one_buffer(write_spec) -> None:
    from archspec.passes.dense_concat import dense_append, dense_start

    model = _model(write_spec, DENSE)
    gm = _run(model, dense_concat)
    called = _targets(gm, "call_function")
    assert torch.cat not in called
    assert called.count(dense_start) == 2 and called.count(dense_append) == 2 + 1
    _close(gm, model, torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize("gammas", ["positive", "mixed"])
def test_preactivation_batchnorm_goes_into_the_conv(write_spec, gammas) -> None:
    model = _model(write_spec, DENSE)
    if gammas == "mixed":  # negative and zero scales take the two-sided clamp and the constant
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight[::3] *= -1
                    m.weight[1::5] = 0
    gm = _run(model, fold_preact)
    clamps = [m for m in gm.modules() if isinstance(m, ChannelClamp)]
    assert len(clamps) == 5 + 1  # every dense layer's norm1 and the transition's norm; not the last norm
    assert all((c.high is None) == (gammas == "positive") for c in clamps)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in gm.modules()) == 1
    x = torch.randn(2, 3, 16, 16)
    _close(gm, model, x)
    _close(optimize(model), model, x)
    _close(optimize(model).to(memory_format=torch.contiguous_format), model, x)


def test_skip_switches_passes_off_by_name(write_spec) -> None:
    model = _model(write_spec, DENSE)
    names = [r.name for r in optimize(model, skip=("dense_concat", "fold_preact")).archspec_passes]
    assert "dense_concat" not in names and "fold_preact" not in names and names[-1] == "to_layout"
    assert [r.name for r in optimize(model).archspec_passes] == list(PASSES)
    with pytest.raises(ValueError, match="no pass named fuse_everything"):
        optimize(model, skip=("fuse_everything",))


def test_optimized_model_copies(write_spec) -> None:
    """The fused layers keep their post-ops (module-level functions) through a deep copy."""
    model = _model(write_spec, ACTS)
    opt = optimize(model)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        opt(x)
    _close(copy.deepcopy(opt), model, x)


MODERN = [
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "shufflenet_v2_x1_0",
    "seresnet50",
    "densenet121",
    "resnext50_32x4d",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODERN)
def test_optimized_zoo_network_matches_its_reference(name: str) -> None:
    """optimize on the zoo spec against torchvision's / timm's network with the same weights: 1e-4 relative."""
    pytest.importorskip("timm"), pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = archspec.build(SPECS / f"{name}.yaml").eval()
    perturb_bn(model)
    perturb_layer_norm(model)
    ref = REFERENCES[name]().eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    _close(optimize(model), ref, x)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [SE_RESNET, ACTS], ids=["se_resnet", "acts_and_linear_head"])
def test_compile_true_composes_with_inductor(write_spec, spec: str) -> None:
    """optimize(compile=True): torch.compile of the optimized graph, compiled at once and timed. ACTS has a
    linear + hardswish head, which inductor could not lower while fuse_linear ran before it (oneDNN's fused
    linear on a weight that is no graph constant): only a missing C++ compiler may skip this."""
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("inductor needs a C++ compiler")
    model = _model(write_spec, spec)
    fast = optimize(model, compile=True)
    assert fast.archspec_compile_s > 0 and [r.name for r in fast.archspec_passes][-1] == "to_layout"
    assert not {"fuse_conv_act", "fuse_linear"} & {r.name for r in fast.archspec_passes}  # inductor fuses those
    _close(fast, model, torch.randn(2, 3, 16, 16))


def test_gate_leaves_other_products_alone() -> None:
    """fuse_gate takes a product read by one sum only: one read twice stays."""
    g = torch.fx.Graph()
    x, y = g.placeholder("x"), g.placeholder("y")
    prod = g.call_function(torch.mul, (x, y))
    g.output(g.call_function(operator.add, (g.call_function(operator.add, (prod, x)), prod)))
    gm = torch.fx.GraphModule(nn.Module(), g)
    assert fuse_gate(gm).rewrites == 0


GROUP_NORM = """
archspec: 1
name: gn
input: {channels: 4, size: [13, 13]}
network:
- conv2d 8 3x3 p1
- channel_slice 2 6
- group_norm g2
- conv2d 4 1x1
"""


def test_group_norm_stays_exact_on_maps_with_a_large_mean() -> None:
    """torch's channels_last GroupNorm kernel loses the variance of a group whose mean dwarfs its spread
    (differential tester, seed 3000286: error 0.0985); optimize runs it on a channels-first copy."""
    model = archspec.build(GROUP_NORM).eval()
    with torch.no_grad():
        model.get_submodule("0").bias.fill_(40.0)  # every map: mean ~40, spread ~1
        x = torch.randn(2, 4, 13, 13)
        want = model.double()(x.double()).float()
        model.float()
        got = optimize(model)(x)
    assert (got - want).abs().max() <= 1e-4 * (1 + want.abs().max())


def test_a_dense_concat_step_whose_view_no_one_reads_still_writes_its_channels(write_spec) -> None:
    # fuzz seed 8001125: cat(cat(gelu, conv), x) then cat(that, conv): the middle step's view is unread once the
    # last step writes into the buffer, and dead-code elimination dropped its write (uninitialised channels)
    spec = write_spec(
        "archspec: 1\nname: dense\ninput: {channels: 5, size: [9, 38]}\n"
        "network:\n  - concat:\n      a:\n        - conv2d 4 3x3 s2 p1\n"
        "        - concat: [{concat: [gelu, 'conv2d 12 3x5 padding=[1,2]']}, dropout]\n"
        "      b: conv 9 s2\n"
    )
    model = archspec.build(spec).eval()
    x = torch.randn(2, 5, 9, 38)
    with torch.no_grad():
        torch.testing.assert_close(optimize(model)(x), model(x), rtol=1e-4, atol=1e-4)


def _gated_sums(gm: nn.Module) -> int:
    from archspec.passes.gate_first import GatedSumConv

    return sum(isinstance(m, GatedSumConv) for m in gm.modules())


def test_se_gate_is_taken_before_the_last_conv(write_spec, monkeypatch) -> None:
    """SE-ResNet's ``relu(shortcut + gate · conv(z))``: the gate from ``pool(z)``, the gated sum written by
    the conv per image. The same logits as the eager model where the per-image kernels run (16×16 map, 16
    channels: the path is counted) and where they do not (3×3) and the
    channels-first model, at batch 1 and 3."""
    from archspec.passes.gate_first import GatedSumConv

    model = _model(write_spec, SE_RESNET)
    gm = optimize(model)
    assert _gated_sums(gm) == 2
    called = _targets(gm, "call_function")
    assert torch.addcmul not in called and F.adaptive_avg_pool2d not in called and torch.relu_ not in called
    taken: list[bool] = []
    per_image = GatedSumConv._per_image
    monkeypatch.setattr(GatedSumConv, "_per_image", lambda self, *a: taken.append(per_image(self, *a)) or taken[-1])
    for shape in ((1, 3, 16, 16), (3, 3, 16, 16)):
        _close(gm, model, torch.randn(*shape))
    assert taken == [True] * 4
    _close(gm, model, torch.randn(3, 3, 3, 3))
    assert taken[4:] == [False] * 2
    _close(optimize(model, channels_last=False), model, torch.randn(3, 3, 16, 16))
    assert _gated_sums(optimize(model, skip=("gate_before_conv",))) == 0


def _edited(model: nn.Module, edit) -> torch.fx.GraphModule:
    """``model`` optimized without gate_before_conv, its graph changed by ``edit(gm, addcmul)`` at the first block."""
    from archspec.passes import gate_before_conv

    gm = optimize(model, skip=("gate_before_conv",))
    edit(gm, next(n for n in gm.graph.nodes if n.target is torch.addcmul))
    gm.recompile()
    gate_before_conv(gm)
    return gm


def test_se_gate_stays_after_the_conv_where_the_pattern_differs(write_spec) -> None:
    """Not rewritten: a gate read elsewhere too, an op between the conv and the pool, a BatchNorm on batch
    statistics between them (it does not commute with the pool); the other block still is."""
    model = _model(write_spec, SE_RESNET)

    def gate_read_twice(gm, addcmul) -> None:
        out = next(n for n in gm.graph.nodes if n.op == "output")
        with gm.graph.inserting_before(out):
            extra = gm.graph.call_function(torch.sum, (addcmul.args[2],))
            out.args = (gm.graph.call_function(operator.add, (out.args[0], extra)),)

    def op_before_pool(gm, addcmul) -> None:
        y = addcmul.args[1]
        pool = next(u for u in y.users if u is not addcmul)
        with gm.graph.inserting_before(pool):
            pool.replace_input_with(y, gm.graph.call_function(torch.tanh, (y,)))

    for edit in (gate_read_twice, op_before_pool):
        gm = _edited(model, edit)
        assert _gated_sums(gm) == 1
        assert torch.addcmul in _targets(gm, "call_function")

    batch_stats = copy.deepcopy(model)
    bn = batch_stats.get_submodule("blocks.0.bn2")
    bn.track_running_stats, bn.running_mean, bn.running_var = False, None, None
    gm = optimize(batch_stats)
    assert _gated_sums(gm) == 1
    _close(gm, batch_stats, torch.randn(3, 3, 16, 16))


def test_global_mean_in_bf16_is_a_pooling_window_with_the_mean_s_value() -> None:
    """:func:`global_mean` against ``mean`` in float32 of the same bf16 values (the truth), within one bf16
    rounding of the result; in float32, and for a map that is not 4-d, it is ``mean`` itself."""
    from archspec.passes.common import global_mean

    torch.manual_seed(0)
    x = torch.randn(3, 40, 9, 7).to(torch.bfloat16)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        for dim in ((2, 3), (-2, -1)):
            for keepdim in (True, False):
                got = global_mean(xl, dim, keepdim)
                want = xl.float().mean(dim, keepdim=keepdim)
                assert got.dtype == torch.bfloat16 and got.shape == want.shape
                assert (got.float() - want).abs().max().item() <= 2**-8 * want.abs().max().item()
    x32 = torch.randn(2, 5, 6, 4)
    assert torch.equal(global_mean(x32, (2, 3), False), x32.mean((2, 3)))
    x3 = torch.randn(5, 6, 4).to(torch.bfloat16)
    assert torch.equal(global_mean(x3), x3.mean((-2, -1), keepdim=True))


def test_bf16_optimize_pools_by_window_and_runs_se_products_in_float32(write_spec, monkeypatch) -> None:
    """In bf16 no ``mean`` or ``adaptive_avg_pool2d`` is left (the SE pools and the head's), the input is
    made channels_last and then bf16 in two steps, the SE convs' matrix products run with float32 weights;
    the logits stay within bf16's error of the float32 eager model's. In float32 the graph keeps its pools."""
    from archspec.passes.common import global_mean

    model = _model(write_spec, MBCONV)
    x = torch.randn(3, 3, 32, 32)
    opt = optimize(model, dtype=torch.bfloat16)
    called = _targets(opt, "call_function")
    assert F.adaptive_avg_pool2d not in called and torch.mean not in called
    assert called.count(global_mean) == 3
    to = [n for n in opt.graph.nodes if n.op == "call_method" and n.target == "to"][:2]
    assert [n.kwargs for n in to] == [{"memory_format": torch.channels_last}, {"dtype": torch.bfloat16}]
    from archspec.passes import fuse_act

    weights: list[torch.dtype] = []

    def product(weight, bias, act, x):
        weights.append(weight.dtype)
        return pixel_linear_float32(weight, bias, act, x)

    pixel_linear_float32 = fuse_act._pixel_linear_float32
    monkeypatch.setattr(fuse_act, "_pixel_linear_float32", product)
    with torch.no_grad():
        got, want = opt(x), model(x)
        got_again = opt(x)  # where oneDNN has bf16, the SE convs' second call replays the first's product
    assert got.dtype == torch.float32 and torch.equal(got, got_again)
    assert weights == [torch.float32] * 8  # two SE convs in each of two blocks, two forwards
    assert ((got - want).norm() / want.norm()).item() <= 1e-2
    assert F.adaptive_avg_pool2d in _targets(optimize(model), "call_function")
