"""`archspec export`: ONNX (checked, run by onnxruntime), torch.export and TorchScript files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from references import REFERENCES, SPECS, zoo_with_references

import archspec
from archspec.cli import main
from archspec.errors import SpecError
from archspec.export import load_weights
from archspec.fileio import atomic_path

TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"


def onnx_run(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (batch, *_), = [i.shape for i in session.get_inputs()]
    assert isinstance(batch, str), f"batch dimension is fixed ({batch})"
    return torch.from_numpy(np.asarray(session.run(None, {"x": x.numpy()})[0]))


def _zoo_params() -> list:
    """Every zoo spec with a reference; a full-size ONNX export takes about a minute, so beyond
    Inception-v4 they are marked slow (CI runs them; `-m "not slow"` skips them locally)."""
    return [pytest.param(stem, marks=() if stem == "inception_v4" else pytest.mark.slow)
            for stem in zoo_with_references()]


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
def test_every_format_runs_with_any_batch(suffix: str, tiny_weights: tuple[Path, torch.nn.Module],
                                          tmp_path: Path) -> None:
    weights, model = tiny_weights
    out = tmp_path / f"tiny{suffix}"
    assert main(["export", str(TINY), "-o", str(out), "--weights", str(weights)]) == 0
    for batch in (1, 5):
        x = torch.randn(batch, 3, 32, 32)
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
    assert f"{tmp_path / 'ddp.pt'}:0:0: error: weights in" in err
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


def test_optimize(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_weights: tuple[Path, torch.nn.Module]
                  ) -> None:
    weights, model = tiny_weights
    out = tmp_path / "opt.onnx"
    code = main(["export", str(TINY), "-o", str(out), "--optimize", "--weights", str(weights)])
    if importlib.util.find_spec("archspec.optimize") is None:
        assert code == 2
        assert "--optimize needs archspec.optimize" in capsys.readouterr().err
        assert not out.exists()
    else:
        assert code == 0
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
    x = torch.randn(3, 3, 32, 28)  # the spec's size (the ONNX file's), another batch than the export's
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(_run(out, x), expected, rtol=0, atol=1e-4)
