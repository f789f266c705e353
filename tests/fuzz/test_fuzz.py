"""Fuzzing: mutated zoo specs and random YAML must build or raise SpecError — nothing else, fast.

Each case mutates a real spec (delete / duplicate / retype keys, perturb numbers inside op
strings, swap op names, splice one block's body into another) or is random text. The outcome
must be either a valid report (and, for small networks, a model that runs at its minimum input
size) or one `archspec.SpecError`; any other exception, or a case that takes more than 2 s of CPU
(or 60 s of wall time), fails.

A third test renames keys (branches, network parts, blocks, aux heads) to hostile or reserved names
and sets labels, docs and the spec's file name to hostile text (quotes, triple quotes, backslashes,
newlines, NUL, escape sequences, lone surrogates, code): each case is refused with one SpecError or
compiled by `archspec compile`, and the generated file, imported and run in both modes, computes
what the compiled model does, runs nothing, and reads the labels back unchanged.

CI runs a few hundred cases. A long run (docs/errors.md records the last one):

    ARCHSPEC_FUZZ_EXAMPLES=10000 python -m pytest tests/fuzz -q -p no:cacheprovider
"""

from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch  # imported up front: its one-time import cost is not the spec's
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.ops import REGISTRY
from tests.paths import ROOT
from tests.references import assert_same_outputs

SEEDS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "tests" / "fuzz").glob("seed_*.yaml"))
EXAMPLES = int(os.environ.get("ARCHSPEC_FUZZ_EXAMPLES", "150"))
# A guard against blow-ups (a mutant that expands or allocates without end), not a benchmark: the CPU time the
# case's own work takes, which other processes on a busy machine do not lengthen (a 2 s wall limit failed at
# load 17), measured with one torch thread so no thread spins waiting for another; plus a wall limit for a
# case that waits instead of computing
LIMIT_S = float(os.environ.get("ARCHSPEC_FUZZ_SECONDS", "2.0"))
HANG_S = 60.0
SMALL = 3_000_000  # build and run the mutant when it has fewer parameters than this
_NUMBER = re.compile(r"-?\d+")


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def _mutate(data: Any, draw: Any) -> Any:
    data = copy.deepcopy(data)
    paths = [p for p in _paths(data) if p]
    path = draw(st.sampled_from(paths))
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    kind = draw(st.sampled_from(["delete", "duplicate", "retype", "number", "swap_op", "splice", "rename"]))
    if kind == "delete":
        del parent[key]
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(value))
    elif kind == "retype":
        parent[key] = draw(st.sampled_from([0, -1, 7, 2.5, True, None, "", "x", [], {}, [1, 2], {"a": 1}, "conv"]))
    elif kind == "number" and isinstance(value, str) and _NUMBER.search(value):
        numbers = list(_NUMBER.finditer(value))
        m = draw(st.sampled_from(numbers))
        new = str(draw(st.sampled_from([0, -1, 1, 2, 3, 4, 7, 100, 4096, 10**9])))
        parent[key] = value[: m.start()] + new + value[m.end() :]
    elif kind == "swap_op" and isinstance(value, str) and value.split():
        names = sorted(REGISTRY) + list(data.get("blocks", {}) if isinstance(data, dict) else []) + ["cnov", "block"]
        parent[key] = " ".join([draw(st.sampled_from(names))] + value.split()[1:])
    elif kind == "splice" and isinstance(data, dict) and isinstance(data.get("blocks"), dict) and data["blocks"]:
        blocks = data["blocks"]
        a, b = draw(st.sampled_from(sorted(blocks))), draw(st.sampled_from(sorted(blocks)))
        blocks[a] = copy.deepcopy(blocks[b])
    elif kind == "rename" and isinstance(parent, dict):
        parent[str(key) + draw(st.sampled_from(["_", "x", "0", ".", " "]))] = parent.pop(key)
    return data


@st.composite
def mutants(draw: Any) -> tuple[str, str]:
    seed = draw(st.sampled_from(SEEDS))
    data = yaml.safe_load(seed.read_text())
    for _ in range(draw(st.integers(1, 3))):
        data = _mutate(data, draw)
    text = yaml.safe_dump(data, sort_keys=False)
    return seed.name, text


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _outcome(text: str, base: Path) -> str:
    start, cpu = time.perf_counter(), time.process_time()
    path = base / "mutant.yaml"
    path.write_text(text)
    try:
        report = archspec.check(path)
    except archspec.SpecError as e:
        assert e.line >= 0 and e.code
        outcome = "error"
    else:
        outcome = "valid"
        if report.params < SMALL:
            model = archspec.build(path).eval()
            h, w = report.min_input_size
            with torch.no_grad():
                model(torch.zeros(1, report.input_channels, h, w))
    used, elapsed = time.process_time() - cpu, time.perf_counter() - start
    assert used < LIMIT_S, f"took {used:.2f} s of CPU ({elapsed:.2f} s wall)"
    assert elapsed < HANG_S, f"took {elapsed:.2f} s wall ({used:.2f} s of CPU): waiting, not computing"
    return outcome


def test_a_case_that_computes_too_long_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The limit counts the case's CPU time: a check that computes past it fails, however quiet the machine."""
    check = archspec.check

    def busy_check(path: Path) -> Any:
        start = time.process_time()
        while time.process_time() - start < 0.2:
            pass
        return check(path)

    monkeypatch.setattr(archspec, "check", busy_check)
    monkeypatch.setattr(f"{__name__}.LIMIT_S", 0.1)
    with pytest.raises(AssertionError, match="of CPU"):
        _outcome("archspec: 1\nname: t\ninput: {channels: 3, size: 8}\nnetwork: [conv2d 4 3x3]\n", tmp_path)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=EXAMPLES <= 150)
@given(mutants())
def test_mutated_specs_build_or_raise_spec_error(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]) -> None:
    _, text = case
    base = tmp_path_factory.mktemp("fuzz", numbered=True)
    for lib in (ROOT / "specs" / "blocks").glob("*.yaml"):  # keep `use:` working for zoo specs
        (base / "blocks").mkdir(exist_ok=True)
        (base / "blocks" / lib.name).write_text(lib.read_text())
    _outcome(text, base)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=EXAMPLES <= 150)
@given(
    st.lists(st.sampled_from(list("archspec:1 name\n-[]{},'\"&*!#|>%@`\t$x3") + ["conv ", "network:", "\n  "]), max_size=80).map(
        "".join
    )
)
def test_random_text_never_crashes(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    base = tmp_path_factory.mktemp("rand", numbered=True)
    _outcome(text, base)


HOSTILE_NAMES = [
    "x",
    "self",
    "output",
    "check_input",
    "input",
    "torch",
    "nn",
    "F",
    "forward",
    "training",
    "keys",
    "items",
    "update",
    "class",
    "None",
    "lambda",
    "logits",
    "_modules",
    "__init__",
    "a\n",
    "a b",
    "a.b",
    "a-b",
    "0a",
    "é",
    "a\x00",
    'a"',
    "a'",
    "a\\",
    "\udc80",
    'a"+__import__("os").system("touch PWNED")+"',
    "relu",
    "conv",
    "add",
    "branch_1",
    "X2",
]
HOSTILE_TEXT = [
    '"""',
    "'''",
    '"',
    "\\",
    "\n",
    "\r\n",
    "\x00",
    "\x1b[31m",
    "\u2028",
    "\udcff",
    "×",
    "{x}",
    '__import__("os").system("touch PWNED")',
    "; ",
    "#",
    "plain",
]
HOSTILE_SEED = ROOT / "tests" / "fuzz" / "seed_small.yaml"
HOSTILE_EXAMPLES = max(10, EXAMPLES // 6)  # each case compiles and imports a module: keep CI modest
_NOT_NAMES = {
    "concat",
    "residual",
    "chain",
    "body",
    "params",
    "label",
    "doc",
    "tap",
    "head",
    "weight",
    "scale",
    "then",
    "shortcut",
}


def _renamable(data: Any) -> list[tuple[Any, ...]]:
    """Paths of mapping keys that name something: network parts, branches, blocks, aux heads."""
    return [
        path
        for path in _paths(data)
        if len(path) > 1
        and path[0] in ("network", "blocks", "aux")
        and isinstance(path[-1], str)
        and path[-1] not in _NOT_NAMES
        and isinstance(_get(data, path[:-1]), dict)
    ]


@st.composite
def hostile_specs(draw: Any) -> tuple[dict[str, Any], str, str]:
    data = yaml.safe_load(HOSTILE_SEED.read_text())
    for _ in range(draw(st.integers(0, 2))):
        path = draw(st.sampled_from(_renamable(data)))
        parent = _get(data, path[:-1])
        parent[draw(st.sampled_from(HOSTILE_NAMES))] = parent.pop(path[-1])
    text = "".join(draw(st.lists(st.sampled_from(HOSTILE_TEXT), min_size=1, max_size=4)))
    for block in data.get("blocks", {}).values():
        if isinstance(block, dict):
            block["label"] = text
            block["doc"] = text
    data["doc"] = text
    file_name = "".join(draw(st.lists(st.sampled_from(HOSTILE_TEXT), max_size=3)))
    return data, text, file_name.replace("/", "_").replace("\x00", "0")


@settings(max_examples=HOSTILE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=EXAMPLES <= 150)
@given(hostile_specs())
def test_hostile_names_and_text_never_run(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[dict[str, Any], str, str]
) -> None:
    import importlib.util
    import json

    from archspec.cli import main
    from archspec.codegen import standalone_class_name

    data, text, file_name = case
    base = tmp_path_factory.mktemp("hostile", numbered=True)
    spec = base / f"spec{file_name}.yaml"
    spec.write_text(json.dumps(data, ensure_ascii=True))  # JSON is YAML; escapes keep NUL and surrogates
    try:
        report = archspec.check(spec)
    except archspec.SpecError as e:
        assert e.code and "\x1b" not in e.format() and "\x00" not in e.format()
        return
    out = base / "generated.py"
    cwd = os.getcwd()
    os.chdir(base)
    try:
        assert main(["compile", str(spec), "-o", str(out)]) == 0
        module_spec = importlib.util.spec_from_file_location(f"hostile_{base.name}", out)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        generated = getattr(module, standalone_class_name(report.name))()
        compiled = archspec.build(spec)
        generated.load_state_dict(compiled.state_dict(), strict=True)
        assert_same_outputs(compiled, generated, torch.randn(2, 3, 32, 32))
    finally:
        os.chdir(cwd)
    assert sorted(p.name for p in base.iterdir()) == sorted([spec.name, out.name])  # nothing ran
    assert f"from {spec};" in module.__doc__
    docs = [c.__doc__ for c in vars(module).values() if isinstance(c, type) and "block `" in (c.__doc__ or "")]
    assert all(d.startswith(f"{text}: block `") for d in docs)
