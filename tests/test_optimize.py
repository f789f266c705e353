"""The optimize stage: every pass keeps the logits and changes the graph as it says it does."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import archspec  # noqa: E402
from archspec.inference import optimize  # noqa: E402
from archspec.passes import (  # noqa: E402
    fold_bn,
    fuse_conv_act,
    fuse_conv_add,
    fuse_parallel_convs,
    remove_noops,
    to_layout,
)
from archspec.passes.fuse_act import ConvAct  # noqa: E402
from tests.references import perturb_bn  # noqa: E402

SMALL = """
archspec: 1
name: small_inception
input: {channels: 3, size: [32, 32]}
defaults:
  conv: {eps: 0.001}
blocks:
  mixed:                                   # three parallel 1x1 convs on the block input
    concat:
      branch0: conv 8 1x1
      branch1: [conv 6 1x1, conv 8 3x3 p1]
      branch2: [conv 4 1x1, conv 6 3x3 p1, conv 6 3x3 p1]
      branch3: [avgpool 3x3 p1 exclude_pad, conv 4 1x1]
  res:                                     # residual block: two parallel 1x1 convs, a linear conv2d
    residual:
      body:
        - concat:
            branch0: conv 8 1x1
            branch1: [conv 8 1x1, conv 8 3x3 p1]
        - conv2d: conv2d 26 1x1
      scale: 0.2
      then: relu
network:
  features:
    - conv 16 3x3 s2
    - conv 16 3x3 p1
    - mixed
    - res * 2
    - maxpool 3x3 s2
  pool: global_avgpool
  drop: dropout 0.2
  fc: linear 10
"""


def _trained_like(path: Path) -> nn.Module:
    """The spec's model in eval mode, with BatchNorm statistics a trained network could have."""
    model = archspec.build(path).eval()
    perturb_bn(model)
    return model


@pytest.fixture
def small(write_spec) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return _trained_like(write_spec(SMALL)), torch.randn(2, 3, 32, 32)


def _fresh(model: nn.Module) -> torch.fx.GraphModule:
    """A copy of the model to run one pass on (what optimize does before its passes)."""
    import copy

    gm = copy.deepcopy(model).eval()
    gm.requires_grad_(False)
    return gm


def _folded(model: nn.Module) -> torch.fx.GraphModule:
    """A copy with BatchNorm folded into the convs, the state the later passes usually see."""
    gm = _fresh(model)
    fold_bn(gm)
    return gm


def _same_logits(gm: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        _close(gm(x), model(x))


def _conv_nodes(gm: torch.fx.GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.Conv2d))


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= tol


def test_fold_bn_removes_every_batchnorm(small) -> None:
    model, x = small
    gm = _fresh(model)
    assert any(isinstance(m, nn.BatchNorm2d) for m in gm.modules())
    result = fold_bn(gm)
    assert result.rewrites == 2 + 7 + 2 * 3  # stem, the mixed block, two residual blocks (conv2d has no BN)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in gm.modules())
    _same_logits(gm, model, x)


def test_fold_bn_keeps_a_batchnorm_it_cannot_fold(write_spec) -> None:
    text = SMALL.replace("    - maxpool 3x3 s2\n", "    - maxpool 3x3 s2\n    - bn\n")
    model = _trained_like(write_spec(text))
    gm = _folded(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in gm.modules()) == 1  # after a pool: nothing to fold into
    x = torch.randn(1, 3, 32, 32)
    _same_logits(gm, model, x)


def test_fuse_parallel_convs_merges_the_1x1_convs_reading_one_tensor(small) -> None:
    model, x = small
    gm = _folded(model)
    before = _conv_nodes(gm)
    result = fuse_parallel_convs(gm)
    # mixed: 3 parallel 1x1 convs → 1 (branch3's reads the pool); each res block: 2 → 1
    assert result.rewrites == 3
    assert _conv_nodes(gm) == before - 2 - 1 - 1
    fused = [gm.get_submodule(n.target) for n in gm.graph.nodes if n.op == "call_module" and "fused" in n.target]
    assert sorted(c.out_channels for c in fused) == [16, 16, 18]
    _same_logits(gm, model, x)


MIXED_ACTIVATIONS = """
archspec: 1
name: mixed_acts
input: {channels: 3, size: [16, 16]}
network:
  stem: conv 8 3x3 p1
  mixed:
    concat:
      a: conv 8 1x1              # conv, BN, ReLU
      b: [conv2d 12 1x1, bn]     # no activation: a projection, an FPN lateral conv
  pool: global_avgpool
  fc: linear 5
"""


def test_fuse_parallel_convs_leaves_apart_convs_with_and_without_an_activation(write_spec) -> None:
    """Two 1×1 convs on one tensor, one followed by ReLU and one not, stay two convs: fused, the ReLU'd part
    would lose its post-op; each becomes its own oneDNN conv, the first with ReLU as its post-op."""
    torch.manual_seed(0)
    model = _trained_like(write_spec(MIXED_ACTIVATIONS))
    gm = _folded(model)
    assert fuse_parallel_convs(gm).rewrites == 0
    opt = optimize(model)
    assert not any("fused" in name for name, _ in opt.named_modules())
    assert sorted(m.post_op.name for m in opt.modules() if isinstance(m, ConvAct)) == ["none", "relu", "relu"]
    x = torch.randn(2, 3, 16, 16)
    _same_logits(opt, model, x)


def test_fuse_parallel_convs_without_folding_first(small) -> None:
    """Convs without bias (BN not folded) fuse too; BN stays on each part."""
    model, x = small
    gm = _fresh(model)
    before = _conv_nodes(gm)
    fuse_parallel_convs(gm)
    assert _conv_nodes(gm) == before - 4
    _same_logits(gm, model, x)


def test_fuse_conv_act_removes_the_separate_relus(small) -> None:
    model, x = small
    gm = _folded(model)
    relus = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in (torch.relu, torch.relu_)]
    convs = _conv_nodes(gm)
    result = fuse_conv_act(gm)
    after = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in (torch.relu, torch.relu_)]
    assert result.rewrites == convs  # every conv runs oneDNN's kernel, with its ReLU as a post-op where one follows
    assert len(after) == 2  # the two post-add ReLUs follow an add, not a conv
    assert len(relus) - len(after) == convs - 2  # each residual body's last conv2d has no ReLU
    with torch.no_grad():  # the fused oneDNN kernel, where available
        _close(gm(x), model(x))
        want = model(x)
    _close(gm(x), want)  # with autograd on: conv2d then relu_


def _calls(gm: torch.fx.GraphModule, *targets: object) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target in targets)


def test_fuse_conv_add_folds_scale_add_and_relu_into_the_last_conv(small) -> None:
    from archspec.passes.fuse_add import ConvAdd

    model, x = small
    gm = _folded(model)
    relus = _calls(gm, torch.relu, torch.relu_)
    before = {
        n.target: gm.get_submodule(n.target).weight.clone()
        for n in gm.graph.nodes
        if n.op == "call_module" and n.target.endswith("conv2d")
    }
    assert fuse_conv_add(gm).rewrites == 2  # the two residual blocks
    assert _calls(gm, torch.add) == 0 and _calls(gm, torch.relu, torch.relu_) == relus - 2
    fused = {
        n.target: gm.get_submodule(n.target)
        for n in gm.graph.nodes
        if n.op == "call_module" and isinstance(gm.get_submodule(n.target), ConvAdd)
    }
    assert sorted(fused) == sorted(before)
    for target, conv in fused.items():
        assert conv.activation == "relu"
        torch.testing.assert_close(conv.weight, 0.2 * before[target])  # the residual scale, in the weights
    with torch.no_grad():  # oneDNN's kernel with a binary post-op, where available
        _close(gm(x), model(x))
    with torch.enable_grad():  # conv2d, add, relu_
        _close(gm(x), model(x))


def test_fuse_conv_add_on_a_projection_shortcut(write_spec) -> None:
    """Both sides of the add are convs (ResNet's downsampling block): the body's conv takes the add,
    unscaled and without activation when none follows."""
    text = """
archspec: 1
name: proj
input: {channels: 3, size: [16, 16]}
network:
  stem: conv 8 3x3 p1
  block:
    residual:
      body: [conv 16 3x3 s2 p1, conv2d: conv2d 16 3x3 p1]
      shortcut: {proj: conv2d 16 1x1 s2}
  pool: global_avgpool
  fc: linear 4
"""
    from archspec.passes.fuse_add import ConvAdd

    model = _trained_like(write_spec(text))
    gm = _folded(model)
    assert fuse_conv_add(gm).rewrites == 1
    (fused,) = [m for m in gm.modules() if isinstance(m, ConvAdd)]
    assert fused.activation is None and fused.kernel_size == (3, 3)  # the body's conv, not the 1x1 projection
    x = torch.randn(2, 3, 16, 16)
    _same_logits(gm, model, x)


def test_fused_conv_keeps_its_packed_weight_fresh(small) -> None:
    """The oneDNN weight copy is reused between calls, remade when the weight changes, never saved."""
    import copy

    from archspec.passes.fuse_act import ConvAct

    model, x = small
    opt = optimize(model)
    keys = set(opt.state_dict())
    with torch.no_grad():
        first = opt(x)
        conv = next(m for m in opt.modules() if isinstance(m, ConvAct))
        if not torch.backends.mkldnn.is_available():
            pytest.skip("this torch has no oneDNN")
        assert conv._packed is not None  # the fused kernel ran (earlier exports must not have switched it off)
        packed = conv._packed[1]
        _close(opt(x), first, tol=0)
        assert conv._packed[1] is packed  # reused
        conv.weight.mul_(0.5)  # an in-place change: the copy must follow
        changed = opt(x)
        assert conv._packed[1] is not packed
        conv.weight.mul_(2.0)
        _close(opt(x), first, tol=1e-5)
        assert not torch.equal(changed, first)
    assert set(opt.state_dict()) == keys and all(t.layout == torch.strided for t in opt.state_dict().values())
    clone = copy.deepcopy(opt)  # the opaque copy is left behind and remade
    with torch.no_grad():
        _close(clone(x), first, tol=1e-5)
    opt.to(memory_format=torch.contiguous_format)
    assert conv._packed is None


def test_remove_noops_drops_dropout(small) -> None:
    model, x = small
    gm = _fresh(model)
    assert remove_noops(gm).rewrites == 1
    assert not any(isinstance(m, nn.Dropout) for m in gm.modules())
    _same_logits(gm, model, x)


def test_channels_last_layout(small) -> None:
    model, x = small
    gm = _fresh(model)
    to_layout(gm)
    convs = [m for m in gm.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    _same_logits(gm, model, x)


def test_bfloat16_keeps_float32_interface_and_is_close(small) -> None:
    model, x = small
    opt = optimize(model, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in opt.parameters())
    with torch.no_grad():
        got, want = opt(x), model(x)
    assert got.dtype == torch.float32
    rel = ((got - want).norm() / want.norm()).item()
    assert rel <= 2e-2


def test_optimize_runs_every_pass_and_leaves_the_model_alone(small) -> None:
    model, x = small
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = optimize(model)
    names = [r.name for r in opt.archspec_passes if r.rewrites]
    assert names == ["remove_noops", "fold_bn", "fuse_parallel_convs", "fuse_conv_add", "fuse_conv_act", "to_layout"]
    without_add = [r.name for r in optimize(model, fuse_add=False).archspec_passes if r.rewrites]
    assert without_add == ["remove_noops", "fold_bn", "fuse_parallel_convs", "fuse_conv_act", "to_layout"]
    assert not any(p.requires_grad for p in opt.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        _close(opt(x), model(x))


def test_optimize_drops_aux_heads(write_spec) -> None:
    text = (
        SMALL
        + """
aux:
  aux1:
    tap: features.2
    head: [global_avgpool, fc: linear 10]
"""
    )
    model = _trained_like(write_spec(text))
    opt = optimize(model)
    assert not any("aux" in name for name, _ in opt.named_modules())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        _close(opt(x), model(x))


def test_build_with_optimize(write_spec) -> None:
    model = archspec.build(write_spec(SMALL), optimize=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_optimized_inception_v4_matches_timm() -> None:
    """The whole stage on a zoo network, against the independent reference with the same weights."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    spec = Path(__file__).resolve().parent.parent / "specs" / "inception_v4.yaml"
    model = archspec.build(spec).eval()
    perturb_bn(model)
    ref = timm.create_model("inception_v4").eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    opt = optimize(model)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        _close(opt(x), ref(x))


def test_fused_convs_fall_back_to_public_torch(small, monkeypatch) -> None:
    """Where the private oneDNN ops may not run (an untested torch, oneDNN off), the fused convs
    compute the same logits with conv2d + add + relu_, and never touch the private API."""
    from archspec.passes import onednn
    from archspec.passes.fuse_act import ConvAct

    monkeypatch.setattr(onednn, "TESTED_TORCH", ())
    assert onednn._supported_dtypes() == frozenset()  # an untested torch version: no private op
    monkeypatch.setattr(onednn, "_SUPPORTED", frozenset())

    def refuse(*args, **kwargs):
        raise AssertionError("the private oneDNN op was called on the fallback path")

    monkeypatch.setattr(onednn, "conv_pointwise", refuse)
    monkeypatch.setattr(onednn, "conv_add_pointwise", refuse)
    monkeypatch.setattr(onednn, "conv_add_pointwise_", refuse)
    model, x = small
    opt = optimize(model)
    with torch.no_grad():
        _close(opt(x), model(x))
    fused = [m for m in opt.modules() if isinstance(m, onednn.OneDNNConv)]
    assert fused and all(m._packed is None for m in fused)  # no weight was packed for oneDNN
    assert any(isinstance(m, ConvAct) for m in fused)


def test_a_repeated_conv_call_reuses_its_arguments_only_while_they_hold(small) -> None:
    """A fused conv called on the same input shape runs on its last call's arguments without the general
    checks; another shape, a new bias, autograd on, or oneDNN switched off take the general path again."""
    import copy

    from archspec.passes import onednn

    if not onednn.mkldnn_dtypes():
        pytest.skip("this torch has no oneDNN")
    model, x = small
    opt = optimize(model)
    conv = next(m for m in opt.modules() if type(m) is ConvAct and m.post_op.name == "relu")
    general: list[int] = []
    real = conv.onednn
    conv.onednn = lambda *a: general.append(1) or real(*a)  # counts the general path's calls
    z = torch.randn(2, conv.in_channels, 8, 8).to(memory_format=torch.channels_last)

    def public(t: torch.Tensor) -> torch.Tensor:
        return torch.relu(nn.functional.conv2d(t, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups))

    with torch.no_grad():
        _close(conv(z), public(z), tol=1e-5)
        _close(conv(z), public(z), tol=1e-5)
        assert len(general) == 1 and conv._repeat is not None  # the second call reused the first's arguments
        conv(torch.randn(1, conv.in_channels, 8, 8))  # another shape
        assert len(general) == 2
        conv(z)
        assert len(general) == 3
        conv.bias = nn.Parameter(conv.bias + 1.0, requires_grad=False)  # a new bias tensor
        _close(conv(z), public(z), tol=1e-5)
        assert len(general) == 4
        torch.backends.mkldnn.enabled = False
        try:
            _close(conv(z), public(z), tol=1e-5)
        finally:
            torch.backends.mkldnn.enabled = True
        assert len(general) == 5
    _close(conv(z), public(z), tol=1e-5)  # autograd on: the public conv2d
    assert len(general) == 6
    assert copy.deepcopy(conv)._repeat is None  # the arguments hold an opaque packed weight: never copied
