"""``optimize`` around oneDNN's faults (archspec/passes/onednn_faults.py): the smallest specs the
differential tester found, each compared with the plain compiled model computed in float64 (an
independent reference: the plain model's own convs run contiguous, where oneDNN is right)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.inference import optimize  # noqa: E402
from archspec.passes.onednn_faults import ContiguousConv  # noqa: E402

# seed 808906 (docs/testing.md): a 1×1 map into a conv of one input channel, stride 1 × 2, whose
# output is one column wide; optimize gave garbage (channels_last) or wrong values (fused ReLU)
SEED_808906 = """archspec: 1
name: m
input: {channels: 1, size: 35}
network: {right: adaptive_avgpool 1x1, body: 'conv 11 3x5 s1,2 padding=[2,2]'}
"""


def _reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    import copy

    double = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return double(x.double())


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("fuse_act", [True, False])
def test_seed_808906_optimize_gives_the_networks_values(channels_last: bool, fuse_act: bool) -> None:
    torch.manual_seed(0)
    model = archspec.build(SEED_808906).eval()
    opt = optimize(model, channels_last=channels_last, fuse_act=fuse_act)
    assert isinstance(opt.get_submodule("body.conv"), ContiguousConv)
    for size in (35, 12, 1):  # the map into the conv is 1×1 at every size
        x = torch.randn(2, 1, size, size)
        want = _reference(model, x)
        with torch.no_grad():
            got = opt(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_wide_maps_keep_the_layout_after_the_guarded_conv() -> None:
    torch.manual_seed(0)
    spec = (
        "archspec: 1\nname: m\ninput: {channels: 1, size: 35}\nnetwork:\n  right: adaptive_avgpool 6x3\n"
        "  body: 'conv 11 3x5 s1,2 padding=[2,2]'\n  more: conv 4 3x3 p1\n"
    )
    model = archspec.build(spec).eval()
    opt = optimize(model)
    x = torch.randn(2, 1, 20, 20)
    with torch.no_grad():
        got = opt(x)
    torch.testing.assert_close(got.double(), _reference(model, x), rtol=1e-4, atol=1e-4)


CRASH = """archspec: 1
name: m
input: {channels: 3, size: [9, 9]}
network:
  - adaptive_avgpool 7x1
  - {op: conv, out: 4, kernel: [3, 1], stride: 2, padding: 1, dilation: 2, groups: 1}
"""


def test_a_dilated_one_wide_kernel_does_not_crash_optimize(tmp_path: Path) -> None:
    """On torch 2.14's oneDNN this conv, channels_last, ends the process (a segmentation fault):
    run it in a child process, so that a regression is a failure and not the end of the test run."""
    spec = tmp_path / "m.yaml"
    spec.write_text(CRASH)
    code = f"""
import copy, torch, archspec
from archspec.inference import optimize
torch.manual_seed(0)
model = archspec.build({str(spec)!r}).eval()
opt = optimize(model)
assert tuple(opt.get_submodule("1.conv").dilation) == (2, 1)
x = torch.randn(2, 3, 9, 9)
with torch.no_grad():
    want = copy.deepcopy(model).double()(x.double())
    got = opt(x)
torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)
print("ok")
"""
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])
