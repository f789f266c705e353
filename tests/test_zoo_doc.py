"""docs/zoo.md beyond its table (tests/test_zoo_table.py): the accepted sizes in its notes, and its
training-loop example, which runs."""

from __future__ import annotations

import re

import pytest
import torch

import archspec
from tests.paths import ROOT

DOC = (ROOT / "docs" / "zoo.md").read_text()


@pytest.mark.parametrize(
    ("spec", "accepted"),
    [
        ("googlenet", "15×15 and up"),
        ("googlenet_paper", "223×223 to 254×254"),
        ("bn_inception", "223×223 to 230×230"),
    ],
)
def test_size_notes_match_check(spec: str, accepted: str) -> None:
    assert archspec.check(ROOT / "specs" / f"{spec}.yaml").accepted.describe() == accepted
    assert accepted in DOC


def test_training_loop_example_runs() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC, re.S)
    env: dict[str, object] = {}
    torch.manual_seed(0)
    exec(compile(code, "docs/zoo.md", "exec"), env)  # noqa: S102 - our own documentation
    assert env["logits"].shape == (2, 1000)
    assert env["model"].aux_weights == {"aux1": 0.3, "aux2": 0.3}
    assert torch.isfinite(env["loss"])
