"""A dilated max pool's windows can step over a small map and sample only padding (torch gives -inf):
the accepted input sizes must leave those sizes out (differential tester, seed 3001683)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.errors import SpecError
from archspec.ops import REGISTRY
from archspec.symbolic import Window


def _torch_defined(x: int, k: int, s: int, p: int, d: int, ceil: bool) -> bool:
    """torch's own answer: the pool's output at extent x is non-empty and has no -inf."""
    try:
        y = F.max_pool2d(torch.zeros(1, 1, x, 1), (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=ceil)
    except RuntimeError:  # torch refuses an empty output
        return False
    return y.numel() > 0 and bool(torch.isfinite(y).all())


def test_least_input_matches_torch_for_every_small_window() -> None:
    op = REGISTRY["maxpool"]
    for k, s, p, d, ceil in itertools.product(range(1, 6), range(1, 4), range(3), range(1, 4), (False, True)):
        if 2 * p > k:
            continue
        params = op.Params(kernel=(k, k), stride=(s, s), padding=(p, p), dilation=(d, d), ceil=ceil)
        least = op.least_input(params)[0]
        for x in range(1, 16):
            ours = x >= least and Window(k, s, p, d, ceil).apply(x) >= 1
            assert ours == _torch_defined(x, k, s, p, d, ceil), (k, s, p, d, ceil, x)


SPEC = """\
archspec: 1
name: net
input: {channels: 3, size: %d}
network: {pool: 'maxpool kernel=[2,2] p1 d2'}
"""


def test_check_refuses_the_size_at_which_every_window_is_padding() -> None:
    assert tuple(archspec.check(SPEC % 34).min_input_size) == (2, 2)
    with pytest.raises(SpecError, match="input"):
        archspec.check(SPEC % 1)
    model = archspec.build(SPEC % 2).eval()
    assert torch.isfinite(model(torch.randn(1, 3, 2, 2))).all()
