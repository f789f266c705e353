"""Which input sizes a network accepts (archspec/sizes.py), against PyTorch run on every size.

Each spec here has a hand-written PyTorch twin; the twin runs at a size exactly when archspec
accepts that size, and archspec's compiled model refuses every other size up front.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import archspec
from archspec.symbolic import Dim, Window

FLATTEN = """
archspec: 1
name: flat_head
input: {channels: 3, size: [20, 20]}
network:
  - conv2d 4 3x3 s2                # 9 at 20
  - maxpool 3x3 s2 ceil            # 4
  - avgpool 3x3                    # 2: grows with the input, so flatten fixes it
  - flatten
  - linear 5
"""


class FlattenTwin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 2)
        self.fc = nn.Linear(4 * 2 * 2, 5)  # what the spec's size gives

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.max_pool2d(self.conv(x), 3, 2, ceil_mode=True), 3, 1)
        return self.fc(torch.flatten(x, 1))


MERGE = """
archspec: 1
name: parity
input: {channels: 3, size: [16, 16]}
blocks:
  reduce:
    concat:
      conv: conv2d 4 3x3 s2 p1       # floor((X + 1)/2)
      pool: maxpool 3x3 s2 ceil      # floor(X/2): equal for even X only
network:
  - conv2d 3 3x3 p1
  - reduce
  - global_avgpool
  - linear 5
"""


class MergeTwin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.conv = nn.Conv2d(3, 4, 3, 2, 1)
        self.fc = nn.Linear(7, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([self.conv(x), F.max_pool2d(x, 3, 2, ceil_mode=True)], 1)
        return self.fc(x.mean((2, 3)))


def _runs(model: nn.Module, h: int, w: int) -> bool:
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, h, w))
        return True
    except (RuntimeError, ValueError):
        return False


@pytest.mark.parametrize(("text", "twin"), [(FLATTEN, FlattenTwin), (MERGE, MergeTwin)], ids=["flatten", "merge"])
def test_accepted_sizes_are_where_pytorch_runs(text: str, twin: type[nn.Module]) -> None:
    report = archspec.check(text)
    model = archspec.build(text).eval()
    ref = twin().eval()
    accepted = [s for s in range(1, 60) if report.accepted.ok(s, s)]
    assert accepted == [s for s in range(1, 60) if _runs(ref, s, s)]
    assert accepted and report.min_input_size == (accepted[0], accepted[0])
    for s in range(1, 60):
        assert _runs(model, s, s) == (s in accepted), s
    for h in (accepted[0] - 1, accepted[-1] + 1):  # H and W are independent
        assert not report.accepted.ok(h, accepted[0]) and not _runs(ref, h, accepted[0])


def test_flatten_range_is_reported() -> None:
    report = archspec.check(FLATTEN)
    # by hand: 20 → 9 → 4 → 2; the last is 2 exactly for 17 <= H <= 20
    lo, hi = report.min_input_size[0], report.max_input_size[0]
    assert (lo, hi) == (17, 20)
    assert all(FlattenTwin()(torch.randn(1, 3, s, s)).shape == (1, 5) for s in (lo, hi))
    assert report.accepted.describe() == f"{lo}×{lo} to {hi}×{hi}"
    assert "fixed at 2×2" in [r for r in report.rows if r.label == "flatten"][0].shape.formula()


def test_spec_size_where_branches_disagree_is_refused() -> None:
    with pytest.raises(archspec.SpecError) as err:
        archspec.check(MERGE.replace("size: [16, 16]", "size: [17, 17]"))
    # issue 13, finding 6: a size outside the accepted set is the merge's shape-mismatch, naming both branches
    assert err.value.code == "shape-mismatch" and "17×17" in err.value.message and " vs " in err.value.message


def test_branches_that_grow_apart_are_a_mismatch() -> None:
    stride_mistake = MERGE.replace("pool: maxpool 3x3 s2 ceil", "pool: maxpool 3x3 p1")  # forgot s2
    with pytest.raises(archspec.SpecError) as err:
        archspec.check(stride_mistake)
    assert err.value.code == "shape-mismatch" and "spatial sizes differ" in err.value.message


def test_spec_size_below_training_minimum_is_refused() -> None:
    from tests.paths import SPECS

    with pytest.raises(archspec.SpecError) as err:
        archspec.check(SPECS / "inception_v3.yaml", {"input.size": [75, 75]})
    assert err.value.code == "input-too-small" and "training mode" in err.value.message


@pytest.mark.parametrize(
    "windows",
    [
        [Window(3, 2)],
        [Window(3, 2, 1)],
        [Window(7, 2, 3), Window(3, 2, ceil=True)],
        [Window(3, 2, ceil=True), Window(3, 2, ceil=True), Window(7)],
        [Window(3, 2, 1, ceil=True)],
    ],
)
def test_input_range_by_brute_force(windows: list[Window]) -> None:
    d = Dim(0, 1)
    for win in windows:
        d = d.window(win)

    def size(x: int) -> int:
        for win in windows:
            x = win.apply(x)
        return x

    for value in (1, 2, 5):
        lo, hi = d.input_range(value)
        assert [x for x in range(1, 300) if size(x) == value] == list(range(lo, hi + 1))
