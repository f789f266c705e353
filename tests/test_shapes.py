"""Symbolic shapes against hand-computed sizes and against what PyTorch really produces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import archspec
from archspec.symbolic import Dim, Window

SMALL = """
archspec: 1
name: small
input: {channels: 3, size: [32, 32]}
network:
  body:
    - conv 8 3x3 s2        # floor((H - 3)/2) + 1 = floor((H - 1)/2)
    - maxpool 3x3 s2 ceil  # ceil((x - 3)/2) + 1
    - conv 16 1x7 p0,3     # W keeps its size, H too (1 tall)
  head: [global_avgpool, linear 10]
"""


def test_hand_computed_small_spec() -> None:
    report = archspec.check(SMALL)
    rows = {r.path: r for r in report.rows}
    # 32 → conv 3x3 s2: floor((32 - 3)/2) + 1 = 15 → ceil pool: ceil((15 - 3)/2) + 1 = 7
    assert rows["body.0"].shape.at(32, 32) == (8, 15, 15)
    assert rows["body.1"].shape.at(32, 32) == (8, 7, 7)
    assert rows["body.2"].shape.at(32, 32) == (16, 7, 7)
    assert rows["body.0"].shape.formula() == "8×floor((H - 1)/2)×floor((W - 1)/2)"
    # conv needs H >= 3; the pool needs its input x >= 2 (ceil mode: ceil((x-3)/2)+1 >= 1), x = floor((H-1)/2)
    # so H >= 5 — and at H = 5: 2 → ceil(-1/2)+1 = 1. Minimum 5.
    assert report.min_input_size == (5, 5)
    assert report.output_shape == (10,)
    # `conv` = Conv2d without bias + BatchNorm (2 per channel): 8·3·3·3 + 2·8, 16·8·1·7 + 2·16; linear 16·10 + 10
    assert report.params == (8 * 27 + 2 * 8) + (16 * 8 * 7 + 2 * 16) + (16 * 10 + 10)
    assert report.params == sum(p.numel() for p in archspec.build(SMALL).parameters())


def test_small_spec_runs_at_minimum_and_refuses_below() -> None:
    model = archspec.build(SMALL).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 5, 5)).shape == (1, 10)
        with pytest.raises(ValueError):
            model(torch.randn(1, 3, 4, 5))


windows = st.builds(
    Window,
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 2),
    ceil=st.booleans(),
).filter(lambda w: 2 * w.padding <= w.kernel)  # PyTorch's pool rule, so any window is a legal pool


def _torch_size(ws: list[Window], x: int) -> int | None:
    t = torch.zeros(1, 1, x, 1)
    try:
        for w in ws:
            t = F.max_pool2d(t, (w.kernel, 1), (w.stride, 1), (w.padding, 0), (w.dilation, 1), ceil_mode=w.ceil)
    except RuntimeError:
        return None
    return t.shape[2]


@settings(max_examples=150, deadline=None)
@given(st.lists(windows, min_size=1, max_size=4), st.integers(1, 60))
def test_dim_equals_pytorch_for_random_window_chains(ws: list[Window], x: int) -> None:
    dim = Dim()
    for w in ws:
        dim = dim.window(w)
    expected = _torch_size(ws, x)
    lo = max(1, *(d.min_input() for d in _prefixes(ws)))
    if expected is None:
        assert x < lo  # PyTorch refused: we must say the size is below the minimum
    else:
        assert x >= lo and dim(x) == expected


def _prefixes(ws: list[Window]) -> list[Dim]:
    out, d = [], Dim()
    for w in ws:
        d = d.window(w)
        out.append(d)
    return out


@given(st.integers(-50, 50), st.integers(1, 8), st.integers(1, 4), st.integers(-10, 10), st.integers(1, 400))
def test_floor_composition_identity(a: int, m: int, s: int, b: int, x: int) -> None:
    # the identity the canonical form rests on: floor((floor((x + a)/m) + b)/s) = floor((x + a + b·m)/(m·s))
    assert ((x + a) // m + b) // s == (x + a + b * m) // (m * s)


def test_canonical_equality_is_exact_and_sympy_agrees() -> None:
    a = Dim().window(Window(3, 2)).window(Window(3, 1, 1))
    b = Dim().window(Window(3, 2, 1)).window(Window(1, 1)).window(Window(3, 1, 0))
    assert a.equals(a) == (True, True)
    eq, proven = a.equals(b)
    assert proven and eq == all(a(x) == b(x) for x in range(5, 500))
    import sympy

    h = sympy.Symbol("H", integer=True, positive=True)
    for x in (7, 8, 99, 300):
        assert int(a.sympy().subs(h, x)) == a(x)


def test_ceil_mode_correction_has_a_canonical_form() -> None:
    # kernel 1, stride 2, pad 0, ceil: PyTorch drops a last window starting beyond the input, so the
    # size is ceil(x/2) = floor((x + 1)/2): still one floor division (issue 24: a merge with such a
    # pool was refused because the size was an opaque replay)
    for w in (Window(1, 2, 0, 1, True), Window(1, 3, 0, 1, True), Window(3, 3, 1, 1, True), Window(2, 4, 1, 2, True)):
        d = Dim().window(w)
        assert d.is_canonical
        for x in range(1, 60):
            expected = _torch_size([w], x)
            assert (d(x) if x >= d.min_input() else None) == expected
