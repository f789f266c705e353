"""``torch.save(model)`` of a built model loads back (torch.fx traces the forward again on load: the
input guard must survive that) and computes the same outputs, guard included."""

from __future__ import annotations

import io

import pytest
import torch

import archspec

SPEC = """
archspec: 1
name: small
input: {channels: 3, size: [17, 17]}
network:
  stem: conv 8 3x3 s2 padding=same
  block:
    residual:
      body: [conv 8 3x3 p1, conv2d 8 3x3 p1, bn]
  pool: global_avgpool
  fc: linear 5
aux:
  side: {tap: stem, head: [global_avgpool, {fc: linear 5}]}
"""


def _round_trip(model: torch.nn.Module) -> torch.nn.Module:
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("optimize", [False, True])
def test_a_pickled_model_loads_back_with_its_input_guard(optimize: bool) -> None:
    model = archspec.build(SPEC).eval()
    if optimize:
        model = archspec.optimize(model)
    loaded = _round_trip(model).eval()
    x = torch.randn(2, 3, 17, 17)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="expected input of shape"):
        loaded(torch.randn(2, 4, 17, 17))
