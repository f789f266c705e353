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


def up(x: torch.Tensor, f: float = 2) -> torch.Tensor:
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
    # factors that are not whole: torch's size is floor(X·s), exact for s = p/q with q a power of two
    "thirds_by_one_and_a_half": (  # floor(1.5·floor(H/3)) beside floor(H/2): H mod 6 in {0, 1, 3}
        """
  - enc: conv2d 2 3x3 p1
  - p2: maxpool 2x2 s2
  - {from: enc}
  - maxpool 3x3 s3
  - upsample 1.5
  - concat: [{from: p2}, identity]""",
        lambda x: (lambda e: cat(F.max_pool2d(e, 2, 2), up(F.max_pool2d(e, 3, 3), 1.5)))(conv(x)),
    ),
    "fifths_by_two_and_a_half": (  # floor(2.5·floor(H/5)) beside floor(H/2): H mod 10 in {0, 1, 5}
        """
  - enc: conv2d 2 3x3 p1
  - p2: maxpool 2x2 s2
  - {from: enc}
  - maxpool 5x5 s5
  - bilinear: upsample 2.5 bilinear
  - residual: {shortcut: {from: p2}, body: identity}""",
        lambda x: (lambda e: add(F.max_pool2d(e, 2, 2), F.interpolate(F.max_pool2d(e, 5, 5), scale_factor=2.5, mode="bilinear")))(
            conv(x)
        ),
    ),
    "apart_by_two_and_a_half": (  # floor(2.5·floor(H/2)) beside H: H in {2, 5, 7}, sizes that grow apart
        """
  - enc: conv2d 2 3x3 p1
  - maxpool 2x2 s2
  - upsample 2.5
  - concat: [{from: enc}, identity]""",
        lambda x: (lambda e: cat(e, up(F.max_pool2d(e, 2, 2), 2.5)))(conv(x)),
    ),
    "down_by_three_quarters": (  # 2·floor(floor(0.75·floor((H + 1)/2))/3) beside floor(H/4): a factor below 1
        """
  - enc: conv2d 2 3x3 p1
  - p4: maxpool 4x4 s4
  - {from: enc}
  - conv2d 2 3x3 s2 p1
  - upsample 0.75
  - maxpool 3x3 s3
  - upsample 2
  - concat: [{from: p4}, identity]""",
        lambda x: (lambda e: cat(F.max_pool2d(e, 4, 4), up(F.max_pool2d(up(conv(e, s=2), 0.75), 3, 3))))(conv(x)),
    ),
}
WIDTHS = {"grow_apart": 4, "apart_by_two_and_a_half": 5, "fifths_by_two_and_a_half": 20}  # a width each accepts; else W


def _width(case: str) -> int:
    return WIDTHS.get(case, W)


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
        ("thirds_by_one_and_a_half", "H from 3 with H mod 6 in {0, 1, 3}"),
        ("fifths_by_two_and_a_half", "H from 5 with H mod 10 in {0, 1, 5}"),
        ("apart_by_two_and_a_half", "H in {2, 5, 7}"),
        ("down_by_three_quarters", "H from 8 with H mod 8 in {0, 1, 2, 3}"),
    ],
)
def test_the_accepted_sizes_are_described_as_for_any_partial_merge(case: str, text: str) -> None:
    report = archspec.check(_spec(case, _width(case)))
    assert text in report.accepted.describe()
    warning = report.warnings[0]
    assert "at some input sizes only" in warning.message and "floor(" in warning.message


def _works_at(forward: Callable[[torch.Tensor], torch.Tensor]) -> list[int]:
    return [h for h in HEIGHTS if _torch_works(forward, h, h)]


def test_a_factor_that_gives_a_floor_everywhere_merges_at_every_size() -> None:
    """upsample 0.5 is floor(H/2), as a 2×2 pool is: the same size at every H, no partial merge."""
    net = "\n  - enc: conv2d 2 3x3 p1\n  - p2: maxpool 2x2 s2\n  - {from: enc}\n  - upsample 0.5"
    net += "\n  - concat: [{from: p2}, identity]"
    assert _works_at(lambda x: (lambda e: cat(F.max_pool2d(e, 2, 2), up(e, 0.5)))(conv(x))) == list(range(2, 41))
    report = archspec.check(f"archspec: 1\nname: t\ninput: {{channels: 1, size: 17}}\nnetwork:{net}\n")
    assert report.warnings == [] and report.accepted.describe() == "2×2 and up"


def test_a_factor_that_is_not_an_exact_ratio_is_refused_where_it_must_be_compared() -> None:
    """floor(X·2.2) in floating point has no exact form: a located error naming the size, with a hint."""
    net = "\n  - enc: conv2d 2 3x3 p1\n  - maxpool 2x2 s2\n  - upsample 2.2\n  - concat: [{from: enc}, identity]"
    with pytest.raises(SpecError, match=r"cannot tell at which input sizes .*floor\(floor\(H/2\)·2.2\)") as e:
        archspec.check(f"archspec: 1\nname: t\ninput: {{channels: 1, size: 20}}\nnetwork:{net}\n")
    assert e.value.code == "shape-mismatch" and e.value.loc is not None and e.value.loc.line == 8
    assert "interpolate size_of=" in (e.value.hint or "")
    same = net.replace("concat: [{from: enc}, identity]", "concat: [identity, identity]")  # equal sizes: fine
    archspec.check(f"archspec: 1\nname: t\ninput: {{channels: 1, size: 20}}\nnetwork:{same}\n")


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


def test_torchscript_keeps_the_residues_after_a_factor_of_one_and_a_half(tmp_path: Path) -> None:
    from archspec.cli import main

    spec = tmp_path / "thirds.yaml"
    spec.write_text(_spec("thirds_by_one_and_a_half", 24))
    out = tmp_path / "thirds.ts"
    assert main(["export", str(spec), "-o", str(out)]) == 0
    scripted = torch.jit.load(str(out))
    accepted = []
    for h in range(1, 20):
        try:
            scripted(torch.zeros(1, 1, h, W))
        except Exception:  # noqa: BLE001 - TorchScript re-raises the guard's ValueError as its own error
            continue
        accepted.append(h)
    assert accepted == [h for h in range(1, 20) if _torch_works(CASES["thirds_by_one_and_a_half"][1], h, W)]


def test_the_periodic_form_is_torch_s_size_after_any_chain_of_windows_and_factors() -> None:
    """R·(H // P) + t[H mod P] (symbolic.Dim.periodic) against the sizes torch's own ops give, H from 1 to 40,
    over random chains of pools (ceil mode too), factors p/2^k and transposed convolutions."""
    import random

    from archspec.symbolic import Dim, Window, at

    rng = random.Random(30)
    factors = [0.5, 0.75, 1.25, 1.5, 2.0, 2.5, 3.0]
    for _ in range(40):
        dim, ops = Dim(0, 1), []
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(["pool", "scale", "stretch"])
            if kind == "pool":
                k, s = rng.randint(1, 3), rng.randint(1, 3)
                p, ceil = rng.randint(0, k // 2), rng.random() < 0.3
                dim = dim.window(Window(k, s, p, ceil=ceil))
                ops.append(lambda x, k=k, s=s, p=p, c=ceil: F.max_pool2d(x, k, s, p, ceil_mode=c))
            elif kind == "scale":
                f = rng.choice(factors)
                dim = dim.scaled(f)
                ops.append(lambda x, f=f: F.interpolate(x, scale_factor=f))
            else:
                s = rng.randint(2, 3)
                dim = dim.stretched(s, 0)  # kernel = stride, no padding: s·X
                ops.append(lambda x, s=s: F.conv_transpose2d(x, torch.ones(1, 1, s, 1), stride=(s, 1)))
        form = dim.periodic()
        assert form is not None, dim.formula()
        for h in HEIGHTS:
            x = torch.zeros(1, 1, h, 1)
            try:
                for op in ops:
                    x = op(x)
            except RuntimeError:
                continue
            if x.shape[2] >= 1:
                assert at(form, h) == x.shape[2], (dim.formula(), h)
