"""fuse_conv_add writing the residual sum into the shortcut's memory (issue 28 §1): oneDNN's in-place
kernel where the graph shows nothing reads the shortcut afterwards and the call finds a whole tensor of
the output's shape and layout; otherwise no fusion (or, at the call, the out-of-place kernel). Checked
against the eager model it was made from and, for ResNet-18, against torchvision's network with the
same weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import archspec  # noqa: E402
from archspec.inference import optimize  # noqa: E402
from archspec.passes import onednn  # noqa: E402
from archspec.passes.fuse_add import ConvAdd  # noqa: E402
from tests.references import REFERENCES, SPECS, perturb_bn  # noqa: E402

BLOCKS = """
archspec: 1
name: blocks
input: {channels: 3, size: [16, 16]}
blocks:
  basic:
    residual:
      body: [conv 8 3x3 p1, conv2d: conv2d 8 3x3 p1, bn]
      then: relu
network:
  stem: [conv 8 3x3 p1, maxpool 2x2 s2]
  down:
    residual:
      body: [conv 8 3x3 s2 p1, conv2d: conv2d 8 3x3 p1]
      shortcut: {proj: conv2d 8 1x1 s2}
      then: relu
  layer: basic * 2
  pool: global_avgpool
  fc: linear 5
"""

# the stem's map is read by the concat after the sum: it must not be written over
READ_AFTER = """
archspec: 1
name: read_after
input: {channels: 3, size: [16, 16]}
network:
  stem: conv 8 3x3 p1
  both:
    concat:
      - residual: {body: [conv 8 3x3 p1, conv2d: conv2d 8 3x3 p1], then: relu}
      - identity
  pool: global_avgpool
  fc: linear 5
"""

# a view of the stem's map (the slice) is taken before the sum and read after it, by the concat
VIEW_BEFORE = """
archspec: 1
name: view_before
input: {channels: 3, size: [16, 16]}
network:
  stem: conv 8 3x3 p1
  both:
    concat:
      - channel_slice 0 4
      - residual: {body: [conv 8 3x3 p1, conv2d: conv2d 8 3x3 p1], then: relu}
  pool: global_avgpool
  fc: linear 5
"""

# the body is one conv reading the shortcut itself: conv(x) + x written into x would overwrite pixels the conv reads
ONE_CONV_BODY = """
archspec: 1
name: one_conv_body
input: {channels: 3, size: [16, 16]}
network:
  stem: conv 8 3x3 p1
  res: {residual: {body: {c: conv2d 8 3x3 p1}, then: relu}}
  pool: global_avgpool
  fc: linear 5
"""

# the shortcut is the model's input (a channels_last input is not even copied by the layout step)
ON_INPUT = """
archspec: 1
name: on_input
input: {channels: 3, size: [16, 16]}
network:
  block: {residual: {body: [conv 3 3x3 p1, conv2d: conv2d 3 3x3 p1], then: relu}}
  pool: global_avgpool
  fc: linear 5
"""


def _model(write_spec, text: str) -> nn.Module:
    torch.manual_seed(0)
    model = archspec.build(write_spec(text)).eval()
    perturb_bn(model)
    return model


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    assert ((got - want).abs().max() / want.abs().max()).item() <= 1e-4


@pytest.fixture
def spy(monkeypatch) -> list[bool]:
    """Calls of the in-place kernel, each True where the result is the shortcut's own memory."""
    if not onednn.IN_PLACE_SUM:
        pytest.skip("this torch has no in-place fused conv")
    calls: list[bool] = []
    real = onednn.conv_add_pointwise_

    def counted(conv, x, other, activation):
        out = real(conv, x, other, activation)
        calls.append(out.data_ptr() == other.data_ptr())
        return out

    monkeypatch.setattr(onednn, "conv_add_pointwise_", counted)
    return calls


def test_residual_sums_are_written_into_the_shortcut(write_spec, spy) -> None:
    model = _model(write_spec, BLOCKS)
    opt = optimize(model)
    fused = [m for m in opt.modules() if isinstance(m, ConvAdd)]
    assert len(fused) == 3 and all(m.in_place and m.activation == "relu" for m in fused)
    assert not any(n.op == "call_function" and n.target in (torch.relu, torch.relu_) for n in opt.graph.nodes)
    x = torch.randn(2, 3, 16, 16)
    x0 = x.clone()
    with torch.no_grad():
        _close(opt(x), model(x))
    assert spy == [True, True, True]
    assert torch.equal(x, x0)
    with torch.enable_grad():  # autograd on: the public conv2d, add, relu_
        _close(opt(x), model(x))


@pytest.mark.parametrize(
    "spec", [READ_AFTER, VIEW_BEFORE, ONE_CONV_BODY], ids=["read_after", "view_read_after", "conv_reads_shortcut"]
)
def test_a_shortcut_read_after_the_sum_is_not_written(write_spec, spy, spec) -> None:
    """Read after the sum directly, through a view taken before it, or by the conv itself (written in
    place, the first two were 0.062 and the third 0.025 off; both found by reading the pass)."""
    model = _model(write_spec, spec)
    opt = optimize(model)
    assert not any(isinstance(m, ConvAdd) for m in opt.modules())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        _close(opt(x), model(x))
    assert spy == []


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_models_input_is_never_written(write_spec, spy, layout) -> None:
    model = _model(write_spec, ON_INPUT)
    opt = optimize(model)
    assert not any(isinstance(m, ConvAdd) for m in opt.modules())
    x = torch.randn(2, 3, 16, 16).to(memory_format=layout)
    x0 = x.clone()
    with torch.no_grad():
        _close(opt(x), model(x))
    assert torch.equal(x, x0) and spy == []


def test_a_shortcut_that_does_not_fit_is_summed_out_of_place(write_spec, spy) -> None:
    """Called on a view, on a map in another layout, or on its own input, the fused conv leaves ``other`` as it is."""
    model = _model(write_spec, BLOCKS)
    opt = optimize(model)
    conv = next(m for m in opt.modules() if isinstance(m, ConvAdd) and m.stride == (1, 1))
    x = torch.randn(2, 8, 4, 4).to(memory_format=torch.channels_last)
    wide = torch.randn(2, 16, 4, 4).to(memory_format=torch.channels_last)
    for other in (wide[:, :8], torch.randn(2, 8, 4, 4), x):  # a channel slice; channels-first; the input itself
        kept = other.clone()
        with torch.no_grad():
            want = torch.relu(other + nn.functional.conv2d(x, conv.weight, conv.bias, padding=conv.padding))
            got = conv(x, other)
        _close(got, want)
        assert torch.equal(other, kept)
    assert spy == []


def test_optimized_resnet18_matches_torchvision() -> None:
    """The zoo's ResNet-18, optimized with its sums written in place, against torchvision's with the same weights."""
    pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = archspec.build(SPECS / "resnet18.yaml").eval()
    perturb_bn(model)
    ref = REFERENCES["resnet18"]().eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    opt = optimize(model)
    assert sum(isinstance(m, ConvAdd) and m.in_place for m in opt.modules()) == 8
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        _close(opt(x), ref(x))
        _close(opt(x), ref(x))  # a second call: nothing the first wrote is read again
