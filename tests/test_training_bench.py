"""Training as lean as the references (issue 17, section 2): bytes autograd saves for backward, and
torch.compile(fullgraph=True) training the compiled model with eager's gradients. Sizes, not times:
the step times are bench/train_bench.py's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import archspec
from tests.paths import ROOT
from tests.references import DENSE_REFERENCES, SPECS, no_dropout, zoo_with_references

sys.path.insert(0, str(ROOT / "bench"))
import train_bench  # noqa: E402

TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"


def test_saved_bytes_counts_what_autograd_keeps() -> None:
    """By hand: a conv keeps its input (for the weight's gradient) and its weight; ReLU keeps its
    output, in place or not; a second view of a kept storage adds nothing."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, bias=False)
    x = torch.randn(2, 3, 8, 8)
    conv_out = 2 * 4 * 6 * 6 * 4
    for inplace in (False, True):
        act, par = train_bench.saved_bytes(nn.Sequential(conv, nn.ReLU(inplace=inplace)), x)
        assert act == x.nbytes + conv_out
        assert par == conv.weight.nbytes

    class Views(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # mul keeps its other factor: two views of x
            return (x[:, 0] * self.w[0] + x[:, 1] * self.w[1]).sum()

    act, par = train_bench.saved_bytes(Views(), x)
    assert act == x.nbytes and par == 0  # w's gradient needs x; x needs none, so w is not kept


@pytest.mark.slow
@pytest.mark.parametrize("name", [*zoo_with_references(), *sorted(DENSE_REFERENCES)])
def test_saved_for_backward_at_most_the_reference(name: str) -> None:
    model, ref = train_bench.same_weights(name, SPECS / f"{name}.yaml", torch.device("cpu"))
    x, _ = train_bench.input_of(model, 2, torch.device("cpu"))
    ours, ours_params = train_bench.saved_bytes(model, x)
    theirs, theirs_params = train_bench.saved_bytes(ref, x)
    assert ours <= theirs, f"{name}: {ours / 2**20:.1f} MiB of activations saved vs the reference's {theirs / 2**20:.1f}"
    assert ours_params == theirs_params


@pytest.mark.parametrize(
    "backend",
    [
        "aot_eager",  # dynamo's capture and AOTAutograd's forward/backward graphs, run by eager kernels: seconds
        pytest.param("inductor", marks=pytest.mark.slow),  # generated C++ kernels: minutes to compile on 2 cores
    ],
)
def test_torch_compile_fullgraph_trains_with_eager_gradients(backend: str) -> None:
    """Training mode with an auxiliary head, in-place ReLUs and a residual sum: one graph (fullgraph
    raises on a break), and the loss and every gradient as in eager mode (dropout off in both)."""
    torch.manual_seed(0)
    eager = archspec.build(TINY).train()
    no_dropout(eager)
    compiled_model = archspec.build(TINY).train()
    compiled_model.load_state_dict(eager.state_dict())
    no_dropout(compiled_model)
    x, target = torch.randn(8, 3, 32, 32), torch.randint(10, (8,))
    torch._dynamo.reset()
    compiled = torch.compile(compiled_model, fullgraph=True, backend=backend)
    for _ in range(2):  # the second step runs the cached graph with updated weights
        want = train_bench.training_loss(eager(x), target)
        got = train_bench.training_loss(compiled(x), target)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        want.backward()
        got.backward()
        grads = dict(compiled_model.named_parameters())
        for name, p in eager.named_parameters():
            torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)
        with torch.no_grad():
            for p in (*eager.parameters(), *compiled_model.parameters()):
                p -= 0.1 * p.grad
                p.grad = None
