"""`archspec summary`: parameter and MAC counts against the compiled model and fvcore, formulas, JSON.

Independent truth: the compiled model's own parameters (sum of numel), fvcore's FlopCountAnalysis
(which traces the compiled model and counts one flop per multiply-accumulate of convolutions and
linears, plus batch-norm elementwise work), and counts computed by hand for a small network.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sympy

from archspec.cli import main
from archspec.summary import combine, summarize
from tests.paths import ROOT, SPECS

ZOO = sorted(SPECS.glob("*.yaml"))


@pytest.mark.fast_params("resnet18", "googlenet")
@pytest.mark.parametrize("spec", ZOO, ids=lambda p: p.stem)
def test_params_and_macs_agree_with_the_model_and_fvcore(spec):
    torch = pytest.importorskip("torch")
    fvcore = pytest.importorskip("fvcore.nn")
    import archspec

    s = summarize(spec)
    model = archspec.build(spec).eval()
    assert s.params == sum(p.numel() for p in model.parameters())
    h, w = s.report.input_size
    x = torch.randn(1, s.report.input_channels, h, w)
    with torch.no_grad():
        by_op = fvcore.FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_operator()
    # convolutions and linear layers, as archspec counts MACs (fvcore also counts BatchNorm and pools)
    flops = sum(v for k, v in by_op.items() if k in ("conv", "linear", "addmm", "matmul"))
    assert abs(s.macs - flops) <= 0.01 * flops, (s.macs, by_op)


SMALL = """
archspec: 1
name: small
input: {channels: 3, size: [32, 32]}
blocks:
  pair:
    concat:
      a: conv 8 1x1
      b: [conv 4 1x1, conv 8 3x3 p1]
network:
  - conv 16 3x3              # 30×30
  - pair * 2
  - global_avgpool
  - fc: linear 10
"""


def test_counts_by_hand(write_spec):
    s = summarize(write_spec(SMALL))
    # conv 16 3x3 on 3 channels: weights 16·3·9, BN 2·16; MACs 432 per output pixel of 30×30
    stem = 16 * 3 * 9
    pair1 = (8 * 16 + 16) + (4 * 16 + 8) + (8 * 4 * 9 + 16)  # input 16 channels
    pair2 = (8 * 16 + 16) + (4 * 16 + 8) + (8 * 4 * 9 + 16)  # output of pair is 8 + 8 = 16 channels
    fc = 16 * 10 + 10
    assert [b.params for b in s.blocks] == [stem + 32, pair1, pair2, 0, fc]
    assert s.params == stem + 32 + pair1 + pair2 + fc
    per_pixel_pair = 8 * 16 + 4 * 16 + 8 * 4 * 9
    assert [b.macs for b in s.blocks] == [stem * 900, per_pixel_pair * 900, per_pixel_pair * 900, 0, 160]
    assert s.macs == stem * 900 + 2 * per_pixel_pair * 900 + 160
    assert s.blocks[1].macs_formula == f"{per_pixel_pair}·(H - 2)·(W - 2)"
    assert s.macs_formula == f"{stem + 2 * per_pixel_pair}·(H - 2)·(W - 2) + 160"


def _evaluate(formula: str, h: int, w: int) -> int:
    H, W = sympy.symbols("H W", integer=True, positive=True)  # noqa: N806
    return int(sympy.sympify(formula.replace("·", "*"), locals={"H": H, "W": W}).subs({H: h, W: w}))


@pytest.mark.parametrize("spec", ZOO, ids=lambda p: p.stem)
def test_macs_formulas_give_the_macs(spec):
    s = summarize(spec)
    h, w = s.report.input_size
    for b in s.blocks:
        assert _evaluate(b.macs_formula, h, w) == b.macs, b.path
    assert _evaluate(s.macs_formula, h, w) == s.macs


def test_macs_formulas_hold_at_other_sizes():
    base = summarize(SPECS / "inception_v4.yaml")
    for h, w in [(75, 75), (331, 331), (300, 517)]:
        other = summarize(SPECS / "inception_v4.yaml", {"input.size": [h, w]})
        for a, b in zip(base.blocks, other.blocks, strict=True):
            assert a.macs_formula == b.macs_formula
            assert _evaluate(a.macs_formula, h, w) == b.macs, b.path
        assert _evaluate(base.macs_formula, h, w) == other.macs
    # the formula of a 3x3 conv with stride 2 and no padding, by hand: Cout·Cin·9 MACs per output pixel
    assert base.blocks[0].macs_formula == "864·floor((H - 1)/2)·floor((W - 1)/2)"


def test_combine_collects_like_terms():
    assert combine(["3·floor(H/2)·floor(W/2)", "4·floor(H/2)·floor(W/2) + 5", "7"]) == "7·floor(H/2)·floor(W/2) + 12"
    assert combine(["0", "0"]) == "0"
    # '+' inside a factor is not a term boundary (ResNet's floor((H + 3)/4) after a padded stem)
    f = "2·floor((H + 3)/4)·floor((W + 3)/4)"
    assert combine([f, f, "1"]) == "4·floor((H + 3)/4)·floor((W + 3)/4) + 1"


def test_json_keys_and_ops(capsys):
    assert main(["summary", str(SPECS / "inception_v4.yaml"), "--json", "--ops"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert isinstance(d["params"], int) and isinstance(d["macs"], int)
    assert d["input_size"] == [299, 299] and d["min_input_size"] == [75, 75] and d["output_shape"] == [1000]
    blocks = d["blocks"]
    assert isinstance(blocks, list) and blocks[6]["path"] == "features.6" and blocks[6]["label"] == "Inception-A"
    assert blocks[6]["output_shape"] == [384, 35, 35]
    assert sum(b["params"] for b in blocks) == d["params"]
    for b in blocks:
        assert sum(o["params"] for o in b["ops"]) == b["params"]
        assert sum(o["macs"] for o in b["ops"]) == b["macs"]


def test_table_and_overrides(capsys):
    assert main(["summary", str(SPECS / "inception_v4.yaml"), "--set", "input.size=[331,331]", "--ops"]) == 0
    out = capsys.readouterr().out
    assert "output at 331×331" in out and "features.6.branch1.1.conv" in out
    assert "42,679,816" in out  # timm's inception_v4 has 42,679,816 parameters


def test_bad_override_exits_2(capsys):
    assert main(["summary", str(SPECS / "inception_v4.yaml"), "--set", "inptu.size=[331,331]"]) == 2
    err = capsys.readouterr().err
    assert "[override]" in err and "did you mean 'input'?" in err


def test_aux_heads_are_listed_but_not_in_the_macs_total(write_spec):
    spec = write_spec(
        SMALL
        + """
aux:
  side:
    tap: "1"
    head: [global_avgpool, linear 5]
"""
    )
    s = summarize(spec)
    side = s.blocks[-1]
    assert side.train_only and side.params == 16 * 5 + 5 and side.macs == 80
    assert s.macs == sum(b.macs for b in s.blocks if not b.train_only)
    assert s.params == sum(b.params for b in s.blocks)


def test_summary_does_not_import_torch():
    code = (
        "import sys; from archspec.cli import main; "
        f"rc = main(['summary', {str(SPECS / 'inception_v4.yaml')!r}, '--json']); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr


# ---- width and activation memory -----------------------------------------------------------------
@pytest.mark.parametrize("ops", [False, True], ids=["blocks", "ops"])
def test_default_table_fits_100_columns(capsys, ops):
    for spec in ZOO:
        assert main(["summary", str(spec)] + (["--ops"] if ops else [])) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(len(line) for line in lines) <= 100, (spec.name, max(lines, key=len))
    assert main(["summary", str(SPECS / "inception_v4.yaml"), "--formulas"]) == 0
    out = capsys.readouterr().out
    assert "MACs (formula in H, W)" in out and "floor((H - 19)/8)" in out


CHAIN = """
archspec: 1
name: chain
input: {channels: 3, size: [8, 8]}
network:
  - conv2d 4 1x1
  - relu
  - global_avgpool
  - fc: linear 2
"""


def test_activation_memory_by_hand(write_spec, capsys):
    s = summarize(write_spec(CHAIN), batch=2)
    m = s.memory
    # training keeps the conv's input (2·3·8·8 floats), the ReLU's output (in place over the conv's, 2·4·8·8),
    # the linear's input (2·4); the mean keeps nothing. Weights: conv 4·3, linear 2·4 (biases are not kept)
    assert m.train_saved == 4 * 2 * (3 * 64 + 4 * 64 + 4)
    assert m.train_saved_weights == 4 * (4 * 3 + 2 * 4)
    # inference: the input and the conv's output are alive together, then only smaller tensors
    assert m.inference_peak == 4 * 2 * (3 * 64 + 4 * 64)
    assert main(["summary", str(write_spec(CHAIN)), "--json", "--batch", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["memory"] == {
        "batch": 2,
        "train_saved_bytes": m.train_saved,
        "train_saved_weight_bytes": m.train_saved_weights,
        "inference_peak_bytes": m.inference_peak,
    }


@pytest.mark.parametrize(
    "name", ["resnet18", "googlenet", "googlenet_paper", "inception_v4", "inception_resnet_v2", "convnext_tiny"]
)
def test_saved_for_backward_matches_autograd(name):
    """What autograd's saved_tensors_hooks see in a training forward of the compiled model, each storage once."""
    torch = pytest.importorskip("torch")
    import archspec

    spec = SPECS / f"{name}.yaml"
    batch = 2
    expected = summarize(spec, batch=batch).memory
    model = archspec.build(spec).train()
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, tuple[int, bool]] = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = (storage.nbytes(), storage.data_ptr() in weights)
        return t

    h, w = summarize(spec).report.input_size
    x = torch.randn(batch, 3, h, w)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    activations = sum(n for n, is_weight in seen.values() if not is_weight)
    kept_weights = sum(n for n, is_weight in seen.values() if is_weight)
    assert abs(expected.train_saved - activations) <= 0.1 * activations, (expected.train_saved, activations)
    assert abs(expected.train_saved_weights - kept_weights) <= 0.1 * kept_weights
