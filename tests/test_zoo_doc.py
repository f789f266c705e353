"""docs/zoo.md: its table says what `archspec check` reports, and its Python example runs."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import ROOT

import archspec

DOC = (ROOT / "docs" / "zoo.md").read_text()
ROWS = [line for line in DOC.splitlines() if line.startswith("| `specs/")]


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize("line", ROWS, ids=[re.search(r"`specs/(\w+)", r).group(1) for r in ROWS])
def test_zoo_table_matches_check(line: str) -> None:
    cells = [c.strip() for c in line.strip("|").split("|")]
    spec, params, macs, min_size, accepted = cells[:5]
    report = archspec.check(ROOT / spec.strip("`"))
    assert _int(params) == report.params
    m = re.fullmatch(r"([\d,]+) at (\d+)×(\d+)", macs)
    assert m and _int(m.group(1)) == report.macs and (int(m.group(2)), int(m.group(3))) == report.input_size
    assert min_size == "{}×{}".format(*report.min_input_size)
    assert accepted.startswith(report.accepted.describe())
    if report.train_accepted != report.accepted:
        assert f"(training: {report.train_accepted.describe()})" in accepted


def test_every_spec_has_a_line() -> None:
    listed = {re.search(r"`(specs/\w+\.yaml)`", r).group(1) for r in ROWS}
    ours = {"specs/googlenet.yaml", "specs/googlenet_paper.yaml", "specs/inception_v3.yaml", "specs/bn_inception.yaml"}
    assert ours <= listed


def test_training_loop_example_runs() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC, re.S)
    env: dict[str, object] = {}
    torch.manual_seed(0)
    exec(compile(code, "docs/zoo.md", "exec"), env)  # noqa: S102 - our own documentation
    assert env["logits"].shape == (2, 1000)
    assert env["model"].aux_weights == {"aux1": 0.3, "aux2": 0.3}
    assert torch.isfinite(env["loss"])
