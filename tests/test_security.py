"""A spec can never run code, hang or crash the tool (issue 19).

- Names that become Python identifiers or module paths follow one anchored pattern and may not
  shadow what nn.Module, torch.fx, the compiled model or the generated forward use.
- Free text (labels, the spec's file name) reaches generated code only as an escaped literal: a
  generated file is imported in a fresh interpreter and must run nothing and read back the text.
- Inputs are bounded: non-regular files, alias bombs and deep nesting in --set values, nested lists.
- Every remaining misuse ends in one located SpecError (exit 2) or, for API misuse, a TypeError.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.fx as fx
import torch.nn as nn

import archspec
from archspec.cli import main
from archspec.language.model import CODEGEN_NAMES, MODULE_ATTRIBUTES
from tests.paths import ROOT
from tests.references import assert_same_outputs

TINY = ROOT / "tests" / "specs" / "tiny_aux.yaml"
V4 = ROOT / "specs" / "inception_v4.yaml"

# ---- names ---------------------------------------------------------------------------------------


def test_reserved_module_names_cover_torch() -> None:
    """The torch-free list of refused names holds every public attribute of the classes a compiled
    network is built from (read here from torch itself)."""
    public = set()
    for cls in (nn.Module, nn.ModuleDict, nn.Sequential, nn.ModuleList, fx.GraphModule):
        public |= {a for a in dir(cls) if not a.startswith("_")}
    public |= {a for a in vars(nn.Module()) if not a.startswith("_")}
    model = archspec.build(TINY)
    public |= {a for a in dir(model) if not a.startswith("_")} - set(dict(model.named_children()))
    assert public <= MODULE_ATTRIBUTES, sorted(public - MODULE_ATTRIBUTES)


def _spec(network: str, extra: str = "") -> str:
    return f"archspec: 1\nname: t\ninput: {{channels: 3, size: [8, 8]}}\n{extra}network:\n{network}"


REFUSED_EVERYWHERE = [
    "forward",
    "training",
    "to",
    "state_dict",
    "parameters",
    "cuda",
    "eval",
    "type",
    "register_buffer",
    "add_module",
    "__init__",
    "__class__",
    "_modules",
    "__dict__",
    "keys",
    "items",
    "values",
    "update",
    "pop",
    "class",
    "None",
    "True",
    "import",
    "lambda",
    "code",
    "graph",
    "inference",
]


@pytest.mark.parametrize("name", REFUSED_EVERYWHERE)
def test_names_that_shadow_python_or_nn_module_are_refused(name: str) -> None:
    # quoted, so that each reaches the name rule as text (unquoted, YAML reads True as a boolean: a schema error)
    nested = _spec(f"  f:\n    concat:\n      '{name}': conv2d 4 1x1\n      b: conv2d 4 1x1\n")
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(nested)
    assert (e.value.line, e.value.column, e.value.code) == (7, 7, "name"), e.value.format()
    top = _spec(f"  - '{name}': conv2d 4 1x1\n")
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(top)
    assert (e.value.line, e.value.column, e.value.code) == (5, 5, "name"), e.value.format()


@pytest.mark.parametrize("name", sorted(CODEGEN_NAMES - {"input"}))
def test_names_of_the_forward_are_refused_at_the_top_level(name: str) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(_spec(f"  {name}: conv2d 4 1x1\n  g: global_avgpool\n"))
    assert (e.value.line, e.value.column, e.value.code) == (5, 3, "name")
    aux = _spec("  f: conv2d 4 1x1\n  g: global_avgpool\n") + f"aux:\n  {name}: {{tap: f, head: [global_avgpool]}}\n"
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(aux)
    assert (e.value.line, e.value.code) == (8, "name")


@pytest.mark.parametrize("name", sorted(CODEGEN_NAMES - {"input"}))
def test_a_forward_name_on_an_empty_branch_through_an_unnamed_item_names_no_value(name: str) -> None:
    """Through an unnamed list item a branch's name reaches the top level; empty, it names no value of the
    forward and is accepted (differential tester, seeds 4300774 and five others); with an op it is refused."""
    empty = _spec(f"  - concat:\n      {name}: []\n      b: conv2d 4 1x1\n")
    model = archspec.build(empty).eval()
    x = torch.randn(1, 3, 8, 8)
    assert model(x).shape[1] == 3 + 4
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(_spec(f"  - concat:\n      {name}: [conv2d 4 1x1]\n      b: conv2d 4 1x1\n"))
    assert (e.value.line, e.value.column, e.value.code) == (6, 7, "name"), e.value.format()


def _load(path: Path, cls: str) -> nn.Module:
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, cls)()


def _same_in_both(text: str, tmp_path: Path, stem: str) -> None:
    """build and compile agree: same state_dict keys, same outputs in train and eval mode."""
    from archspec.api import analyze
    from archspec.codegen import generate, standalone_class_name

    report = analyze(text)

    graph = report.graph
    out = tmp_path / f"{stem}.py"
    out.write_text(generate(graph, "spec.yaml"))
    compiled = archspec.build(text)
    generated = _load(out, standalone_class_name(report.name))
    assert list(generated.state_dict()) == list(compiled.state_dict())
    generated.load_state_dict(compiled.state_dict(), strict=True)
    assert_same_outputs(compiled, generated, torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("name", ["input", "torch", "nn", "F", "len", "super", "x", "output", "self"])
def test_names_that_python_allows_build_and_compile(name: str, tmp_path: Path) -> None:
    """Names of builtins and imports are fine as module names: keys stay as written, and both the
    compiled model and the standalone file compute the same (x, output, self only nested)."""
    top = name if name not in CODEGEN_NAMES - {"input", "torch", "nn", "F"} else f"{name}_"
    text = _spec(
        f"  {top}: conv2d 4 1x1\n  f:\n    concat:\n      {name}: [conv2d 4 1x1, relu]\n      b: relu\n  g: global_avgpool\n",
        extra="",
    )
    text += f"aux:\n  a_{name}: {{tap: f, head: [global_avgpool, linear 2]}}\n"
    _same_in_both(text, tmp_path, f"n_{name}")
    assert f"f.{name}.0.weight" in archspec.build(text).state_dict()
    if name not in CODEGEN_NAMES:  # an aux head of that name: its value in the forward must not shadow
        aux = _spec("  f: conv2d 4 1x1\n  g: global_avgpool\n")
        aux += f"aux:\n  {name}: {{tap: f, head: [global_avgpool, linear 2]}}\n"
        _same_in_both(aux, tmp_path, f"a_{name}")


@pytest.mark.parametrize("network", ["f", "none", "object"])
def test_class_names_never_shadow_imports_or_keywords(network: str, tmp_path: Path) -> None:
    text = (
        f"archspec: 1\nname: {network}\ninput: {{channels: 3, size: [8, 8]}}\n"
        "blocks:\n  f: {chain: [avgpool 3x3 p1, conv2d 3 1x1]}\n  none: {chain: [maxpool 3x3 p1, relu]}\n"
        "network: [f, f, none, none, global_avgpool]\n"
    )
    if network == "none":
        with pytest.raises(archspec.SpecError, match="Python keyword"):
            archspec.check(text)
        return
    _same_in_both(text, tmp_path, f"c_{network}")


def test_a_hostile_aux_name_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The aux key of issue 19 is refused by check, so neither build nor compile ever sees it."""
    key = 'a" + str(getattr(__import__("os"), "system")("touch PWNED")) + "b'
    text = _spec("  f: conv2d 4 1x1\n  g: global_avgpool\n") + f"aux:\n  '{key}': {{tap: f, head: [global_avgpool]}}\n"
    monkeypatch.chdir(tmp_path)
    for call in (archspec.check, archspec.build):
        with pytest.raises(archspec.SpecError) as e:
            call(text)
        assert e.value.code == "name" and e.value.line == 8
    assert not (tmp_path / "PWNED").exists()


# ---- free text reaches generated code only escaped -----------------------------------------------

HOSTILE = [
    'X"""; __import__("os").system("touch PWNED"); """',
    "Y'''; __import__('os').system('touch PWNED'); '''",
    'ends in a quote"',
    '"starts with one',
    'back\\slash \\""" and \\',
    "new\nline\r\nand tab\t and NUL \x00 and ESC \x1b[31m",
    "\u2028line separator\x85 and ×, é, 漢",
    "{self} %s {0} \\N{BULLET}",
]

CHILD = r"""
import importlib.util, json, sys
path, cls = sys.argv[1:3]
spec = importlib.util.spec_from_file_location("generated", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import torch
model = getattr(module, cls)()
block = type(getattr(model, "0"))
for training in (True, False):
    model.train(training)
    model(torch.randn(1, 3, 8, 8))
print(json.dumps({"module": module.__doc__, "block": block.__doc__}))
"""


@pytest.mark.fast_params("text0", "text1")
@pytest.mark.parametrize("index", range(len(HOSTILE)), ids=lambda i: f"text{i}")
def test_free_text_reaches_generated_code_only_escaped(index: int, tmp_path: Path) -> None:
    label = HOSTILE[index]
    # the file name carries hostile text too (no '/' and no NUL: those cannot be in a file name),
    # and a lone surrogate, as undecodable bytes in a file name give one
    file_text = HOSTILE[(index + 1) % len(HOSTILE)].replace("/", "_").replace("\x00", "0") + "\udcff"
    folder = tmp_path / "work"
    folder.mkdir()
    spec = folder / f"{file_text}.yaml"
    spec.write_text(
        "archspec: 1\nname: hostile\ninput: {channels: 3, size: [8, 8]}\n"
        f"doc: {json.dumps(label)}\n"
        f"blocks:\n  b:\n    label: {json.dumps(label)}\n    doc: {json.dumps(label)}\n"
        "    chain: [conv2d 3 1x1, relu]\n"
        "network: [b, b, global_avgpool]\n"
    )
    out = folder / "generated.py"
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    assert main(["check", str(spec)]) == 0
    done = subprocess.run(
        [sys.executable, "-I", "-B", "-c", CHILD, str(out), "Hostile"], cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    docs = json.loads(done.stdout)
    assert sorted(p.name for p in folder.iterdir()) == sorted([spec.name, out.name])  # nothing was created
    assert docs["block"] == f"{label}: block `b` of the spec."
    assert f"Generated by archspec {archspec.__version__} from {spec}; it needs only torch." in docs["module"]


def test_check_output_escapes_control_characters(capsys: pytest.CaptureFixture[str], write_spec) -> None:
    path = write_spec(
        "archspec: 1\nname: t\ninput: {channels: 3, size: [8, 8]}\n"
        'blocks:\n  b: {label: "\\e[2J\\e]0;owned\\a red", chain: [conv2d 3 1x1]}\n'
        "network: [b, global_avgpool]\n"
    )
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b]0;owned\\x07 red" in out


# ---- bounded work --------------------------------------------------------------------------------


def test_non_regular_files_are_refused_before_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/dev/zero"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # no writer: a plain open would block for ever
    assert main(["check", str(fifo)]) == 2
    assert "not a regular file" in capsys.readouterr().err
    weights = tmp_path / "weights.pt"
    os.mkfifo(weights)
    assert main(["compile", str(TINY), "-o", str(tmp_path / "t.py"), "--weights", str(weights)]) == 2
    assert "weights.pt is not a regular file" in capsys.readouterr().err


def test_spec_files_are_read_up_to_the_limit(tmp_path: Path) -> None:
    from archspec.fileio import read_limited

    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 101)
    assert read_limited(big, 101) == b"#" * 101
    with pytest.raises(archspec.SpecError, match="larger than 100 bytes") as e:
        read_limited(big, 100)
    assert e.value.code == "limit"


BOMB = (
    "[&a [x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], "
    "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
    "[*f,*f,*f,*f,*f,*f,*f,*f,*f]]"
)


def test_set_values_are_bounded_like_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(V4), "--set", f"network={BOMB}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--set network:1:") and "[yaml-unsafe]" in err
    assert main(["check", str(V4), "--set", "doc=" + "[" * 5000 + "]" * 5000]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--set doc:1:") and "[yaml-unsafe]" in err and "Traceback" not in err
    assert main(["check", str(V4), "--set", "doc=!!python/object:os.system ls"]) == 2
    assert "[yaml-unsafe]" in capsys.readouterr().err


def test_python_override_values_are_bounded() -> None:
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(archspec.SpecError, match="deeper than") as e:
        archspec.check(V4, {"doc": deep})
    assert e.value.file == "--set doc"
    loop: list = []
    loop.append(loop)
    with pytest.raises(archspec.SpecError):
        archspec.check(V4, {"doc": loop})
    with pytest.raises(archspec.SpecError, match="of type type cannot"):
        archspec.check(V4, {"doc": object})


def test_nested_unnamed_lists_expand(tmp_path: Path) -> None:
    """20,000 nested one-op lists: every op gets its own node (the id search used to be quadratic)."""
    n = 20_000
    text = _spec("  - [" + ", ".join(["[relu]"] * n) + "]\n  - global_avgpool\n")
    report = archspec.check(text)
    assert sum(1 for _, d in report.graph.records() if d.op == "relu") == n


def test_node_ids_are_found_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: n nested lists that all give their op the same path look up a bounded
    number of candidate ids per op (the search used to restart at suffix 1: n²/2 lookups)."""
    from archspec.graph import naming

    lookups = [0]

    class Counting(set):
        def __contains__(self, item: object) -> bool:
            lookups[0] += 1
            return super().__contains__(item)

    init = naming.Names.__init__

    def counting_init(self: naming.Names) -> None:
        init(self)
        self._ids = Counting(self._ids)

    monkeypatch.setattr(naming.Names, "__init__", counting_init)
    n = 2000
    archspec.check(_spec("  - [" + ", ".join(["[relu]"] * n) + "]\n  - global_avgpool\n"))
    assert 0 < lookups[0] <= 4 * n


def test_compile_never_runs_a_layer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Writing the file decides from the registry which layer stands for a stateless op: it runs no
    layer and makes no tensor of data, so a 16384×16384 spec allocates nothing of its size (it once took
    gigabytes, then failed)."""
    calls: list[str] = []
    real_randn, real_call = torch.randn, torch.nn.Module.__call__

    def randn(*shape: int, **kwargs: object) -> torch.Tensor:
        calls.append(f"randn{shape}")
        return real_randn(*shape, **kwargs)

    def call(module: torch.nn.Module, *args: object, **kwargs: object) -> object:
        calls.append(type(module).__name__)
        return real_call(module, *args, **kwargs)

    monkeypatch.setattr(torch, "randn", randn)
    monkeypatch.setattr(torch.nn.Module, "__call__", call)
    spec = tmp_path / "big.yaml"
    spec.write_text(
        "archspec: 1\nname: big\ninput: {channels: 3, size: [16384, 16384]}\n"
        "network:\n  - conv2d 8 3x3 p1\n  - concat: {a: [avgpool 3x3 p1, conv2d 8 1x1], b: conv2d 8 1x1}\n"
        "  - global_avgpool\n"
    )
    assert main(["compile", str(spec), "-o", str(tmp_path / "big.py")]) == 0
    assert "nn.AvgPool2d(3, stride=1, padding=1)" in (tmp_path / "big.py").read_text()  # the registry's layer
    assert calls == []


def test_export_refuses_a_run_over_the_activation_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text(
        "archspec: 1\nname: big\ninput: {channels: 3, size: [8192, 8192]}\n"
        "network: [conv2d 8 3x3 p1, global_avgpool, linear 10]\n"
    )
    assert main(["export", str(spec), "-o", str(tmp_path / "big.pt2")]) == 2
    err = capsys.readouterr().err
    # the input (3 channels), the conv's output (8), the pooled vector (8) and the logits (10) at
    # 8192×8192, twice for the example batch of two
    n = 8192 * 8192
    assert f"computes {2 * (3 * n + 8 * n + 8 + 10):,} activation values" in err and "[limit]" in err
    assert not (tmp_path / "big.pt2").exists()


# ---- located errors instead of internal ones ----------------------------------------------------


def test_unwritable_output_folder_is_an_io_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """mkstemp failing (a read-only folder) is a located io error for every writer, not a PermissionError."""
    import tempfile

    from archspec.fileio import atomic_path, write_atomic

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(archspec.SpecError, match="Permission denied") as e:
        write_atomic(tmp_path / "out.py", "x")
    assert e.value.code == "io"
    with pytest.raises(archspec.SpecError, match="Permission denied"):
        with atomic_path(tmp_path / "out.pt2"):
            pass
    assert main(["schema", "-o", str(tmp_path / "s.json")]) == 2
    assert main(["compile", str(TINY), "-o", str(tmp_path / "t.py")]) == 2


def test_output_that_is_the_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.yaml"
    text = TINY.read_text()
    spec.write_text(text)
    for argv in (
        ["compile", str(spec), "-o", str(spec)],
        ["schema", "-o", str(spec)],
        ["render", str(spec), "-o", str(spec)],
        ["export", str(spec), "-o", str(spec) + ".pt2", "--weights", str(spec) + ".pt2"],
    ):
        if argv[0] == "export":
            (tmp_path / "tiny.yaml.pt2").write_bytes(b"weights")
        assert main(argv) == 2, argv
        assert "[io]" in capsys.readouterr().err
    assert spec.read_text() == text
    assert (tmp_path / "tiny.yaml.pt2").read_bytes() == b"weights"


def test_stale_temporary_files_are_cleaned(tmp_path: Path) -> None:
    """A writer killed with kill -9 leaves .NAME.PID.*.tmp; the next write to NAME removes it when
    that process is gone, and leaves the files of live writers and of other targets alone."""
    from archspec.fileio import write_atomic

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.py.{dead.pid}.abc123.tmp"
    live = tmp_path / f".out.py.{os.getppid()}.def456.tmp"
    other = tmp_path / f".other.py.{dead.pid}.abc123.tmp"
    for p in (stale, live, other):
        p.write_text("partial")
    write_atomic(tmp_path / "out.py", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.py", live.name, other.name])


def test_a_cli_argument_is_always_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", "nope.txt"]) == 2
    assert "nope.txt: error: no such file [io]" in capsys.readouterr().err
    assert main(["check", "archspec: 1"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_set_errors_are_located_at_the_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(V4), "--set", "defaults.conv.zzz=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--set defaults.conv.zzz:1:") and "no parameter 'zzz'" in err
    assert main(["check", str(V4), "--set", "network.featurs.0=relu"]) == 2
    assert capsys.readouterr().err.startswith("--set network.featurs.0:1:9: error: network has no key 'featurs'")
    assert main(["check", str(V4), "--set", "input.size=[331,"]) == 2
    assert capsys.readouterr().err.startswith("--set input.size:1:")
    assert main(["check", str(V4), "--set", "nokey"]) == 2
    assert capsys.readouterr().err.startswith("--set nokey:1:1: error: --set expects KEY=VALUE")


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: archspec.check(None), "spec"),
        (lambda: archspec.check(123), "spec"),
        (lambda: archspec.check(b"archspec: 1"), "spec"),
        (lambda: archspec.check(V4, [("input.size", 331)]), "overrides"),
        (lambda: archspec.check(V4, {1: 2}), "overrides"),
        (lambda: archspec.check(V4, max_params="x"), "max_params"),
        (lambda: archspec.build(V4, max_params=1.5), "max_params"),
    ],
)
def test_api_misuse_is_a_type_error_naming_the_argument(call, argument: str) -> None:
    with pytest.raises(TypeError, match=rf"^{argument} must be"):
        call()


def test_weight_errors_are_one_line_and_never_advise_unsafe_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, ("touch PWNED",))

    bad = tmp_path / "evil.pt"
    torch.save({"fc.weight": Payload()}, bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    monkeypatch.chdir(tmp_path)
    for path in (bad, junk):
        assert main(["compile", str(TINY), "-o", str(tmp_path / "t.py"), "--weights", str(path)]) == 2
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 2 and lines[0].endswith("[weights]") and lines[1].startswith("  hint:"), err
        assert "weights_only" not in err and "trust" not in err
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "t.py").exists()


def test_labels_cannot_break_tables_or_diagrams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A label with a newline, a NUL, an escape sequence and a trailing backslash stays one table row,
    and the DOT text of `render` stays well-formed (a trailing backslash would escape the closing quote)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "archspec: 1\nname: t\ninput: {channels: 3, size: [8, 8]}\n"
        'blocks:\n  b: {label: "A\\nB \\0 \\e[31m \\"\\\\", chain: [conv2d 3 1x1]}\n'
        "network: [b, global_avgpool]\n"
    )
    label_shown = 'A\\nB \\x00 \\x1b[31m "\\'
    for command in ("check", "summary"):
        assert main([command, str(spec)]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[2].startswith(label_shown + "  ")
    assert main(["render", str(spec), "-o", str(tmp_path / "t.dot")]) == 0
    import graphviz

    dot = (tmp_path / "t.dot").read_text()
    assert "\x00" not in dot and "\x1b" not in dot
    line = next(line for line in dot.splitlines() if "[label=" in line and "A\\\\n" in line)
    assert line.strip().startswith('0 [label="A\\\\nB \\\\x00 \\\\x1b[31m \\"\\\\"')  # the quote closes
    try:
        graphviz.Source(dot).pipe(format="svg")
    except graphviz.ExecutableNotFound:
        pytest.skip("Graphviz's dot is not installed")


def test_a_missing_path_given_to_the_api_is_no_such_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(archspec.SpecError, match="^nope.txt: error: no such file") as e:
        archspec.check("nope.txt")
    assert e.value.code == "io"
    with pytest.raises(archspec.SpecError, match="mapping at the top level, not a list"):
        archspec.check("[1, 2]")


def test_a_file_name_that_is_not_utf8_is_written_escaped(tmp_path: Path) -> None:
    """A file name with a byte that is not UTF-8 (a lone surrogate in Python) reaches the page of
    `render` and the docstring of `compile` escaped, never as a UnicodeEncodeError."""
    import shutil

    spec = tmp_path / os.fsdecode(b"net\xff.yaml")
    spec.write_text(TINY.read_text())
    assert main(["compile", str(spec), "-o", str(tmp_path / "net.py")]) == 0
    assert "net\\udcff.yaml" in (tmp_path / "net.py").read_text()
    if shutil.which("dot"):
        assert main(["render", str(spec), "-o", str(tmp_path / "net.html")]) == 0
        assert "net\\udcff.yaml" in (tmp_path / "net.html").read_text()
