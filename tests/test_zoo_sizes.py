"""Every spec in specs/: its minimum input size really runs, and one pixel less is refused.

Eval mode computes the main output only, so its minimum can be smaller than training mode's,
whose aux heads may need larger maps (Inception-v3: 75×75 vs 299×299). Both are tested.
"""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import SPECS

SPEC_FILES = sorted(SPECS.glob("*.yaml"))


def _run(model: torch.nn.Module, channels: int, h: int, w: int, batch: int) -> object:
    with torch.no_grad():
        return model(torch.randn(batch, channels, h, w))


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_min_input_size_runs_and_one_pixel_less_is_refused(path) -> None:
    report = archspec.check(path)
    model = archspec.build(path)
    c = report.input_channels
    modes = [("eval", report.min_input_size, 1)]
    if len(report.outputs) == 1:
        modes = [("train", report.min_input_size, 2)]  # no aux heads: both modes accept the same sizes
    if len(report.outputs) > 1:
        modes.append(("train", report.train_min_input_size, 2))  # BatchNorm needs 2 values per channel
    for mode, (mh, mw), batch in modes:
        model.train(mode == "train")
        out = _run(model, c, mh, mw, batch)
        logits = out[report.main[0]] if isinstance(out, dict) else out  # the first output (logits, or outputs:)
        assert logits.shape == (batch, *report.outputs[report.main[0]].at(mh, mw)), mode  # a segmentation map follows H×W
        for h, w in ((mh - 1, mw), (mh, mw - 1)):
            if h >= 1 and w >= 1:
                with pytest.raises(ValueError, match=f"H >= {mh} and W >= {mw}"):
                    _run(model, c, h, w, batch)
                if mode == "train":  # the spec's own size must work in both modes: check refuses it
                    with pytest.raises(archspec.SpecError) as err:
                        archspec.check(path, {"input.size": [h, w]})
                    assert err.value.code == "input-too-small"


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_every_op_belongs_to_a_report_row(path) -> None:
    report = archspec.check(path)
    rows = {r.path for r in report.rows}
    units = {d.unit for n, d in report.graph.records() if d.op != "input"}
    assert units <= rows
    assert sum(r.params for r in report.rows) == report.params


def test_containers_written_among_rows_are_one_row_each() -> None:
    report = archspec.check("""
archspec: 1
name: groups
input: {channels: 3, size: [8, 8]}
network:
  - [c: conv2d 4 3x3 p1, relu]
  - concat: [conv2d 2 1x1, conv2d 3 1x1]
  - named: {concat: [conv2d 2 1x1, conv2d 3 1x1]}
  - section: [conv2d 5 1x1, relu]
""")
    assert [(r.path, r.kind, r.label) for r in report.rows] == [
        ("[0]", "group", "conv2d → relu"),  # written in place without a name: no module path of its own
        ("[1]", "group", "concat of 2 branches"),
        ("named", "group", "concat of 2 branches"),
        ("section.0", "op", "conv2d 5 1x1"),
        ("section.1", "op", "relu"),
    ]
    by_hand = [3 * 4 * 9 + 4, 4 * 2 + 2 + 4 * 3 + 3, 5 * 2 + 2 + 5 * 3 + 3, 5 * 5 + 5, 0]  # weights + biases
    assert [r.params for r in report.rows] == by_hand
