"""`archspec export`: ONNX (checked, run by onnxruntime), torch.export and TorchScript files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from references import REFERENCES, SPECS, perturb_bn, zoo_with_references

import archspec
from archspec.cli import main
from archspec.errors import SpecError
from archspec.export import Sizes, _guard_failure, load_weights
from archspec.fileio import atomic_path

TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"


def onnx_run(path: Path, x: torch.Tensor, dynamic: bool = True) -> torch.Tensor:
    """The ONNX model's output for x (checked first); its batch is always symbolic, and so are its
    height and width when ``dynamic``."""
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ((batch, _, h, w),) = [i.shape for i in session.get_inputs()]
    assert isinstance(batch, str), f"batch dimension is fixed ({batch})"
    assert isinstance(h, str) == isinstance(w, str) == dynamic, (h, w)
    return torch.from_numpy(np.asarray(session.run(None, {"x": x.numpy()})[0]))


def _zoo_params() -> list:
    """Every zoo spec with a reference; a full-size ONNX export takes about a minute, so beyond
    Inception-v4 they are marked slow (CI runs them; `-m "not slow"` skips them locally)."""
    return [pytest.param(stem, marks=() if stem == "inception_v4" else pytest.mark.slow) for stem in zoo_with_references()]


@pytest.mark.slow
@pytest.mark.parametrize("stem", _zoo_params())
def test_onnx_of_zoo_spec_equals_reference(stem: str, tmp_path: Path) -> None:
    spec = SPECS / f"{stem}.yaml"
    report = archspec.check(spec)
    h, w = report.input_size
    torch.manual_seed(0)
    reference = REFERENCES[stem]().eval()
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    out = tmp_path / f"{stem}.onnx"
    assert main(["export", str(spec), "-o", str(out), "--weights", str(tmp_path / "ref.pt")]) == 0
    x = torch.randn(3, report.input_channels, h, w)  # not the export's example batch of 2
    with torch.no_grad():
        expected = reference(x)
    # 1e-4, relative to the logits' scale: randomly initialised networks with fresh BatchNorm
    # statistics let activations grow with depth (ResNet-152's logits reach 1e8), and fp32 rounding
    # grows with them; where logits are of order 1 (Inception-v4) this is the plain 1e-4.
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(onnx_run(out, x), expected, rtol=0, atol=1e-4 * scale)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """The tiny network with trained-looking BatchNorm statistics, saved as a state_dict."""
    torch.manual_seed(0)
    model = archspec.build(TINY)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 32, 32) * 2 + 0.5)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def _run(path: Path, x: torch.Tensor) -> torch.Tensor:
    if path.suffix == ".onnx":
        return onnx_run(path, x)
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()(x)
    return torch.jit.load(str(path))(x)


@pytest.mark.parametrize("suffix", [".onnx", ".pt2", ".ts"])
def test_every_format_runs_with_any_batch_and_size(
    suffix: str, tiny_weights: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    """issue 17 §3: the network takes any size from 3×3 up, and so does every exported file."""
    weights, model = tiny_weights
    out = tmp_path / f"tiny{suffix}"
    assert main(["export", str(TINY), "-o", str(out), "--weights", str(weights)]) == 0
    for batch, h, w in ((1, 32, 32), (5, 3, 3), (2, 35, 18)):
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            expected = model(x)
        assert expected.shape == (batch, 10)  # eval mode: the main output only, no aux heads
        torch.testing.assert_close(_run(out, x), expected, rtol=0, atol=1e-4)


def test_onnx_says_where_it_came_from(tmp_path: Path) -> None:
    """issue 17 §3: the ONNX model carries the spec's name, archspec's version, the input and the
    accepted input sizes as metadata (what Netron shows under the model's properties)."""
    import onnx

    out = tmp_path / "tiny.onnx"
    assert main(["export", str(TINY), "-o", str(out)]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    report = archspec.check(TINY)
    assert props["archspec_spec"] == report.name and props["archspec_version"] == archspec.__version__
    assert props["archspec_accepted_input_sizes"] == report.accepted.describe()
    assert props["archspec_params"] == str(report.params)
    assert props["archspec_spec_sha256"] == report.digest


def test_the_spec_digest_names_the_design_not_the_text(tmp_path: Path) -> None:
    """The digest in an export's metadata: the same for the same design written differently (comments,
    flow or block style, key order of a mapping's options), different for a changed network."""
    import hashlib

    text = TINY.read_text()
    reformatted = tmp_path / "other_name.yaml"
    reformatted.write_text("# the same network, with a comment\n" + text.replace("\n", "\n\n"))
    digest = archspec.check(TINY).digest
    assert len(digest) == 64 and digest != hashlib.sha256(text.encode()).hexdigest()  # not the file's bytes
    assert archspec.check(reformatted).digest == digest
    assert archspec.check(TINY, {"input.size": [64, 64]}).digest != digest


def test_torchscript_keeps_the_input_guard(tiny_weights: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    weights, _ = tiny_weights
    out = tmp_path / "tiny.ts"
    assert main(["export", str(TINY), "-o", str(out)]) == 0
    scripted = torch.jit.load(str(out))
    with pytest.raises(Exception, match="H >= 3 and W >= 3"):
        scripted(torch.randn(1, 3, 2, 2))


def test_weights_mismatch_names_the_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = archspec.build(TINY)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "ddp.pt")
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(TINY), "-o", str(out), "--weights", str(tmp_path / "ddp.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ddp.pt'}: error: weights in" in err
    assert "missing" in err and "features.0.conv.weight" in err and "unexpected" in err
    assert "module.features.0.conv.weight" in err and "DistributedDataParallel" in err
    assert not out.exists()


def test_weights_with_other_shapes(tmp_path: Path) -> None:
    state = archspec.build(TINY, {"network.fc": "linear 7"}).state_dict()
    torch.save({"model": state, "step": 3}, tmp_path / "ckpt.pt")  # a training checkpoint works too
    with pytest.raises(SpecError, match=r"fc.weight \(7, 28\) vs \(10, 28\)") as e:
        load_weights(archspec.build(TINY), tmp_path / "ckpt.pt")
    assert e.value.code == "weights"


def test_unreadable_weights(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(SpecError, match="cannot read weights"):
        load_weights(archspec.build(TINY), tmp_path / "junk.pt")
    with pytest.raises(SpecError, match="no such file"):
        load_weights(archspec.build(TINY), tmp_path / "absent.pt")


def test_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(TINY), "-o", str(tmp_path / "model.tflite")]) == 2
    assert "*.onnx" in capsys.readouterr().err


def test_optimize(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_weights: tuple[Path, torch.nn.Module]) -> None:
    weights, model = tiny_weights
    out = tmp_path / "opt.onnx"
    assert main(["export", str(TINY), "-o", str(out), "--optimize", "--weights", str(weights)]) == 0
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(onnx_run(out, x), model(x), rtol=0, atol=1e-4)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("exporter crashed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


# ---- issue 17 §3: exports keep the sizes the network accepts ------------------------------------------
def _dynamic_params() -> list:
    """resnet18 traced at 64×64 is quick; GoogLeNet (ceil-mode pools) and Inception-v3 (aux head,
    so traced at 299×299) take half a minute each."""
    return [
        pytest.param("resnet18", ["--set", "input.size=[64,64]"]),
        pytest.param("googlenet", [], marks=pytest.mark.slow),
        pytest.param("inception_v3", [], marks=pytest.mark.slow),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("stem", "options"), _dynamic_params())
def test_zoo_exports_take_every_accepted_size(stem: str, options: list[str], tmp_path: Path) -> None:
    """ONNX and .pt2 files of zoo networks run at the smallest size the network accepts and at a
    larger one, with the logits of the reference (torchvision) network at each."""
    spec = SPECS / f"{stem}.yaml"
    report = archspec.check(spec)
    lo_h, lo_w = report.accepted.min_size
    torch.manual_seed(0)
    reference = REFERENCES[stem]().eval()
    perturb_bn(reference)
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    for suffix in (".onnx", ".pt2"):
        out = tmp_path / f"{stem}{suffix}"
        assert main(["export", str(spec), "-o", str(out), "--weights", str(tmp_path / "ref.pt"), *options]) == 0
    program = torch.export.load(str(tmp_path / f"{stem}.pt2")).module()
    for h, w in ((lo_h, lo_w), (lo_h + 32, lo_w + 33)):
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            expected = reference(x)
        scale = max(1.0, expected.abs().max().item())  # as in the ONNX test above
        torch.testing.assert_close(onnx_run(tmp_path / f"{stem}.onnx", x), expected, rtol=0, atol=1e-4 * scale)
        torch.testing.assert_close(program(x), expected, rtol=0, atol=1e-4 * scale)
    with pytest.raises(Exception):  # noqa: B017, PT011 - torch's guard (an AssertionError today)
        program(torch.randn(1, 3, lo_h - 1, lo_w))
    _assert_nodes_named_after_modules(tmp_path / f"{stem}.onnx", archspec.build(spec))


def _assert_nodes_named_after_modules(path: Path, model: torch.nn.Module) -> None:
    """Every conv node of the ONNX graph is named after its module's path, and every conv of the
    network's main output has a node (the aux heads are not exported)."""
    import onnx

    convs = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    nodes = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    named = [name.rpartition("/")[0] for name in nodes]
    assert set(named) <= convs, sorted(set(named) - convs)[:5]
    assert len(set(named)) == len(nodes)  # one node per conv
    inference = model.inference() if hasattr(model, "inference") else model
    called = {n.target for n in inference.graph.nodes if n.op == "call_module"}
    assert set(named) == {c for c in convs if any(c == t or c.startswith(f"{t}.") for t in called)}


def test_onnx_nodes_carry_the_spec_s_paths(tmp_path: Path) -> None:
    import onnx

    out = tmp_path / "tiny.onnx"
    assert main(["export", str(TINY), "-o", str(out)]) == 0
    _assert_nodes_named_after_modules(out, archspec.build(TINY))
    names = {n.name for n in onnx.load(str(out)).graph.node}
    # ops that are no module (a scaled residual sum, a concat, a ReLU) are found through the fx graph
    assert {
        "features.1.concat/Concat",
        "features.2.add/Mul",
        "features.2.add/Add",
        "features.2.act/Relu",
        "features.4/MaxPool",
    } <= names, sorted(names)


PERIODIC = (
    "archspec: 1\nname: periodic\ninput: {channels: 3, size: [33, 33]}\nnetwork:\n"
    "  - concat: {a: conv2d 8 3x3 s2, b: conv2d 8 2x2 s2}\n  - global_avgpool\n  - flatten\n  - linear 5\n"
)


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_a_residue_class_exports_as_one(suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Branches that agree at odd sizes only (tests/test_miscompilations.py checks that set against
    torch): the export takes H = 2k + 3, every odd size from 3, and no note is printed."""
    spec = tmp_path / "periodic.yaml"
    spec.write_text(PERIODIC)
    assert archspec.check(spec).accepted.describe() == "odd H from 3, odd W from 3"
    model = archspec.build(spec).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / f"periodic{suffix}"
    assert main(["export", str(spec), "-o", str(out), "--weights", str(tmp_path / "w.pt")]) == 0
    err = capsys.readouterr().err
    assert "note:" not in err and "H from 3 in steps of 2, W from 3 in steps of 2" in err
    for h, w in ((3, 3), (35, 17)):
        x = torch.randn(2, 3, h, w)
        got = onnx_run(out, x) if suffix == ".onnx" else torch.export.load(str(out)).module()(x)
        with torch.no_grad():
            torch.testing.assert_close(got, model(x), rtol=0, atol=1e-5)
    if suffix == ".pt2":  # the program checks its input: an even size is refused, as the network refuses it
        with pytest.raises(Exception):  # noqa: B017, PT011 - torch's own error
            torch.export.load(str(out)).module()(torch.randn(1, 3, 4, 3))


# floor((H − 3)/4) + 1 == floor((H − 1)/4) + 1 at H ≡ 0 or 3 (mod 4): two classes, no one Dim
TWO_CLASSES = (
    "archspec: 1\nname: two\ninput: {channels: 3, size: [32, 28]}\nnetwork:\n"
    "  - concat: {a: conv2d 8 3x3 s4, b: conv2d 8 1x1 s4}\n  - global_avgpool\n  - flatten\n  - linear 5\n"
)
# a ceil-mode pool whose last window can start in the padding: the output size follows the rule at
# some sizes only, and the trace relies on the example's case
CEIL = (
    "archspec: 1\nname: ceil\ninput: {channels: 3, size: [20, 20]}\nnetwork:\n"
    "  - conv2d 4 3x3\n  - maxpool 2x2 s2 p1 ceil\n  - global_avgpool\n  - flatten\n  - linear 5\n"
)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (TWO_CLASSES, "the network accepts H from 3 with H mod 4 in {0, 3}"),
        (CEIL, "the trace relies on 2*(((-1) + H) // 2) < (-1) + H, which is false at H = 3"),
    ],
)
def test_sizes_the_export_cannot_keep_are_fixed_and_said(
    text: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    spec = tmp_path / "net.yaml"
    spec.write_text(text)
    report = archspec.check(spec)
    h, w = report.input_size
    model = archspec.build(spec).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "net.onnx"
    assert main(["export", str(spec), "-o", str(out), "--weights", str(tmp_path / "w.pt")]) == 0
    err = capsys.readouterr().err
    assert f"note: H is fixed at {h} in the export: {why}" in err
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["archspec_export_input_sizes"].startswith(f"H = {h}, ")
    assert f"H is fixed at {h} in the export: {why}" in props["archspec_export_notes"]
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        expected = model(x)
    if props["archspec_export_input_sizes"] == f"H = {h}, W = {w}":
        torch.testing.assert_close(onnx_run(out, x, dynamic=False), expected, rtol=0, atol=1e-5)


def test_the_ceil_rule_applies_where_the_guard_fails() -> None:
    """Independent truth for CEIL: torch's pool drops its last window (the rule the failing guard
    stands for) on the 1×1 map of a 3×3 input, not on the 18×18 map of the spec's 20×20."""
    pool = torch.nn.MaxPool2d(2, 2, padding=1, ceil_mode=True)
    for size, dropped in ((1, True), (18, False)):
        without_rule = -(-size // 2) + 1  # ceil((size + 2·1 − 2)/2) + 1
        assert (pool(torch.zeros(1, 1, size, size)).shape[-1] < without_rule) == dropped


class _Program:
    """What _guard_failure reads of an exported program: torch's guards, as code."""

    def __init__(self, *guards: str) -> None:
        self._guards_code = list(guards)


def test_guards_are_checked_at_every_planned_size() -> None:
    x = torch.zeros(2, 3, 64, 64)
    plan = Sizes([1, 1], [None, 100], [1, 1])
    assert _guard_failure(_Program("L['x'].size()[2] >= 1", "L['x'].size()[3] <= 100"), plan, x) is None
    failure = _guard_failure(_Program("L['x'].size()[2] != 3000"), plan, x)
    assert failure.axes == [0] and failure.why.endswith("H != 3000, which is false at H = 3000")
    assert failure.holds_from is None  # false past the first half of the sizes scanned: the axis is fixed
    odd = Sizes([1, 3], [None, None], [1, 2])  # W = 2k + 3
    assert _guard_failure(_Program("L['x'].size()[3] % 2 == 1"), odd, x) is None
    failure = _guard_failure(_Program("L['x'].size()[3] % 4 == 3"), odd, x)
    assert failure.axes == [1] and failure.why.endswith("false at W = 5, 9, 13 and 2045 more") and failure.holds_from is None


def test_a_guard_false_at_the_smallest_sizes_only_narrows_the_axis() -> None:
    """A feature map that must not be 1×1 (ShuffleNet-v2's trace asks this of its stride-32 map)."""
    x = torch.zeros(2, 3, 64, 64)
    failure = _guard_failure(_Program("1 + ((L['x'].size()[2] - 1) // 32) != 1"), Sizes([1, 1], [None, None], [1, 1]), x)
    assert failure.axes == [0] and failure.holds_from == 33
    assert failure.why.endswith("false at H = 1 to 32")
    plan = Sizes([1, 1], [None, None], [1, 1])
    plan.narrow(0, 17, "a")
    plan.narrow(0, 33, "b")
    assert plan.notes == ["H >= 1 is narrowed to H >= 33 in the export: b."] and plan.describe() == "H >= 33, W >= 1"


def test_a_torch_that_hides_its_guards_gets_no_dynamic_sizes() -> None:
    """The guards are read from a private attribute: without it nothing is checked, so both axes
    are fixed at the spec's size rather than claimed dynamic unchecked."""
    failure = _guard_failure(object(), Sizes([1, 1], [None, None], [1, 1]), torch.zeros(2, 3, 64, 64))
    assert failure is not None and failure.axes == [0, 1] and failure.holds_from is None
    assert "_guards_code" in failure.why


@pytest.mark.parametrize("suffix", [".onnx", ".pt2", ".ts"])
def test_layer_norm_per_pixel_linear_and_layer_scale_export(suffix: str, tmp_path: Path) -> None:
    """ConvNeXt's ops (tests/specs/tiny_layer_norm.yaml): permutes around the per-pixel layers and a
    tensor read from its module export to every format and compute what the compiled model does."""
    spec = Path(__file__).resolve().parent / "specs" / "tiny_layer_norm.yaml"
    torch.manual_seed(0)
    model = archspec.build(spec).eval()
    with torch.no_grad():  # layer scales and LayerNorm terms away from their start values
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / f"tiny{suffix}"
    assert main(["export", str(spec), "-o", str(out), "--weights", str(tmp_path / "w.pt")]) == 0
    for h, w in ((32, 28), (48, 60)):  # the spec's size and a larger one, another batch than the export's
        x = torch.randn(3, 3, h, w)
        with torch.no_grad():
            expected = model(x)
        torch.testing.assert_close(_run(out, x), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("suffix", [".onnx", ".pt2", ".ts"])
def test_exports_carry_no_machine_paths_and_repeat_byte_for_byte(
    suffix: str, tiny_weights: tuple[Path, torch.nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 26: no home directory, venv path or stack trace in any exported file; a zip archive's root
    folder is the file's own name; the same spec and weights give the same bytes twice; progress on
    stderr, none with -q."""
    import os
    import sys
    import zipfile

    weights, _ = tiny_weights
    spec = tmp_path / "specs" / TINY.name  # named by its absolute path, in a folder of its own
    spec.parent.mkdir()
    spec.write_text(TINY.read_text())
    files = []
    for i, quiet in enumerate(([], ["-q"])):
        out = tmp_path / f"run{i}" / f"tiny{suffix}"
        out.parent.mkdir()
        assert main(["export", str(spec.resolve()), "-o", str(out), "--weights", str(weights), *quiet]) == 0
        err = capsys.readouterr().err
        assert (err == "") == bool(quiet), err
        if not quiet:
            assert "archspec export: tracing" in err or suffix == ".ts"
            assert err.rstrip().splitlines()[-1].startswith(f"wrote {out}")
        files.append(out.read_bytes())
        if suffix != ".onnx":
            assert {n.split("/")[0] for n in zipfile.ZipFile(out).namelist()} == {"tiny"}
    data = files[0]
    places = {os.path.expanduser("~"), sys.prefix, os.path.realpath(sys.prefix), str(Path(torch.__file__).parent)}
    places |= {str(spec.parent.resolve()), str(weights.parent.resolve()), str(Path(archspec.__file__).resolve().parent)}
    for leak in places:
        assert leak.encode() not in data, leak
    assert b"stack_trace" not in data and b'File "' not in data
    if suffix == ".ts":
        # TorchScript renames a class it compiles a second time in one process (___torch_mangle_N, in file
        # names and code): two runs of `archspec export` are the same bytes, two exports in one process are not
        import io
        import re

        def unmangled(data: bytes) -> list[tuple[str, bytes]]:
            z = zipfile.ZipFile(io.BytesIO(data))
            return sorted(
                (re.sub(r"/___torch_mangle_\d+", "", n), re.sub(rb"[./]___torch_mangle_\d+", b"", z.read(n)))
                for n in z.namelist()
                if not n.endswith((".debug_pkl", "serialization_id"))
            )

        assert unmangled(files[0]) == unmangled(files[1])
    else:
        assert files[0] == files[1]


def test_same_padding_is_timm_s_at_every_small_size() -> None:
    """runtime.pad_same, written without max() where it never applies (so that a traced size stays a
    floor division: tf_efficientnet_b0's export trace), pads as timm's pad_same, for every kernel,
    stride, dilation and size in a grid."""
    from timm.layers.padding import pad_same as timm_pad_same

    from archspec.runtime import pad_same

    for k in range(1, 8):
        for s in range(1, 5):
            for d in range(1, 4):
                for size in range(1, 49):
                    x = torch.arange(float(size * 2)).reshape(1, 1, size, 2)
                    ours = pad_same(x, (k, 1), (s, 1), (d, 1))
                    assert torch.equal(ours, timm_pad_same(x, [k, 1], [s, 1], [d, 1])), (k, s, d, size)
                    assert torch.equal(pad_same(x.transpose(2, 3), (1, k), (1, s), (1, d)), ours.transpose(2, 3))


def test_onnx_file_is_the_message_onnx_ir_writes(tmp_path: Path) -> None:
    """export.write_onnx writes the weights one tensor at a time (protobuf's merge of concatenated
    messages), each tensor's bytes from its own memory behind hand-written length prefixes; onnx
    reads back exactly the message onnx_ir serialises from the same model, and the model keeps its
    initializers."""
    import onnx
    import onnx_ir as ir

    from archspec.export import write_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    program = torch.onnx.export(net, (torch.randn(2, 3, 16, 16),), dynamo=True, optimize=False, verbose=False)
    assert program is not None
    graph = program.model.graph
    # beyond the exporter's torch tensors: tensors of numpy (one large enough for a three-byte
    # length), bfloat16, empty, a scalar with metadata, and the kinds onnx_ir serialises its own way
    extra = [
        ir.Tensor(np.arange(100_000, dtype=np.float32)),
        ir.Tensor(np.full((2, 3), 0x3F80, dtype=np.uint16), dtype=ir.DataType.BFLOAT16),  # 1.0
        ir.Tensor(np.zeros((0, 4), dtype=np.int64)),
        ir.Tensor(np.array(7, dtype=np.int32), doc_string="seven", metadata_props={"k": "v"}),
        ir.StringTensor([b"a", b"bc"], shape=ir.Shape([2])),
        ir.PackedTensor(np.array([0x21, 0x43], dtype=np.uint8), ir.DataType.INT4, shape=[4]),
    ]
    for k, tensor in enumerate(extra):
        graph.register_initializer(ir.Value(name=f"extra_{k}", const_value=tensor))
    names = list(graph.initializers)
    write_onnx(program.model, tmp_path / "net.onnx")
    assert list(graph.initializers) == names and len(names) >= 4 + len(extra)
    assert onnx.load(str(tmp_path / "net.onnx")) == ir.serde.serialize_model(program.model)
    onnx.checker.check_model(str(tmp_path / "net.onnx"), full_check=True)
