"""`from: NAME` — a node reads an earlier named value (a skip connection): what the compiled model
computes, checked against torch functions applied by hand to the same weights; names looked up inside
the block instance first; references forward, unknown or to the node itself are located errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.errors import SpecError

RES2 = """archspec: 1
name: res2
input: {channels: 16, size: [9, 9]}
blocks:
  res2:                       # Res2Net (arXiv 1904.01169, Fig. 2): y1 = x1, y_i = K_i(x_i + y_(i-1))
    params: {w: 4}
    concat:
      y1: channel_slice 0 $w
      y2:
        - channel_slice $w ${2 * w}
        - k2: conv2d $w 3x3 p1
      y3:
        - residual: {shortcut: {from: y2}, body: 'channel_slice ${2 * w} ${3 * w}'}
        - k3: conv2d $w 3x3 p1
      y4:
        - residual: {shortcut: {from: y3}, body: 'channel_slice ${3 * w} ${4 * w}'}
        - k4: conv2d $w 3x3 p1
network:
  - first: res2
  - second: res2
"""


def _res2(x: torch.Tensor, sd: dict[str, torch.Tensor], at: str) -> torch.Tensor:
    def k(i: int, v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, sd[f"{at}.y{i}.k{i}.weight"], sd[f"{at}.y{i}.k{i}.bias"], padding=1)

    x1, x2, x3, x4 = x.split(4, dim=1)
    y2 = k(2, x2)
    y3 = k(3, x3 + y2)
    y4 = k(4, x4 + y3)
    return torch.cat([x1, y2, y3, y4], dim=1)


def test_res2net_as_the_paper_draws_it() -> None:
    """Each instance's y3 reads its own y2 (names are looked up inside the block instance first)."""
    model = archspec.build(RES2).eval()
    sd = model.state_dict()
    x = torch.randn(2, 16, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _res2(_res2(x, sd, "first"), sd, "second"), rtol=0, atol=1e-5)
    assert archspec.check(RES2).params == 2 * 3 * (4 * 4 * 9 + 4)


def test_a_value_read_later_is_not_overwritten_in_place() -> None:
    spec = """archspec: 1
name: skip
input: {channels: 3, size: [8, 8]}
network:
  - a: conv2d 4 3x3 p1
  - relu
  - conv2d 4 1x1
  - s: {residual: {shortcut: {from: a}, body: identity, then: relu}}
  - c: {concat: [identity, {from: a}]}
"""
    model = archspec.build(spec).eval()
    sd = model.state_dict()
    x = torch.randn(2, 3, 8, 8)
    a = F.conv2d(x, sd["a.weight"], sd["a.bias"], padding=1)
    b = F.conv2d(F.relu(a), sd["2.weight"], sd["2.bias"])
    expected = torch.cat([F.relu(a + b), a], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(archspec.optimize(model)(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("network", "column", "message", "hint"),
    [
        ("[a: conv2d 4 3x3, {from: b}, b: conv2d 4 1x1]", 35, "from: 'b' names no node before this one", "a value can be read"),
        ("[a: conv2d 4 3x3, {from: aa}]", 35, "from: 'aa' names no node before this one", "did you mean 'a'?"),
        ("[a: {concat: [identity, {from: a}]}]", 41, "from: 'a' names no node before this one", "a value can be read"),
    ],
)
def test_forward_unknown_and_cyclic_references_are_located(network: str, column: int, message: str, hint: str) -> None:
    spec = f"archspec: 1\nname: e\ninput: {{channels: 3, size: [8, 8]}}\nnetwork: {network}\n"
    with pytest.raises(SpecError, match=message) as e:
        archspec.check(spec)
    assert (e.value.code, e.value.loc.line, e.value.loc.column) == ("name", 4, column)
    assert hint in (e.value.hint or "")


def test_a_skip_of_another_size_is_a_shape_mismatch_naming_both() -> None:
    spec = (
        "archspec: 1\nname: e\ninput: {channels: 3, size: [8, 8]}\n"
        "network: [a: conv2d 4 3x3 p1, conv2d 4 3x3 s2 p1, m: {residual: {shortcut: {from: a}, body: identity}}]\n"
    )
    with pytest.raises(
        SpecError, match=r"residual add in m: spatial sizes differ: shortcut 4×8×8 .*at a, 4:14.* vs body 4×4×4"
    ) as e:
        archspec.check(spec)
    assert e.value.code == "shape-mismatch"
