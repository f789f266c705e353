"""Built models start from PyTorch's default initialisation scheme, reproducibly."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import archspec  # noqa: E402

SPEC = """
archspec: 1
name: init_check
input: {channels: 3, size: [32, 32]}
network:
  features: [conv 64 3x3 s2, conv 96 1x1, conv2d: conv2d 128 3x3]
  pool: global_avgpool
  fc: linear 100
"""


def test_weights_follow_torch_default_scheme(write_spec) -> None:
    model = archspec.build(write_spec(SPEC))
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 4
    for layer in layers:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)  # torch's own rule
        bound = 1 / math.sqrt(fan_in)
        for p in (layer.weight, layer.bias):
            if p is None:
                continue
            assert p.abs().max().item() <= bound
            if p.numel() >= 1000:  # a uniform distribution on [-bound, bound], not a constant or a normal
                assert p.abs().max().item() > 0.95 * bound
                assert abs(p.std().item() - bound / math.sqrt(3)) < 0.05 * bound
                assert abs(p.mean().item()) < 0.05 * bound
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
        assert bn.num_batches_tracked.item() == 0


def test_weights_are_reproducible_and_independent_of_threads(write_spec) -> None:
    path = write_spec(SPEC)
    threads = torch.get_num_threads()
    try:
        torch.manual_seed(7)
        a = archspec.build(path).state_dict()
        torch.set_num_threads(1)
        torch.manual_seed(7)
        b = archspec.build(path).state_dict()
        c = archspec.build(path).state_dict()
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.conv.weight"], c["features.0.conv.weight"])


def test_no_parameter_is_left_on_meta_or_uninitialized(write_spec) -> None:
    model = archspec.build(write_spec(SPEC))
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        assert t.device.type == "cpu", name
        assert torch.isfinite(t.float()).all(), name


def _layers() -> list[tuple[str, object, list, object]]:
    """One (op, params, input shapes, output shape) per kind of stateful layer the registry builds."""
    from archspec.ops import REGISTRY
    from archspec.symbolic import Dim, Shape

    size = Dim(0, 1)
    image, vector = Shape(64, size, size), Shape(64)
    cases = []
    for op, params, inputs, out in [
        ("conv2d", {"out": 32, "kernel": 3, "padding": 1}, [image], Shape(32, size, size)),
        ("conv2d", {"out": 32, "kernel": 1, "bias": False, "groups": 2}, [image], Shape(32, size, size)),
        ("bn", {"eps": 1e-3, "momentum": 0.2}, [image], image),
        ("bn", {}, [vector], vector),
        ("linear", {"out": 10}, [vector], Shape(10)),
        ("layer_norm", {"eps": 1e-6}, [vector], vector),  # on maps too: the same layer, called channels last
        ("layer_norm", {"affine": False}, [vector], vector),
        ("group_norm", {"groups": 8}, [image], image),
    ]:
        entry = REGISTRY[op]
        cases.append((op, entry, entry.Params(**params), inputs, out))
    return cases


@pytest.mark.parametrize("case", _layers(), ids=lambda c: c[0])
def test_layers_copied_from_a_prototype_equal_freshly_built_ones(case) -> None:
    """build_modules copies each distinct layer from one prototype instead of running its __init__."""
    from archspec.compile import _instantiate, _owned
    from archspec.initialize import SkipInit

    _, entry, params, inputs, out = case
    fresh = entry.module(params, inputs, out)
    if entry.constant_init:  # as build_modules makes it: plainly, on the CPU
        proto = entry.module(params, inputs, out)
    else:
        with SkipInit():
            proto = entry.module(params, inputs, out, device="meta")
    a, b = _instantiate(proto, _owned(proto), "cpu"), _instantiate(proto, _owned(proto), "cpu")
    assert type(a) is type(fresh) and repr(a) == repr(fresh)
    assert sorted(vars(a)) == sorted(vars(fresh))
    assert {k: (v.shape, v.dtype, v.device, v.requires_grad) for k, v in a.state_dict(keep_vars=True).items()} == {
        k: (v.shape, v.dtype, v.device, v.requires_grad) for k, v in fresh.state_dict(keep_vars=True).items()
    }
    assert all(isinstance(p, nn.Parameter) for p in a.parameters())
    # nothing shared: not the tensors, not the registries that hooks and load_state_dict mutate
    assert not {t.data_ptr() for t in a.state_dict().values()} & {t.data_ptr() for t in b.state_dict().values()}
    a.register_forward_hook(lambda *args: None)
    a.register_parameter("extra", nn.Parameter(torch.zeros(1)))
    assert not proto._forward_hooks and not b._forward_hooks and "extra" not in b._parameters
    del a.extra
    if entry.constant_init:  # copied with its values (compile.build_modules, initialize's preset): the constructor's own
        copied = _instantiate(proto, _owned(proto), "cpu", values=True)
        assert set(copied.state_dict()) == set(fresh.state_dict())
        for k, v in copied.state_dict(keep_vars=True).items():
            assert torch.equal(v, fresh.state_dict()[k]) and v.data_ptr() != proto.state_dict()[k].data_ptr(), k
            assert isinstance(v, nn.Parameter) == isinstance(fresh.state_dict(keep_vars=True)[k], nn.Parameter), k
    # and it computes what the freshly built layer computes
    a.load_state_dict(fresh.state_dict())
    x = torch.randn(2, 64, 5, 5) if inputs[0].is_map else torch.randn(2, 64)
    fresh.eval(), a.eval()
    torch.testing.assert_close(a(x), fresh(x), rtol=0, atol=0)


def test_a_layer_with_children_is_copied_whole(write_spec, monkeypatch) -> None:
    """A registry entry whose module is not a plain layer (here: one with a child) is deep-copied
    from its prototype instead; every use still gets its own initialised tensors."""
    from archspec.ops import REGISTRY

    linear = REGISTRY["linear"]
    plain = type(linear).module

    def wrapped(self, p, inputs, out, device=None):  # noqa: ANN001, ANN202
        return nn.Sequential(plain(self, p, inputs, out, device=device))

    monkeypatch.setattr(type(linear), "module", wrapped)
    text = SPEC.replace("fc: linear 100", "fc: linear 100\n  fc2: linear 100\n  fc3: linear 100")
    model = archspec.build(write_spec(text))
    a, b = model.get_submodule("fc2.0"), model.get_submodule("fc3.0")  # one prototype, two copies
    assert isinstance(a, nn.Linear) and a.weight.device.type == "cpu"
    assert a.weight.data_ptr() != b.weight.data_ptr() and not torch.equal(a.weight, b.weight)
    assert a.weight.abs().max().item() <= 1 / math.sqrt(a.in_features)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_layers_kept_across_builds_change_neither_the_draws_nor_the_layers(write_spec, monkeypatch) -> None:
    """build_modules keeps each distinct layer's prototype across builds (compile._PROTOTYPES): a build
    from an empty store and one from a full store give the same weights from one seed (torch's rule:
    the same seed, the same numbers), and a prototype follows torch's default dtype as the layer's own
    constructor does. The store is bounded."""
    import importlib

    compiled = importlib.import_module("archspec.compile")  # (archspec.compile is also a function)
    path = write_spec(SPEC)
    compiled._PROTOTYPES.clear()
    torch.manual_seed(3)
    first = archspec.build(path)
    assert compiled._PROTOTYPES  # kept
    torch.manual_seed(3)
    again = archspec.build(path)
    assert repr(first) == repr(again)
    a, b = first.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert not {t.data_ptr() for t in a.values()} & {t.data_ptr() for t in b.values()}  # nothing shared
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        wide = archspec.build(path)
        fresh = nn.Conv2d(96, 128, 3)  # the constructor's own choice under this default
    finally:
        torch.set_default_dtype(default)

    def last_conv(model: nn.Module) -> nn.Conv2d:
        return [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]  # conv2d 128 3x3 over 96 channels

    assert last_conv(wide).weight.dtype == fresh.weight.dtype == torch.float64
    assert last_conv(archspec.build(path)).weight.dtype == torch.float32
    monkeypatch.setattr(compiled, "MAX_PROTOTYPES", 3)
    archspec.build(write_spec(SPEC.replace("conv 64 3x3", "conv 48 3x3")))  # layers not seen yet
    assert len(compiled._PROTOTYPES) <= 3


def test_the_walk_over_modules_is_torch_s(write_spec) -> None:
    """initialize walks the tree without nested generators: the same (path, module) pairs in the same
    order as torch's ``named_modules`` (a module held twice once, an empty slot skipped)."""
    from archspec.initialize import _named_modules

    shared = nn.Linear(2, 2)
    inner = nn.Sequential(shared, nn.Sequential(nn.ReLU(), shared))
    inner.register_module("empty", None)
    tree = nn.Sequential(inner, nn.Identity(), nn.Sequential(nn.Sequential(nn.Sequential(nn.Tanh()))), shared)
    model = archspec.build(write_spec(SPEC))
    for root in (tree, model):
        assert [(n, id(m)) for n, m in _named_modules(root)] == [(n, id(m)) for n, m in root.named_modules()]


@pytest.mark.parametrize("size", [1, 2, 3, (1 << 16) + 3, 400_001])
def test_normal_draws_are_normal(size: int) -> None:
    """The Box-Muller draws (initialize._fill_normal) against scipy's N(0, σ²): a Kolmogorov-Smirnov test on the
    whole draw, the share beyond 3σ, every value finite, odd sizes and sizes across a chunk's end filled whole."""
    import numpy as np
    from scipy import stats

    from archspec import initialize

    out = np.full(size, np.nan, np.float32)
    initialize._fill_normal(np.random.Generator(np.random.SFC64(7)), out, 0.3)
    assert np.isfinite(out).all()
    if size < 1000:
        return
    assert stats.kstest(out.astype(np.float64), stats.norm(0.0, 0.3).cdf).pvalue > 1e-3
    tail = float(np.mean(np.abs(out) > 0.9))
    assert abs(tail - 2 * stats.norm.sf(3.0)) < 5 * math.sqrt(2 * stats.norm.sf(3.0) / size)
    half = 1 << 15  # a chunk's two halves, r·cos θ and r·sin θ of the same pairs: uncorrelated
    assert abs(np.corrcoef(out[:half], out[half : 2 * half])[0, 1]) < 0.03
