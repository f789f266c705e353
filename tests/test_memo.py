"""A spec's report kept between builds (archspec/memo.py): found again only where every file it was made
from reads the same, never after an edit; the weights are drawn anew in every build.

Truth: the spec's own meaning (a conv of 24 has a 24×C×3×3 weight; a line number counted in the text
written here) and ``archspec.check``, which analyses the spec afresh every time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec import memo  # noqa: E402
from archspec.report import report_of  # noqa: E402

LIBRARY = """
archspec: 1
blocks:
  unit:
    params: {c: 16}
    chain: [conv $c 3x3, conv $c 1x1]
"""
SPEC = """
archspec: 1
name: kept
use: [lib.yaml]
input: {channels: 3, size: [32, 32]}
network:
  stem: conv 16 3x3 s2
  body: unit
  pool: global_avgpool
  fc: linear 10
"""


def _write(path: Path, text: str, stamp: os.stat_result | None = None) -> None:
    """Write ``text``; with ``stamp``, put the file's times back (an edit that mtime would not show)."""
    path.write_text(text)
    if stamp is not None:
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    _write(tmp_path / "lib.yaml", LIBRARY)
    path = tmp_path / "spec.yaml"
    _write(path, SPEC)
    memo.clear()
    return path


def test_an_equal_build_finds_the_report_and_draws_new_weights(spec: Path) -> None:
    first, again = archspec.build(spec), archspec.build(spec)
    assert report_of(again) is report_of(first)  # not analysed again
    a, b = first.state_dict(), again.state_dict()
    assert list(a) == list(b)
    assert not torch.equal(a["stem.conv.weight"], b["stem.conv.weight"])  # drawn anew
    assert not {t.data_ptr() for t in a.values()} & {t.data_ptr() for t in b.values()}
    torch.manual_seed(5)
    seeded = archspec.build(spec)
    memo.clear()
    torch.manual_seed(5)
    fresh = archspec.build(spec)  # analysed afresh: the same network, the same draws from one seed
    assert report_of(fresh) is not report_of(seeded)
    assert fresh.code == seeded.code
    c, d = seeded.state_dict(), fresh.state_dict()
    assert list(c) == list(d) and all(torch.equal(c[k], d[k]) for k in c)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(seeded.eval()(x), fresh.eval()(x))


@pytest.mark.parametrize("edited", ["spec.yaml", "lib.yaml"])
def test_an_edit_is_never_missed_even_with_the_same_size_and_time(spec: Path, edited: str) -> None:
    """The spec's classifier 10 → 12, or the library's unit 16 → 24 channels: the same number of bytes,
    the file's times put back as they were."""
    archspec.build(spec)
    path = spec.parent / edited
    stamp = path.stat()
    text = path.read_text()
    new = text.replace("c: 16", "c: 24") if edited == "lib.yaml" else text.replace("linear 10", "linear 12")
    assert new != text and len(new) == len(text)
    _write(path, new, stamp)
    assert path.stat().st_mtime_ns == stamp.st_mtime_ns and path.stat().st_size == stamp.st_size
    shapes = _shapes(archspec.build(spec))
    c, classes = (24, 10) if edited == "lib.yaml" else (16, 12)  # what the edited text means
    assert shapes["body.0.conv.weight"] == (c, 16, 3, 3)
    assert shapes["body.1.conv.weight"] == (c, c, 1, 1)
    assert shapes["fc.weight"] == (classes, c)
    assert report_of(archspec.build(spec)).params == archspec.check(spec).params  # a fresh analysis agrees


def test_locations_follow_an_edit_that_changes_no_op(spec: Path) -> None:
    """A comment line added above the network: the same ops, every report line one further down."""
    before = {r.path: r.line for r in report_of(archspec.build(spec)).rows}
    _write(spec, SPEC.replace("network:\n", "# a comment\nnetwork:\n"))
    after = {r.path: r.line for r in report_of(archspec.build(spec)).rows}
    assert after == {path: line + 1 for path, line in before.items()}
    lines = spec.read_text().splitlines()
    assert lines[after["body"] - 1].strip().startswith("body:")
    assert after == {r.path: r.line for r in archspec.check(spec).rows}


def test_overrides_and_limits_are_part_of_what_a_report_is_made_from(spec: Path) -> None:
    plain = archspec.build(spec)
    wide = archspec.build(spec, {"input.size": [64, 64]})
    assert report_of(wide).input_size == (64, 64) and report_of(plain).input_size == (32, 32)
    assert report_of(archspec.build(spec, {"input.size": [64, 64]})) is report_of(wide)
    assert report_of(archspec.build(spec, {"input.size": [64.0, 64]})) is not report_of(wide)  # 64.0 is not 64
    with pytest.raises(archspec.SpecError, match="parameters"):
        archspec.build(spec, max_params=100)  # the limit is checked, not found in the report kept without it


def test_a_spec_given_as_text_or_data_is_kept_by_its_text(spec: Path) -> None:
    text = SPEC.replace("use: [lib.yaml]\n", "blocks: {unit: {params: {c: 16}, chain: [conv $c 3x3, conv $c 1x1]}}\n")
    first = archspec.build(text)
    assert report_of(archspec.build(text)) is report_of(first)
    other = archspec.build(text.replace("linear 10", "linear 12"))
    assert _shapes(other)["fc.weight"] == (12, 16)
    network = {"pool": "global_avgpool", "fc": "linear 4"}
    data = {"archspec": 1, "name": "as_data", "input": {"channels": 3, "size": [32, 32]}, "network": network}
    assert report_of(archspec.build(data)) is report_of(archspec.build(dict(data)))


def test_a_source_object_is_never_kept(spec: Path) -> None:
    from archspec.language.load import load_file

    first = archspec.build(load_file(spec))
    assert report_of(archspec.build(load_file(spec))) is not report_of(first)


def test_the_store_is_bounded(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memo, "MAX_REPORTS", 2)
    for size in (32, 40, 48, 56):
        archspec.build(spec, {"input.size": [size, size]})
    assert len(memo._REPORTS) == 2


def test_models_built_from_one_kept_report_change_apart(spec: Path) -> None:
    """Rebuilds share the report and the forward's record (archspec/compile.py); a model's own fx graph,
    changed and recompiled, changes neither the other model nor the next build."""
    a, b = archspec.build(spec), archspec.build(spec)
    code = b.code
    graph = a.graph
    out = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(out):
        negated = graph.call_function(torch.neg, (out.args[0],))
    out.args = (negated,)
    a.recompile()
    assert "torch.neg" in a.code
    assert b.code == code and "neg" not in str(b.graph)
    c = archspec.build(spec)
    assert c.code == code and "neg" not in str(c.graph)
    x = torch.randn(1, 3, 32, 32)
    c.load_state_dict(a.state_dict())
    assert torch.equal(a.eval()(x), -c.eval()(x))


def test_a_text_read_again_gives_a_tree_of_its_own(spec: Path) -> None:
    """language/load.py keeps each text's tree: every Source gets a copy, so an override applied to one
    build's tree is not in the next build's, and changing one loaded tree changes no other."""
    from archspec.language.load import load_file

    assert report_of(archspec.build(spec, {"input.size": [48, 48]})).input_size == (48, 48)
    memo.clear()
    assert report_of(archspec.build(spec)).input_size == (32, 32)
    first, again = load_file(spec), load_file(spec)
    assert first.data == again.data and first.marks == again.marks
    first.data["network"]["fc"] = "linear 3"
    first.marks.clear()
    third = load_file(spec)
    assert third.data["network"]["fc"] == "linear 10" and third.marks == again.marks


def test_a_kept_report_s_warnings_are_raised_under_strict(spec: Path) -> None:
    """A warned spec built, then built again with ``strict``: the kept report still raises its first warning,
    as a fresh ``check(strict=True)`` does (a gate whose body is one activation: archspec/suspicious.py)."""
    text = """archspec: 1
name: warned
input: {channels: 3, size: [16, 16]}
network:
  - c: conv2d 8 3x3
  - se:
      gate: [adaptive_avgpool 1x1, conv2d 2 1x1, relu, conv2d 8 1x1, {gate: sigmoid}]
  - global_avgpool
"""
    first = archspec.build(text)
    assert [w.code for w in report_of(first).warnings] == ["gate-activation"]
    with pytest.raises(archspec.SpecError) as kept:
        archspec.build(text, strict=True)
    with pytest.raises(archspec.SpecError) as fresh:
        archspec.check(text, strict=True)
    assert str(kept.value) == str(fresh.value) and kept.value.code == "gate-activation"
