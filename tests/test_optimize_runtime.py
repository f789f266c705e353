"""What `optimize` does to the process and to the optimized module beyond its graph passes: the
allocator kept from handing feature maps back to the system, and submodules reached without
``nn.Module.__getattr__``. Each checked against what it must not change (logits, state_dict,
replacing a child) and, for the allocator, against the kernel's own page-fault count."""

from __future__ import annotations

import copy
import os
import pickle
import resource
import statistics
import sys

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import archspec  # noqa: E402
import archspec.inference as inference  # noqa: E402
from archspec.inference import direct_lookups, optimize  # noqa: E402
from tests.references import perturb_bn  # noqa: E402

SPEC = """
archspec: 1
name: small_se
input: {channels: 3, size: [32, 32]}
blocks:
  unit:
    residual:
      body:
        - conv 16 3x3 p1
        - conv2d: conv2d 16 3x3 p1
        - se:
            gate: [adaptive_avgpool 1x1, conv2d 4 1x1, relu, conv2d 16 1x1, sigmoid]
      then: relu
network:
  stem: conv 16 3x3 s2
  units: unit * 2
  pool: global_avgpool
  fc: linear 10
"""


@pytest.fixture
def model(write_spec) -> nn.Module:
    torch.manual_seed(0)
    built = archspec.build(write_spec(SPEC)).eval()
    perturb_bn(built)
    return built


def _module_lookups(opt: nn.Module, x: torch.Tensor) -> list[str]:
    """The names ``nn.Module.__getattr__`` resolved to a module during one forward of ``opt``."""
    found: list[str] = []
    original = nn.Module.__getattr__

    def counting(self: nn.Module, name: str) -> object:
        value = original(self, name)
        if isinstance(value, nn.Module):
            found.append(name)
        return value

    nn.Module.__getattr__ = counting  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            opt(x)
    finally:
        nn.Module.__getattr__ = original  # type: ignore[method-assign]
    return found


def test_the_optimized_forward_reaches_its_submodules_directly(model) -> None:
    x = torch.randn(2, 3, 32, 32)
    opt = optimize(model)
    assert _module_lookups(opt, x) == []
    plain = optimize(model)
    for m in plain.modules():  # undo the aliases: fx's code goes through __getattr__ again
        for name in m._modules:
            m.__dict__.pop(name, None)
    assert len(_module_lookups(plain, x)) > 5  # the test can see a lookup where one happens
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(opt(x), want, rtol=1e-4, atol=1e-5)
        assert torch.equal(opt(x), plain(x))
    # the registry is unchanged: same keys, and copies and pickles run the same
    assert list(opt.state_dict()) == list(plain.state_dict())
    for again in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        with torch.no_grad():
            assert torch.equal(again(x), opt(x))


def test_a_child_set_again_replaces_its_alias(model) -> None:
    x = torch.randn(1, 3, 32, 32)
    opt = optimize(model)
    path = next(n.target for n in opt.graph.nodes if n.op == "call_module")
    parent_path, _, leaf = str(path).rpartition(".")
    parent = opt.get_submodule(parent_path) if parent_path else opt
    calls: list[int] = []
    old = parent._modules[leaf]
    assert old is not None

    class Counted(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return old(t)

    setattr(parent, leaf, Counted())
    with torch.no_grad():
        opt(x)
    assert calls == [1]


def test_names_the_class_has_are_not_shadowed() -> None:
    parent = nn.Module()
    parent._modules["float"] = nn.Identity()  # nn.Module.float is a method (add_module refuses the name)
    parent.add_module("head", nn.Identity())
    assert direct_lookups(parent) == 1
    assert callable(parent.float) and not isinstance(parent.float, nn.Module)
    assert parent.__dict__["head"] is parent._modules["head"]


def test_optimize_asks_for_the_allocator_setting_unless_told_not_to(model, monkeypatch) -> None:
    asked: list[int] = []
    monkeypatch.setattr(inference, "keep_freed_memory", lambda: asked.append(1) or True)
    optimize(model, keep_memory=False)
    assert asked == []
    optimize(model)
    assert asked == [1]


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")  # type: ignore[union-attr]
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="the setting is glibc's malloc's")
def test_freed_maps_are_reused_without_new_page_faults() -> None:
    assert inference.keep_freed_memory()
    pages = (96 << 20) // resource.getpagesize()  # a 96 MiB map: glibc would map it anew each time

    def faults_of_one_map() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.empty(96 << 20, dtype=torch.uint8)
        t.fill_(1)  # touch every page
        del t
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_one_map()
    # median of five: now and then the kernel takes back part of the heap (a few runs in ten in a busy shared process)
    assert statistics.median(faults_of_one_map() for _ in range(5)) < pages // 10
