"""docs/sweep.md stays true: its space is the shipped one, the schema is current, its Python runs and
(slow) its commands run in order, scaled down (3 variants a sweep, 1 training epoch)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("optuna")

from archspec.sweep import load_space
from archspec.sweep.space import space_schema
from tests.paths import ROOT

DOC = ROOT / "docs" / "sweep.md"
SPACES = ROOT / "examples" / "spaces"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_tutorials_space_is_the_shipped_one() -> None:
    shown = [yaml.safe_load(b) for b in _blocks("yaml") if b.startswith("space: 1")]
    assert shown == [yaml.safe_load((SPACES / "resnet.yaml").read_text())]


def test_space_schema_is_current_and_the_shipped_spaces_follow_it() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    written = json.loads((ROOT / "docs" / "archspec-space.schema.json").read_text())
    assert written == space_schema(), "regenerate it: python -m archspec.sweep.space > docs/archspec-space.schema.json"
    for path in sorted(SPACES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if "space" in data:
            jsonschema.validate(data, written)
            load_space(path)


def test_python_example_prints_what_its_comments_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = _blocks("python")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the document's own example
    printed = out.getvalue().splitlines()
    comments = [line.split("# ")[1] for line in block.splitlines() if line.startswith("print(")]
    assert eval(printed[0])["accepted"] == 20  # noqa: S307
    assert printed[1] == comments[1] and printed[2] == comments[2].split(":")[0]


@pytest.mark.slow
def test_tutorial_commands_run_scaled_down(tmp_path: Path) -> None:
    """Every ```bash block but the install, in order, in a folder holding a copy of examples/ whose
    spaces train one epoch; each sweep measures 2 variants and the best trains 1 epoch."""
    shutil.copytree(SPACES, tmp_path / "examples" / "spaces")
    for path in (tmp_path / "examples" / "spaces").glob("*.yaml"):
        path.write_text(path.read_text().replace("epochs: 4", "epochs: 1"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    archspec = f'"{sys.executable}" -m archspec.cli'
    for block in _blocks("bash")[1:]:
        script = block.replace("--trials 100", "--trials 2").replace("--epochs 30", "--epochs 1")
        script = re.sub(r"^archspec sweep (examples\S+) (?!.*--trials)", r"archspec sweep \1 --trials 2 ", script, flags=re.M)
        script = re.sub(r"^archspec ", archspec + " ", script, flags=re.M)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, script + done.stderr[-3000:]
    results = tmp_path / "runs" / "resnet"
    rows = json.loads((results / "results.json").read_text())
    assert sum(r["status"] in ("accepted", "pruned") for r in rows) >= 2
    for name in ("best.yaml", "index.html", "edf_error.svg", "pareto_error_macs.png"):
        assert (results / name).exists(), name
    assert (tmp_path / "runs" / "compare_edf.png").exists()
