"""`weighted_sum K [fast|softmax|plain] [eps=E] [init=V]` (docs/language.md, "Weighted fusion of same-shape
maps"): K branches concatenated along the channels, summed with K learned scalars. Truth: the fusions of
EfficientDet (arXiv 1911.09070, §3.3) written out here from the paper with the branches kept apart (not the
op's reshape), and the BiFPN layer of tests/test_outside_networks_d.py (BiFPNNet, weighted=True), which
tests/specs_outside/bifpn_layer.yaml equals with its state_dict (the keys pN_w1, pN_w2)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402
from tests.test_codegen import compile_to, run_standalone  # noqa: E402

SPEC = """archspec: 1
name: fusion
input: {channels: 3, size: [12, 10]}
network:
  - a: conv2d 4 3x3 p1
  - b: [conv2d 4 3x3 s2 p1, upsample 2]
  - cat: {concat: [{from: a}, identity, {from: a}]}
  - fast: weighted_sum 3
  - cat2: {concat: [identity, {from: a}]}
  - soft: weighted_sum 2 softmax
  - cat3: {concat: [identity, {from: b}]}
  - plain: weighted_sum 2 plain init=0.5 eps=0.01
  - global_avgpool
  - vec: [{concat: [identity, identity]}, weighted_sum 2 eps=0.5]
"""


def _fused(kind: str, w: torch.Tensor, maps: list[torch.Tensor], eps: float) -> torch.Tensor:
    """§3.3: unbounded Σ w_i·I_i; softmax-based Σ e^{w_i}/Σ_j e^{w_j}·I_i; fast Σ relu(w_i)/(ε + Σ_j relu(w_j))·I_i."""
    if kind == "fast":
        r = [max(float(v), 0.0) for v in w]
        v = [ri / (eps + sum(r)) for ri in r]
    elif kind == "softmax":
        e = [float(torch.exp(x)) for x in w]
        v = [ei / sum(e) for ei in e]
    else:
        v = [float(x) for x in w]
    return sum(vi * m for vi, m in zip(v, maps, strict=True))  # type: ignore[return-value]


def _reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    conv = torch.nn.functional.conv2d
    a = conv(x, state["a.weight"], state["a.bias"], padding=1)
    b = torch.nn.functional.interpolate(conv(a, state["b.0.weight"], state["b.0.bias"], stride=2, padding=1), scale_factor=2.0)
    y = _fused("fast", state["fast"], [a, b, a], 1e-4)
    y = _fused("softmax", state["soft"], [y, a], 1e-4)
    y = _fused("plain", state["plain"], [y, b], 0.01).mean(dim=(2, 3))
    return _fused("fast", state["vec.1"], [y, y], 0.5)


def test_weighted_sum_is_the_paper_s_fusion(tmp_path: Path) -> None:
    model = archspec.build(SPEC).eval()
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if "weight" not in k and "bias" not in k} == {
        "fast": (3,),
        "soft": (2,),
        "plain": (2,),
        "vec.1": (2,),
    }
    assert torch.equal(state["fast"], torch.ones(3)) and torch.equal(state["plain"], torch.full((2,), 0.5))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key in ("fast", "soft", "plain", "vec.1"):
            state[key].copy_(torch.randn(state[key].shape, generator=g))  # some negative: the relu cuts them
        state["fast"][1] = -0.3
    source = tmp_path / "fusion.yaml"
    source.write_text(SPEC)
    out = tmp_path / "Fusion.py"
    compile_to(source, out)
    fast = archspec.optimize(model)
    for size in ((12, 10), (8, 6)):  # even sizes: the upsampled branch b agrees with a
        x = torch.randn(2, 3, *size, generator=g)
        with torch.no_grad():
            want = _reference(state, x)
            torch.testing.assert_close(model(x), want)
            torch.testing.assert_close(fast(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(run_standalone(tmp_path, out, "Fusion", state, x), want)
    report = archspec.check(SPEC)
    assert report.params == (4 * 3 * 9 + 4) + (4 * 4 * 9 + 4) + 3 + 2 + 2 + 2  # two convs and the weights


def test_channels_that_k_does_not_split_are_one_located_error() -> None:
    with pytest.raises(SpecError) as e:
        archspec.check(SPEC.replace("fast: weighted_sum 3", "fast: weighted_sum 5"))
    assert e.value.line == 9 and "weighted_sum 5" in str(e.value) or "5 branches" in str(e.value)
