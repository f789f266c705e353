"""A skip merged with an upsampled map (U-Net, FPN: `add` or `concat` of a map and the same map pooled
and upsampled back) is a partial merge described exactly: 2·floor(H/2) = H holds for even H only.
Truth: the same layers as torch functions, run at every H from 1 to 40: the sizes `check` accepts, and
those the compiled model's guard lets through, are exactly those at which torch's own forward works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.errors import SpecError

W = 24  # the width each case runs at (grow_apart: 4, below), H runs over HEIGHTS
HEIGHTS = range(1, 41)
C = 2


def conv(x: torch.Tensor, k: int = 3, s: int = 1, p: int = 1) -> torch.Tensor:
    return F.conv2d(x, torch.ones(C, x.shape[1], k, k), stride=s, padding=p)


def up(x: torch.Tensor, f: int = 2) -> torch.Tensor:
    return F.interpolate(x, scale_factor=float(f))


def transposed(x: torch.Tensor) -> torch.Tensor:
    return F.conv_transpose2d(x, torch.ones(x.shape[1], C, 2, 2), stride=2)


def cat(*xs: torch.Tensor) -> torch.Tensor:
    return torch.cat(xs, dim=1)


def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A residual sum: torch's + would broadcast a size-1 axis (1 + 4 → 4), which a skip never means;
    like torch.cat, it needs the sizes equal."""
    if a.shape != b.shape:
        raise RuntimeError(f"sizes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a + b


# name: (the network, as a spec writes it; the same network as torch functions)
CASES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "pool_up_add": (  # U-Net's level: pool /2, convolve, upsample ×2, add the skip
        """
  - enc: conv2d 2 3x3 p1
  - maxpool 2x2 s2
  - conv2d 2 3x3 p1
  - upsample 2
  - residual: {shortcut: {from: enc}, body: identity}""",
        lambda x: (lambda e: add(e, up(conv(F.max_pool2d(e, 2, 2)))))(conv(x)),
    ),
    "padded_pool_up_concat": (  # floor((H + 1)/2) upsampled: 2·floor((H + 1)/2) = H for even H
        """
  - enc: conv2d 2 3x3 p1
  - maxpool 3x3 s2 p1
  - upsample 2
  - concat: {skip: {from: enc}, up: identity}""",
        lambda x: (lambda e: cat(e, up(F.max_pool2d(e, 3, 2, 1))))(conv(x)),
    ),
    "two_levels": (  # FPN-like: /4 and ×4 in two steps, 4·floor(H/4) = H for H mod 4 = 0
        """
  - enc: conv2d 2 3x3 p1
  - conv2d 2 3x3 s2 p1
  - conv2d 2 3x3 s2 p1
  - upsample 2
  - upsample 2
  - residual: {shortcut: {from: enc}, body: identity}""",
        lambda x: (lambda e: add(e, up(up(conv(conv(e, s=2), s=2)))))(conv(x)),
    ),
    "ceil_pool_transposed": (  # a ceil-mode pool, U-Net's up-convolution: 2·floor((H + 1)/2)
        """
  - enc: conv2d 2 3x3 p1
  - maxpool 2x2 s2 ceil
  - conv_transpose 2 2x2 s2
  - concat: [{from: enc}, identity]""",
        lambda x: (lambda e: cat(e, transposed(F.max_pool2d(e, 2, 2, ceil_mode=True))))(conv(x)),
    ),
    "by_three": (  # 3·floor(H/3) = H: H a multiple of 3
        """
  - enc: conv2d 2 3x3 p1
  - maxpool 3x3 s3
  - upsample 3
  - residual: {shortcut: {from: enc}, body: identity}""",
        lambda x: (lambda e: add(e, up(F.max_pool2d(e, 3, 3), 3)))(conv(x)),
    ),
    "grow_apart": (  # 2·floor((H + 2)/3) = H at H = 2 and 4 only: sizes that grow apart
        """
  - enc: conv2d 2 3x3 p1
  - conv2d 2 3x3 s3 p1
  - upsample 2
  - residual: {shortcut: {from: enc}, body: identity}""",
        lambda x: (lambda e: add(e, up(conv(e, s=3))))(conv(x)),
    ),
}


def _width(case: str) -> int:
    return 4 if case == "grow_apart" else W  # a width that case accepts


def _spec(case: str, h: int) -> str:
    return f"archspec: 1\nname: t\ninput: {{channels: 1, size: [{h}, {_width(case)}]}}\nnetwork:{CASES[case][0]}\n"


def _torch_works(forward: Callable[[torch.Tensor], torch.Tensor], h: int, w: int) -> bool:
    try:
        forward(torch.zeros(1, 1, h, w))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("case", sorted(CASES))
def test_accepted_sizes_are_those_where_torch_works(case: str) -> None:
    forward, w = CASES[case][1], _width(case)
    works = [h for h in HEIGHTS if _torch_works(forward, h, w)]
    assert works
    report = archspec.check(_spec(case, works[-1]))
    assert [h for h in HEIGHTS if report.accepted.ok(h, w)] == works
    assert report.accepted.min_size[0] == works[0]
    assert [w.code for w in report.warnings] == ["partial-merge"]
    model = archspec.build(_spec(case, works[-1])).eval()
    guarded = []
    for h in HEIGHTS:
        try:
            model(torch.zeros(1, 1, h, w))
        except ValueError:
            continue
        guarded.append(h)
    assert guarded == works


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("pool_up_add", "even H from 2"),
        ("two_levels", "H from 4 with H mod 4 in {0}"),
        ("by_three", "H from 3 with H mod 3 in {0}"),
        ("grow_apart", "H in {2, 4}"),
    ],
)
def test_the_accepted_sizes_are_described_as_for_any_partial_merge(case: str, text: str) -> None:
    report = archspec.check(_spec(case, 4 if case == "grow_apart" else 24))
    assert text in report.accepted.describe()
    warning = report.warnings[0]
    assert "at some input sizes only" in warning.message and "·floor(" in warning.message


def test_a_size_the_merge_refuses_is_a_located_shape_mismatch() -> None:
    with pytest.raises(SpecError, match="spatial sizes differ at input size 23×24") as e:
        archspec.check(_spec("pool_up_add", 23))
    assert e.value.code == "shape-mismatch" and "even H from 2" in (e.value.hint or "")


def test_torchscript_keeps_both_kinds_of_condition(tmp_path: Path) -> None:
    """Odd H for the strided pair (a condition of canonical sizes), then an even map for the upsampled
    skip (k·floor((X + a)/m) + c): together H = 1 mod 4, also in the TorchScript file's guard."""
    from archspec.cli import main

    spec = tmp_path / "both.yaml"
    spec.write_text(
        "archspec: 1\nname: both\ninput: {channels: 1, size: [25, 25]}\nnetwork:\n"
        "  - concat: [conv2d 2 3x3 s2, conv2d 2 2x2 s2]\n" + CASES["padded_pool_up_concat"][0].lstrip("\n") + "\n"
    )
    assert "H mod 4 in {1}" in archspec.check(spec).accepted.describe()
    out = tmp_path / "both.ts"
    assert main(["export", str(spec), "-o", str(out)]) == 0
    scripted = torch.jit.load(str(out))
    accepted = []
    for h in range(20, 34):
        try:
            scripted(torch.zeros(1, 1, h, 25))
        except Exception:  # noqa: BLE001 - TorchScript re-raises the guard's ValueError as its own error
            continue
        accepted.append(h)
    assert accepted == [21, 25, 29, 33]
