"""The compiled (and the optimized) model under torch.compile and torch.export."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402

TINY = """
archspec: 1
name: tiny
input: {channels: 3, size: [16, 16]}
blocks:
  mixed:
    concat:
      a: conv 4 1x1
      b: [conv 4 1x1, conv 4 3x3 p1]
      c: [avgpool 3x3 p1, conv 4 1x1]
  res:
    residual: {body: [conv 4 1x1, conv2d: conv2d 12 1x1], scale: 0.5, then: relu}
network:
  features: [conv 8 3x3 s2, mixed, res]
  pool: global_avgpool
  fc: linear 5
"""


@pytest.fixture
def tiny(write_spec):
    torch.manual_seed(0)
    return archspec.build(write_spec(TINY)).eval(), torch.randn(2, 3, 16, 16)


def test_torch_compile_fullgraph(tiny) -> None:
    """Dynamo traces the generated forward in one graph (no graph breaks), and inductor runs it."""
    model, x = tiny
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


def test_torch_export(tiny) -> None:
    model, x = tiny
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-5, atol=1e-6)


def test_torch_export_of_the_optimized_model(tiny) -> None:
    model, x = tiny
    opt = archspec.optimize(model)
    with torch.no_grad():
        exported = torch.export.export(opt, (x,))
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-4, atol=1e-5)
