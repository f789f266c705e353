"""Design spaces and sweeps (archspec/sweep/): the RegNet rule, EDFs and Pareto fronts against values
computed by hand, located errors in space files, static rejection without building, standalone specs
that rebuild the same network, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna")

import archspec
from archspec.cli import main
from archspec.sweep import edf, load_space, pareto_front, regnet_stages, sweep
from archspec.sweep.sample import draw, substitute
from tests.paths import ROOT

DIGITS = ROOT / "examples" / "spaces" / "digits_resnet.yaml"


def space_file(tmp_path: Path, body: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"space: 1\nspec: {DIGITS}\n" + body)
    return path


SMALL = """\
name: small
params:
  w1: [16, 32]
  d1: {int: [2, 3]}
set:
  network.stage1.0.out: ${w1}
  network.stage1.1.out: ${w1}
  network.stage1.1.repeat: ${d1 - 1}
constraints: [macs <= BUDGET]
trials: 4
sampler: grid
latency: {batch: 2, repeats: 1, warmup: 0}
"""


# ---- pure computations against hand-computed values ------------------------------------------------


def test_regnet_rule_by_hand() -> None:
    # d=6, w_0=24, w_a=36, w_m=2.5, q=8: u_j = 24, 60, 96, 132, 168, 204; u_j/24 = 1, 2.5, 4, 5.5, 7, 8.5;
    # log base 2.5 of those = 0, 1, 1.51, 1.86, 2.12, 2.34 → s_j = 0, 1, 2, 2, 2, 2;
    # widths 24, 60, 150 → multiples of 8: 24, 64 (7.5 rounds to 8), 152 (18.75 → 19)
    assert regnet_stages(6, 24, 36, 2.5, 8) == [(24, 1), (64, 1), (152, 4)]
    # w_a = 0 would keep one width; w_a small against w_0 keeps the first stage long
    assert regnet_stages(4, 32, 1.0, 2.0, 8) == [(32, 4)]


def test_edf_by_hand() -> None:
    assert edf([0.3, 0.1, 0.2, 0.2]) == [(0.1, 0.25), (0.2, 0.75), (0.3, 1.0)]
    assert edf([]) == []
    assert edf([5.0]) == [(5.0, 1.0)]


def test_pareto_front_by_hand() -> None:
    points = [(1, 9), (2, 7), (3, 8), (4, 3), (5, 3), (6, 1), (2, 7), (3, 3)]
    # (3, 8) is dominated by (2, 7); (4, 3) and (5, 3) by (3, 3); the two (2, 7) are equal: both stay
    assert pareto_front(points) == [0, 1, 6, 7, 5]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 1.0), (1.0, 2.0)]) == [0]


def test_substitute_expressions_and_text() -> None:
    values = {"w": 48, "b": 4, "on": True}
    assert substitute("${w // b}", values) == 12
    assert substitute("bottleneck width=${w // b} out=${w}", values) == "bottleneck width=12 out=48"
    assert substitute(["${w}", 3], values) == [48, 3]
    assert substitute("${on}", values) is True


class _Fixed:
    """A stand-in for optuna.Trial that answers from a table (the low end where the table is silent)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self.answers.get(name, low))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        return float(self.answers.get(name, low))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.answers.get(name, choices[0])


def test_regnet_parameter_gives_stage_variables(tmp_path: Path) -> None:
    path = space_file(
        tmp_path,
        """\
params:
  s: {regnet: {depth: {int: [4, 8]}, w_0: {int: [16, 32], step: 8}, w_a: {float: [8, 32]}, w_m: {float: [1.5, 3]}, stages: 3}}
set:
  network.stage1.0.out: ${s_w1}
  network.stage1.1.repeat: ${max(1, s_d1 - 1)}
""",
    )
    space = load_space(path)
    point = draw(space, _Fixed({"s_depth": 6, "s_w_0": 24, "s_w_a": 36.0, "s_w_m": 2.5}))
    assert point.rejected is None
    assert (point.values["s_w1"], point.values["s_w3"], point.values["s_d3"]) == (24, 152, 4)
    assert point.overrides == {"network.stage1.0.out": 24, "network.stage1.1.repeat": 1}
    two = draw(space, _Fixed({"s_depth": 4, "s_w_0": 32, "s_w_a": 1.0, "s_w_m": 2.0}))
    assert two.rejected == "s: the rule gives 1 stages, the spec has 3"


# ---- space files: every mistake located --------------------------------------------------------


BAD_SPACES = [
    ("params:\n  w1: {int: [4, 2]}\n", (4, 7), "schema", "is empty"),
    ("params:\n  w1: {integer: [1, 2]}\n", (4, 7), "schema", "a parameter is a list of choices"),
    ("params:\n  w1: [1]\nconstraints: [macs <= w9]\n", (5, 15), "param", "'w9'"),
    ("params:\n  w1: [1]\nset:\n  network.stage9.out: ${w1}\n", (6, 3), "override", "stage9"),
    ("params:\n  w1: [1]\nsampel: grid\n", (5, 1), "schema", "did you mean 'sampler'"),
    ("params:\n  w1: [1]\nconstraints: ['macs <=']\n", (5, 15), "schema", "not an expression"),
    ("params:\n  network.stem.out: {int: [8, 16]}\n  network.nope.out: [1]\n", (5, 3), "override", "nope"),
]


@pytest.mark.parametrize("body, where, code, fragment", BAD_SPACES)
def test_space_errors_are_located(tmp_path: Path, body: str, where: tuple[int, int], code: str, fragment: str) -> None:
    path = space_file(tmp_path, body)
    with pytest.raises(archspec.SpecError) as info:
        load_space(path)
    err = info.value
    assert (err.file, (err.line, err.column), err.code) == (str(path), where, code), err.format()
    assert fragment in err.format()


def test_cli_reports_a_bad_space_in_one_located_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = space_file(tmp_path, "params:\n  w1: {int: [4, 2]}\n")
    assert main(["sweep", str(path), "--static", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"{path}:4:7: error:") and err[0].endswith("[schema]")


# ---- the static path: over budget is rejected and never built ---------------------------------------


def _macs(width: int, depth: int) -> int:
    return archspec.check(
        DIGITS, {"network.stage1.0.out": width, "network.stage1.1.out": width, "network.stage1.1.repeat": depth - 1}
    ).macs


def test_over_budget_variants_are_rejected_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import archspec.api

    costs = {(w, d): _macs(w, d) for w in (16, 32) for d in (2, 3)}
    budget = sorted(costs.values())[1]  # two of the four grid points fit, two do not
    path = space_file(tmp_path, SMALL.replace("BUDGET", str(budget)))
    built: list[dict[str, Any]] = []
    real_build = archspec.api.build

    def spy(spec: Any, overrides: Any = None, **kwargs: Any) -> Any:
        built.append(dict(overrides or {}))
        return real_build(spec, overrides, **kwargs)

    monkeypatch.setattr(archspec.api, "build", spy)
    counts = sweep(path, trials=2, out=tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    accepted = [r for r in rows if r["status"] == "accepted"]
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert counts["accepted"] == 2 and counts["rejected"] == len(rejected) >= 1
    assert sorted(r["macs"] for r in accepted) == sorted(m for m in costs.values() if m <= budget)
    for r in rejected:
        assert r["reason"] == f"macs <= {budget}" and r["macs"] > budget
        assert r["overrides"] not in built  # checked, never built
    assert sorted(map(json.dumps, built)) == sorted(json.dumps(r["overrides"]) for r in accepted)
    assert all(r["latency_ms"] > 0 for r in accepted)
    _check_page(tmp_path / "out", rows)


def _check_page(out: Path, rows: list[dict[str, Any]]) -> None:
    """index.html holds a row per trial, each accepted one linking to its spec and each point of the
    inline plots linking to its row; it loads nothing from elsewhere."""
    pytest.importorskip("matplotlib")
    page = (out / "index.html").read_text()
    assert (out / "pareto_latency_ms_macs.png").stat().st_size > 0
    for r in rows:
        assert f'id="trial-{r["trial"]}"' in page
        if r["status"] == "accepted":
            assert f'href="{r["spec"]}"' in page and (out / r["spec"]).exists()
            assert f'href="#trial-{r["trial"]}"' in page  # its point in the inline plots
    assert "<script" not in page and " src=" not in page and "<link" not in page
    import shutil

    if shutil.which("dot"):  # the Pareto-optimal rows link to their network diagrams
        diagrams = sorted((out / "diagrams").glob("trial-*.svg"))
        assert diagrams and all(f'href="diagrams/{d.name}"' in page for d in diagrams)


def test_static_sweep_never_imports_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = space_file(tmp_path, SMALL.replace("BUDGET", "1e12"))
    code = (
        "import sys; from archspec.sweep import sweep; "
        f"print(sweep({str(path)!r}, trials=4, static=True, out={str(tmp_path / 'o')!r})); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env())
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "o" / "results.json").read_text())
    assert sorted((r["values"]["w1"], r["values"]["d1"]) for r in rows) == [(16, 2), (16, 3), (32, 2), (32, 3)]
    for r in rows:
        assert r["macs"] == _macs(r["values"]["w1"], r["values"]["d1"])


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


# ---- each accepted variant as one standalone spec -----------------------------------------------------


def test_standalone_spec_rebuilds_the_variant(tmp_path: Path) -> None:
    import torch

    path = space_file(tmp_path, SMALL.replace("BUDGET", "1e12").replace("trials: 4", "trials: 1"))
    sweep(path, static=True, out=tmp_path / "o")
    row = json.loads((tmp_path / "o" / "results.json").read_text())[0]
    standalone = tmp_path / "o" / row["spec"]
    assert "use:" not in standalone.read_text()
    torch.manual_seed(0)
    a = archspec.build(DIGITS, row["overrides"]).eval()
    torch.manual_seed(0)
    b = archspec.build(standalone).eval()
    assert list(a.state_dict()) == list(b.state_dict())
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(a(x), b(x))
    assert archspec.check(standalone).macs == row["macs"]


def test_standalone_spec_follows_an_edited_spec_and_library(tmp_path: Path) -> None:
    """The libraries are read once per sweep, but an edit to the spec or a library between two sweeps in
    one process (a notebook, a resumed sweep) is what the next standalone file holds."""
    import os

    from archspec.sweep.standalone import standalone

    lib = tmp_path / "lib.yaml"
    lib.write_text("archspec: 1\nblocks:\n  unit:\n    params: {c: 8}\n    chain: [conv $c 3x3 p1]\n")
    spec = tmp_path / "net.yaml"
    body = "archspec: 1\nname: n\nuse: [lib.yaml]\ninput: {channels: 3, size: 8}\nnetwork:\n  a: unit c=WIDTH\n"
    spec.write_text(body.replace("WIDTH", "8"))
    assert standalone(spec, {})["network"]["a"] == "unit c=8"
    spec.write_text(body.replace("WIDTH", "16"))
    os.utime(spec, ns=(1, 1))  # a different stamp even where the clock's resolution is coarse
    assert standalone(spec, {})["network"]["a"] == "unit c=16"
    lib.write_text(lib.read_text().replace("3x3 p1", "5x5 p2"))
    os.utime(lib, ns=(1, 1))
    assert standalone(spec, {})["blocks"]["unit"]["chain"] == ["conv $c 5x5 p2"]
    assert (
        archspec.check(tmp_path / "net.yaml").params
        == archspec.check("archspec: 1\nname: n\ninput: {channels: 3, size: 8}\nnetwork: [conv 16 5x5 p2]\n").params
    )


def test_compare_two_sweeps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    a = space_file(tmp_path, SMALL.replace("BUDGET", "1e12").replace("small", "a"), "a.yaml")
    b = space_file(tmp_path, SMALL.replace("BUDGET", "1e12").replace("w1: [16, 32]", "w1: [64]").replace("small", "b"), "b.yaml")
    sweep(a, static=True, out=tmp_path / "A")
    sweep(b, trials=2, static=True, out=tmp_path / "B")
    assert main(["sweep", "--compare", str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "C")]) == 0
    out = capsys.readouterr().out
    low = min(_macs(w, d) for w in (16, 32) for d in (2, 3))
    assert f"{tmp_path / 'A'}: 4, {low:.4g}" in out
    assert (tmp_path / "C" / "compare_edf.svg").exists()
    assert math.isfinite(low)


# ---- pruning: Optuna's median rule on the errors the trainer reports each epoch -------------------------

ERRORS = {8: 0.5, 16: 0.3, 24: 0.2, 32: 0.1, 40: 0.6, 48: 0.9, 56: 0.05, 64: 0.4}  # a variant's error, every epoch


def test_median_pruner_stops_poor_variants_after_an_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer is replaced by one that reports a fixed error per variant; the expected prunings come
    from the median rule worked out here: once 5 variants are complete, a variant stops after epoch k < 3
    when its error exceeds the median of their epoch-k errors."""
    import statistics
    from types import SimpleNamespace

    import archspec.train
    from archspec.sweep import training

    calls: list[tuple[int, int]] = []

    def fake_fit(spec: Any, overrides: Any, *, stop_at: int, epochs: int, **kwargs: Any) -> Any:
        width = overrides["network.stage1.0.out"]
        epoch = (stop_at - 1) // 10 if stop_at else epochs
        calls.append((width, epoch))
        return SimpleNamespace(history=[{"epoch": epoch, "val_top1": 1 - ERRORS[width]}])

    monkeypatch.setattr(archspec.train, "fit", fake_fit)
    monkeypatch.setattr(training, "steps_per_epoch", lambda *a: 10)
    body = f"""\
params:
  w1: {sorted(ERRORS)}
set:
  network.stage1.0.out: ${{w1}}
  network.stage1.1.out: ${{w1}}
sampler: grid
trials: 8
latency: null
train: {{epochs: 3}}
pruner: median
"""
    sweep(space_file(tmp_path, body), out=tmp_path / "o")
    rows = json.loads((tmp_path / "o" / "results.json").read_text())
    completed: list[float] = []
    expected = {}
    for r in sorted(rows, key=lambda r: r["trial"]):
        error = ERRORS[r["values"]["w1"]]
        stop = None
        if len(completed) >= 5:
            stop = next((k for k in (1, 2) if error > statistics.median(completed)), None)
        expected[r["trial"]] = ("pruned", stop) if stop else ("accepted", 3)
        if not stop:
            completed.append(error)
    assert {r["trial"]: (r["status"], r["epochs"]) for r in rows} == expected
    assert any(status == "pruned" for status, _ in expected.values())
    for r in rows:  # a pruned variant trained only up to where it stopped
        assert [e for w, e in calls if w == r["values"]["w1"]] == list(range(1, r["epochs"] + 1))
        assert r["error"] == pytest.approx(ERRORS[r["values"]["w1"]])


@pytest.mark.parametrize(
    "body, where, fragment",
    [
        ("params:\n  lr: {float: [0.1, 1]}\nsampler: grid\n", (4, 3), "grid sampler takes choice lists"),
        (
            "params:\n  w1: [16]\nobjectives: {error: minimize, macs: minimize}\ntrain: {epochs: 1}\npruner: median\n",
            (7, 9),
            "prunes single-objective studies only",
        ),
    ],
)
def test_study_errors_are_located(tmp_path: Path, body: str, where: tuple[int, int], fragment: str) -> None:
    path = space_file(tmp_path, body)
    with pytest.raises(archspec.SpecError) as info:
        sweep(path, out=tmp_path / "o")
    assert (info.value.file, (info.value.line, info.value.column)) == (str(path), where), info.value.format()
    assert fragment in info.value.format()


def test_compare_needs_two_results_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--compare", str(tmp_path / "nope"), str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the results of a sweep" in err and "[io]" in err and "Traceback" not in err


def test_a_diverging_training_fails_its_trial_and_the_sweep_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import archspec.train
    from archspec.sweep import training

    def fake_fit(spec: Any, overrides: Any, **kwargs: Any) -> Any:
        if overrides["network.stage1.0.out"] == 16:
            raise archspec.train.UsageError("loss is nan at step 3; lower --lr")
        return SimpleNamespace(history=[{"epoch": 1, "val_top1": 0.75}])

    monkeypatch.setattr(archspec.train, "fit", fake_fit)
    monkeypatch.setattr(training, "steps_per_epoch", lambda *a: 10)
    body = (
        SMALL.replace("w1: [16, 32]", "w1: [16, 24, 32]")
        .replace("d1: {int: [2, 3]}", "d1: [2]")
        .replace("trials: 4", "trials: 3")
    )
    body = body.replace("constraints: [macs <= BUDGET]", "").replace(
        "latency: {batch: 2, repeats: 1, warmup: 0}", "latency: null"
    )
    body += "train: {epochs: 1}\n"
    counts = sweep(space_file(tmp_path, body), out=tmp_path / "o")
    assert (counts["accepted"], counts["failed"]) == (2, 1)
    rows = {r["values"]["w1"]: r for r in json.loads((tmp_path / "o" / "results.json").read_text())}
    assert rows[16]["status"] == "failed" and "loss is nan" in rows[16]["reason"] and rows[16]["macs"] > 0
    assert rows[24]["error"] == pytest.approx(0.25) and rows[32]["status"] == "accepted"


def test_a_missing_data_folder_is_located(tmp_path: Path) -> None:
    path = space_file(tmp_path, "params:\n  w1: [16]\ntrain: {data: nowhere, epochs: 1}\n")
    with pytest.raises(archspec.SpecError) as info:
        sweep(path, out=tmp_path / "o")
    assert (info.value.line, info.value.code) == (5, "io") and "no such folder: nowhere" in info.value.message


def test_latency_gives_the_caller_s_thread_count_back(tmp_path: Path) -> None:
    """A sweep measured in-process sets torch's threads for its timing only: a later forward in the
    same process (a test comparing against a subprocess, a user's own model) runs as it did before."""
    torch = pytest.importorskip("torch")
    from archspec.sweep.measure import latency_ms
    from archspec.sweep.space import Latency

    spec = tmp_path / "tiny.yaml"
    spec.write_text("archspec: 1\nname: tiny\ninput: {channels: 3, size: 16}\nnetwork: [conv 8 3x3, global_avgpool, linear 4]\n")
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    ms = latency_ms(spec, {}, Latency(batch=1, repeats=1, warmup=0, threads=wanted), archspec.check(spec))
    assert ms > 0 and torch.get_num_threads() == before
