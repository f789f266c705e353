"""A row's path (check, summary, diff, the HTML page) is the module path of its weights, or visibly not a
module path (docs/language.md, "Naming"). Truth: the modules of the built model (``named_modules``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import archspec

ZOO = sorted(p.stem for p in (Path(archspec.__file__).parent / "zoo").glob("*.yaml"))
IN_PLACE = re.compile(r"\[\d*\]\Z")  # a container written in place without a name: PREFIX[INDEX]


def _rows_without_a_module(spec: str) -> list[tuple[str, int]]:
    """The rows whose path names no module of the built model and that hold weights, or whose path is
    written PREFIX[INDEX] while naming a module: both would mislead a reader."""
    modules = dict(archspec.build(spec).named_modules())
    wrong = []
    for row in archspec.check(spec).rows:
        in_place = IN_PLACE.search(row.path) is not None
        if row.path in modules and in_place:
            wrong.append((row.path, row.params))
        # documented: a row without weights (an op that is a function call) or written in place has no module
        elif row.path not in modules and row.params and not in_place:
            wrong.append((row.path, row.params))
    return wrong


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_row_path_is_a_module_or_says_it_has_none(name: str) -> None:
    assert _rows_without_a_module(f"zoo:{name}") == []


STAGES = """archspec: 1
name: stages
input: {channels: 3, size: [32, 32]}
network:
  blocks:
    - "0": [[conv_dw: conv2d 8 3x3 p1, bn1: bn, relu]]     # an unnamed list in a stage: its ops at blocks.0
    - "1": {concat: {a: conv2d 4 1x1, b: conv2d 4 1x1}}   # a named concat: blocks.1.a, blocks.1.b
  head: [global_avgpool, linear 10]
"""


def test_a_list_written_in_place_is_a_row_at_its_index_in_brackets() -> None:
    """The row of the unnamed list is blocks.0[0], its weights blocks.0.conv_dw and blocks.0.bn1: the row
    printed blocks.0.0 on main named no module."""
    rows = [r.path for r in archspec.check(STAGES).rows]
    assert rows == ["blocks.0[0]", "blocks.1", "head.0", "head.1"]
    assert _rows_without_a_module(STAGES) == []
    keys = set(archspec.build(STAGES).state_dict())
    assert {"blocks.0.conv_dw.weight", "blocks.0.bn1.weight", "blocks.1.a.weight"} <= keys


def test_a_row_written_in_place_is_a_handle_for_outputs_and_from() -> None:
    spec = STAGES + "outputs: {first: 'blocks.0[0]', pooled: head}\n"
    model = archspec.build(spec).eval()
    out = model(torch.randn(1, 3, 32, 32))
    assert tuple(out["first"].shape) == (1, 8, 32, 32) and tuple(out["pooled"].shape) == (1, 10)


def test_a_gate_written_in_place_keeps_its_index_path() -> None:
    """A gate is named like an op (its layers sit under it, timm's se.fc1): its row is its module path."""
    spec = """archspec: 1
name: gate_row
input: {channels: 3, size: [8, 8]}
network:
  act:
    - {gate: [adaptive_avgpool 1x1, conv2d 3 1x1, sigmoid]}
    - [c: conv2d 4 1x1, relu]
"""
    assert [r.path for r in archspec.check(spec).rows] == ["act.0", "act[1]"]
    assert _rows_without_a_module(spec) == []
