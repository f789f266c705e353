"""`archspec compile`: the generated .py stands alone, passes ruff, and equals the reference network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from references import REFERENCES, SPECS, assert_same_outputs, zoo_with_references

import archspec
from archspec.cli import main
from archspec.compile import class_name_of
from archspec.ops import REGISTRY
from tests.paths import ROOT

TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"

# Runs in a fresh interpreter: isolated mode (no PYTHONPATH, no script folder on sys.path) and
# archspec blocked outright, since the venv may have it installed in editable mode.
CHILD = r"""
import importlib.util
import sys

sys.modules["archspec"] = None
try:
    import archspec  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("archspec is importable")
import torch

path, cls, weights, inputs, outputs = sys.argv[1:]
spec = importlib.util.spec_from_file_location("generated", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
leaked = sorted(m for m in sys.modules if m.startswith("archspec") and sys.modules[m] is not None)
assert not leaked, leaked
model = getattr(module, cls)()
model.load_state_dict(torch.load(weights), strict=True)
model.eval()
with torch.no_grad():
    torch.save(model(torch.load(inputs)), outputs)
"""


def ruff(path: Path) -> subprocess.CompletedProcess[str]:
    """ruff with the project's rules (line length 120, pyflakes, pycodestyle, isort, bugbear, pyupgrade)."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(path)],
        capture_output=True,
        text=True,
    )


def compile_to(spec: Path, out: Path, *extra: str) -> None:
    assert main(["compile", str(spec), "-o", str(out), *extra]) == 0


def run_standalone(tmp_path: Path, source: Path, cls: str, state: dict, x: torch.Tensor) -> torch.Tensor:
    torch.save(state, tmp_path / "weights.pt")
    torch.save(x, tmp_path / "x.pt")
    args = [str(source), cls, str(tmp_path / "weights.pt"), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")]
    done = subprocess.run([sys.executable, "-I", "-c", CHILD, *args], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return torch.load(tmp_path / "y.pt")


@pytest.mark.fast_params("resnet18", "googlenet")
@pytest.mark.parametrize("stem", zoo_with_references())
def test_standalone_file_equals_reference(stem: str, tmp_path: Path) -> None:
    spec = SPECS / f"{stem}.yaml"
    out = tmp_path / f"{stem}.py"
    compile_to(spec, out)
    text = out.read_text()
    assert "archspec" not in "\n".join(line for line in text.splitlines() if line.startswith(("import", "from")))
    lint = ruff(out)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    torch.manual_seed(0)
    reference = REFERENCES[stem]().eval()
    report = archspec.check(spec)
    h, w = report.input_size
    x = torch.randn(1, report.input_channels, h, w)
    with torch.no_grad():
        expected = reference(x)
    got = run_standalone(tmp_path, out, class_name_of(report.name), reference.state_dict(), x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def _load(path: Path, cls: str) -> torch.nn.Module:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, cls)()


def test_aux_heads_come_back_in_training_mode(tmp_path: Path) -> None:
    out = tmp_path / "tiny.py"
    compile_to(TINY, out)
    assert ruff(out).returncode == 0, ruff(out).stdout
    text = out.read_text()
    assert text.count("class Res(nn.Module):") == 1 and text.count("Res(),") == 2  # `res * 2`: one class
    compiled = archspec.build(TINY)
    generated = _load(out, "TinyAux")
    assert list(generated.state_dict()) == list(compiled.state_dict())
    generated.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    for training in (True, False):
        compiled.train(training)
        generated.train(training)
        torch.manual_seed(1)  # same dropout masks
        a = compiled(x)
        torch.manual_seed(1)
        b = generated(x)
        if training:
            assert isinstance(b, dict) and set(b) == {"logits", "aux1"} == set(a)
            for k in a:
                torch.testing.assert_close(b[k], a[k])
        else:
            torch.testing.assert_close(b, a)


def test_the_guard_refuses_small_inputs(tmp_path: Path) -> None:
    out = tmp_path / "tiny.py"
    compile_to(TINY, out)
    model = _load(out, "TinyAux").eval()
    with pytest.raises(ValueError, match=r"H >= 3 and W >= 3, got \(1, 3, 2, 2\)"):
        model(torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 4, 32, 32))


def test_one_guard_for_the_compiled_model_and_the_file(tmp_path: Path) -> None:
    """The file's guard is the compiled model's own (runtime.check_input): the same inputs refused with the same words."""
    out = tmp_path / "tiny.py"
    compile_to(TINY, out)
    generated, compiled = _load(out, "TinyAux").eval(), archspec.build(TINY).eval()
    for x in (torch.randn(1, 3, 2, 2), torch.randn(1, 4, 32, 32), torch.randn(3, 32, 32)):
        messages = []
        for model in (generated, compiled):
            with pytest.raises(ValueError) as e:
                model(x)
            messages.append(str(e.value))
        assert messages[0] == messages[1]
    assert "def check_input(" in out.read_text()


def test_the_guard_names_each_bound_it_has() -> None:
    from archspec.runtime import check_input

    with pytest.raises(ValueError) as e:
        check_input(torch.zeros(1, 3, 9, 4), 3, 1, 1, 8, None)  # a maximum on H only
    assert str(e.value) == "expected input of shape (N, 3, H, W) with H >= 1 and W >= 1, H <= 8, got (1, 3, 9, 4)"


@pytest.mark.parametrize("name", sorted(n for n, op in REGISTRY.items() if op.layer is not None))
def test_the_registry_layer_computes_what_the_function_does(name: str) -> None:
    """``Op.layer`` (what the file writes for a stateless op at a numbered slot) built from the keyword
    arguments of ``Op.function`` gives what the function gives, on maps with odd sizes and negative values."""
    op = REGISTRY[name]
    required = {"kernel": [3, 2], "groups": 2, "size": [3, 2]}  # a value for each required field of those ops
    params = op.Params.model_validate({k: required[k] for k, f in op.Params.model_fields.items() if f.is_required()})
    fn, kwargs = op.function(params)
    layer = getattr(torch.nn, op.layer)(**kwargs)
    x = torch.randn(2, 4, 9, 7)
    torch.testing.assert_close(layer(x), fn(x, **kwargs), rtol=0, atol=0)


def test_generated_file_works_under_torch_export(tmp_path: Path) -> None:
    out = tmp_path / "tiny.py"
    compile_to(TINY, out)
    model = _load(out, "TinyAux").eval()
    x = torch.randn(2, 3, 32, 32)
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}})
    y = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(program.module()(y), model(y))


def test_compile_checks_weights_strictly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = archspec.build(TINY).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["fc.bias"]
    torch.save(state, tmp_path / "w.pt")
    assert main(["compile", str(TINY), "-o", str(tmp_path / "t.py"), "--weights", str(tmp_path / "w.pt")]) == 2
    err = capsys.readouterr().err
    assert "missing 1 key(s): fc.bias" in err and "unexpected 1 key(s): extra.weight" in err and "[weights]" in err
    assert not (tmp_path / "t.py").exists()


def test_compile_prints_to_stdout_without_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(TINY)]) == 0
    text = capsys.readouterr().out
    compile(text, "tiny.py", "exec")  # valid Python
    assert "class TinyAux(nn.Module):" in text


SPEC_FILES = sorted((Path(__file__).resolve().parent / "specs").glob("*.yaml")) + sorted(SPECS.glob("*.yaml"))


@pytest.mark.fast_params("tiny_aux", "tiny_layer_norm", "tiny_shapes", "resnet18", "googlenet_paper", "shufflenet_v2_x1_0")
@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_generated_file_computes_what_the_compiled_model_does(spec: Path, tmp_path: Path) -> None:
    """Over every spec (zoo and test specs): same keys, same outputs in both modes, ruff-clean."""
    from archspec.api import analyze
    from archspec.codegen import generate
    from archspec.compile import compile_graph

    report = analyze(spec)

    graph = report.graph
    out = tmp_path / f"{spec.stem}.py"
    out.write_text(generate(graph, str(spec)))
    lint = ruff(out)
    assert lint.returncode == 0, lint.stdout
    torch.manual_seed(0)
    compiled = compile_graph(graph)
    generated = _load(out, class_name_of(report.name))
    assert list(generated.state_dict()) == list(compiled.state_dict())
    generated.load_state_dict(compiled.state_dict(), strict=True)
    h, w = report.train_min_input_size  # training mode may need more (Inception-v3's aux head)
    assert_same_outputs(compiled, generated, torch.randn(2, report.input_channels, *_legal(report, h + 1, w + 2)))


def _legal(report: object, h: int, w: int) -> tuple[int, int]:
    """(h, w) if the network accepts it in both modes, else the spec's own size."""
    if report.accepted.ok(h, w) and report.train_accepted.ok(h, w):  # type: ignore[attr-defined]
        return h, w
    return tuple(report.input_size)  # type: ignore[attr-defined, return-value]


def test_a_module_cannot_also_contain_modules(write_spec) -> None:
    """An unnamed nested list restarts numbering at the root: its conv2d would be named '0', like the
    container of the first layer's conv and bn; that must be a located error, not a lost layer."""
    path = write_spec(
        "archspec: 1\nname: clash\ninput: {channels: 3, size: [16, 16]}\nnetwork:\n  - conv 4 3x3\n  - [conv2d 4 1x1, relu]\n"
    )
    with pytest.raises(archspec.SpecError, match=r"module '0' would clash with module '0.conv'") as e:
        archspec.check(path)
    assert (e.value.line, e.value.column, e.value.code) == (6, 6, "name")


def _compiled_and_generated(text: str, tmp_path: Path) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    from archspec.api import analyze
    from archspec.codegen import generate

    report = analyze(text)

    graph = report.graph
    out = tmp_path / "gen.py"
    out.write_text(generate(graph, "spec.yaml"))
    assert ruff(out).returncode == 0, ruff(out).stdout
    compiled = archspec.build(text).eval()
    generated = _load(out, class_name_of(report.name)).eval()
    generated.load_state_dict(compiled.state_dict(), strict=True)  # same keys, same shapes
    return compiled, generated, out.read_text()


def test_identity_as_the_last_op_compiles(tmp_path: Path) -> None:
    """Issue 13, finding 11: `[conv2d 4 1x1, identity]` made code generation raise StopIteration."""
    text = "archspec: 1\nname: ident\ninput: {channels: 3, size: [8, 8]}\nnetwork: [conv2d 4 1x1, identity]\n"
    compiled, generated, _ = _compiled_and_generated(text, tmp_path)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), compiled(x), rtol=0, atol=0)


def test_identity_inside_a_shared_block_class_reads_its_own_input(tmp_path: Path) -> None:
    """Issue 13, finding 11: in a block used twice, the shared class took an identity's value for the
    block's input. Here `a` ends in an identity (a's conv output, 4 channels) and `c` is the block
    input: a concat of 4 + 3 + 2 channels, and the second instance's conv takes 9 channels in."""
    text = (
        "archspec: 1\nname: ident_block\ninput: {channels: 3, size: [8, 8]}\n"
        "blocks:\n  b:\n    concat:\n      a: [conv2d 4 1x1, identity]\n      c: [identity]\n"
        "      d: [conv2d 2 1x1, identity, relu]\n"
        "network: [conv2d 3 1x1, b, conv2d 3 1x1, b, global_avgpool]\n"
    )
    compiled, generated, source = _compiled_and_generated(text, tmp_path)
    assert source.count("class B(nn.Module):") == 1  # the two instances share one class
    assert compiled.state_dict()["2.weight"].shape == (3, 9, 1, 1)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), compiled(x), rtol=0, atol=0)
    # and the compiled model computes what the spec says, written out by hand
    sd = compiled.state_dict()

    def block(t: torch.Tensor, first: str) -> torch.Tensor:
        a = torch.nn.functional.conv2d(t, sd[f"{first}.a.0.weight"], sd[f"{first}.a.0.bias"])
        d = torch.relu(torch.nn.functional.conv2d(t, sd[f"{first}.d.0.weight"], sd[f"{first}.d.0.bias"]))
        return torch.cat([a, t, d], dim=1)

    with torch.no_grad():
        t = torch.nn.functional.conv2d(x, sd["0.weight"], sd["0.bias"])
        t = block(t, "1")
        t = torch.nn.functional.conv2d(t, sd["2.weight"], sd["2.bias"])
        t = block(t, "3")
        torch.testing.assert_close(compiled(x), t.mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)


def test_a_stateless_op_at_a_slot_inside_a_block_instance_stays_a_call(tmp_path: Path) -> None:
    """Found by the differential tester (seed 44058202): a one-branch concat named '0' puts its pool at
    `c.0.0`, inside the block instance `c.0`, which the file writes as a class; the pool became a layer
    of that instance's module tree that the class never makes, and the forward called `self.c[0].0(x)`."""
    spec = tmp_path / "slot.yaml"
    spec.write_text(
        "archspec: 1\nname: net\ninput: {channels: 2, size: [21, 9]}\n"
        "blocks:\n  blk0:\n    chain: [relu, drop_path p=0.1]\n"
        "network:\n- c:\n  - blk0\n  - concat:\n      '0': [avgpool 5x5]\n- blk0\n"
    )
    out = tmp_path / "slot.py"
    compile_to(spec, out)
    torch.manual_seed(0)
    compiled = archspec.build(spec)
    generated = _load(out, "Net")
    generated.load_state_dict(compiled.state_dict(), strict=True)
    assert_same_outputs(compiled, generated, torch.randn(2, 2, 21, 9))


def test_a_layer_scale_inside_a_block_class_is_the_class_s_own(tmp_path: Path) -> None:
    """Found by the differential tester (seed 2000071): a layer scale (a tensor, not a layer) inside a
    block instance that the file writes as a class made the writer look for `b.0.stem` in the top-level
    module tree, which stops at the instance (KeyError). The class makes and reads its own tensor."""
    text = (
        "archspec: 1\nname: tiny_net\ninput: {channels: 2, size: 8}\n"
        "blocks:\n  blk0:\n    chain:\n    - stem:\n        chain: {math: layer_scale 0.5, body: relu}\n        repeat: 2\n"
        "network:\n  b:\n    concat:\n    - {block: blk0}\n    - blk0\n"
    )
    compiled, generated, source = _compiled_and_generated(text, tmp_path)
    assert source.count("class Blk0(nn.Module):") == 1
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), compiled(x), rtol=0, atol=0)
        # by hand: each instance is relu(0.5·relu(0.5·x)) = 0.25·relu(x), and the concat stacks two
        torch.testing.assert_close(compiled(x), torch.cat([0.25 * x.relu()] * 2, dim=1))


def test_a_tensor_beside_a_block_instance_at_its_path_keeps_the_instance_inline(tmp_path: Path) -> None:
    """Found by the differential tester (seed 64602045): a residual's shortcut layer scale, unnamed in a list at
    ``mix``, is the tensor ``mix.0`` in the module of the block instance its body is (``mix``). The instance's
    class would not make that tensor, and the network's forward read it under the class (KeyError): an
    instance whose module holds tensors its own ops do not read is written inline."""
    text = (
        "archspec: 1\nname: fuzz_case\ninput: {channels: 1, size: 40}\n"
        "blocks:\n  stem_block0:\n    params: {s0: 0.1}\n    residual: {body: layer_scale, scale: $s0}\n"
        "  shared1:\n    chain:\n      p: {block: stem_block0}\n"
        "network:\n- - shared1\n  - mix:\n    - residual:\n        body: shared1\n        shortcut: [layer_scale]\n"
    )
    compiled, generated, source = _compiled_and_generated(text, tmp_path)
    assert "class Shared1(nn.Module):" not in source
    with torch.no_grad():
        for p, v in zip(compiled.parameters(), (0.5, -2.0, 3.0), strict=True):
            p.fill_(v)
        generated.load_state_dict(compiled.state_dict(), strict=True)
        x = torch.randn(2, 1, 40, 40)
        torch.testing.assert_close(generated(x), compiled(x), rtol=0, atol=0)
        # by hand: y = x + 0.1·0.5·x, then y + 0.1·(-2)·y + 3·y
        y = 1.05 * x
        torch.testing.assert_close(compiled(x), y + 0.1 * -2.0 * y + 3.0 * y)
