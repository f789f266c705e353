"""The error catalogue: one small bad spec per mistake in tests/errors/, each naming the exact
location, code and message fragments it must produce in its first line:

    # expect: [FILE:]LINE:COL CODE: FRAGMENT | FRAGMENT ...

Every case is checked through the Python API (one SpecError, nothing else) and through the CLI
(exit status 2, the message on stderr starting FILE:LINE:COL:, no traceback).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from archspec.errors import ERROR_CODES

CASES = Path(__file__).parent / "errors"
_EXPECT = re.compile(rb"^# expect: (?:(?P<file>[\w./-]+):)?(?P<line>\d+):(?P<col>\d+) (?P<code>[\w-]+): (?P<text>.*)$")


def _cases() -> list[Path]:
    return sorted(CASES.glob("*.yaml"))


def _expectation(path: Path) -> tuple[Path, int, int, str, list[str]]:
    first = path.read_bytes().split(b"\n", 1)[0]
    m = _EXPECT.match(first)
    assert m, f"{path.name}: first line must be '# expect: LINE:COL CODE: fragment'"
    file = (path.parent / m["file"].decode()) if m["file"] else path
    fragments = [f.strip() for f in m["text"].decode().split("|")]
    return file, int(m["line"]), int(m["col"]), m["code"].decode(), fragments


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.stem)
def test_error_case_api(case: Path) -> None:
    file, line, col, code, fragments = _expectation(case)
    assert code in ERROR_CODES
    with pytest.raises(archspec.SpecError) as info:
        archspec.check(case)
    err = info.value
    assert Path(err.file).resolve() == file.resolve()
    assert (err.line, err.column, err.code) == (line, col, code), err.format()
    text = err.format()
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.stem)
def test_error_case_cli(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file, line, col, code, _ = _expectation(case)
    assert main(["check", str(case)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2
    assert lines[0].endswith(f"[{code}]")
    assert re.match(rf"^.*{re.escape(file.name)}:{line}:{col}: error: ", lines[0])
    assert "Traceback" not in err


def test_every_error_code_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    for code in ERROR_CODES:
        assert f"`{code}`" in doc, code


def test_catalogue_covers_most_codes() -> None:
    codes = {_expectation(c)[3] for c in _cases()}
    # override, io, weights and import concern command-line arguments, files and PyTorch modules, not
    # specs: tested in test_errors' override tests, test_export, test_codegen and test_import;
    # partial-merge is a warning (an error only under --strict), tested in test_miscompilations
    # gate-activation is a warning too, tested in test_hostile_round3; unread is one, in test_unread; residual-gate
    # one, in test_global_context
    warnings = {"partial-merge", "gate-activation", "unread", "residual-gate"}
    assert codes >= set(ERROR_CODES) - {"override", "io", "weights", "import"} - warnings


def test_override_errors_are_located_at_the_argument(capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(Path(__file__).parent.parent / "specs" / "inception_v4.yaml")
    assert main(["check", spec, "--set", "blocks.inception_a.concat.branc0=conv 96 1x1"]) == 2
    assert "did you mean 'branch0'?" in capsys.readouterr().err
    assert main(["check", spec, "--set", "blocks.inception_a.concat.branch0=cnov 96 1x1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--set blocks.inception_a.concat.branch0:1:35: error: unknown op or block 'cnov'")


def test_missing_file_is_a_located_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check", str(missing)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_internal_errors_exit_1_without_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import archspec.api

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(archspec.api, "check", broken)
    spec = str(Path(__file__).parent.parent / "specs" / "inception_v4.yaml")
    assert main(["check", spec]) == 1
    err = capsys.readouterr().err
    assert "bug in archspec" in err and "Traceback" not in err
    assert main(["check", spec, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_max_params_budget_can_be_raised(capsys: pytest.CaptureFixture[str]) -> None:
    case = str(CASES / "param_budget.yaml")
    assert main(["check", case]) == 2
    capsys.readouterr()
    assert main(["check", case, "--max-params", "100000000000", "-q"]) == 0


def test_atomic_write_leaves_existing_file_untouched_on_failure(tmp_path: Path) -> None:
    from archspec.fileio import write_atomic

    target = tmp_path / "out.txt"
    target.write_text("old")

    write_atomic(target, "new")
    assert target.read_text() == "new"
    with pytest.raises(archspec.SpecError):
        write_atomic(tmp_path / "missing-dir" / "x.txt", "data")
    import os

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    real = os.replace
    os.replace = failing_replace  # the last step fails: the old file must survive intact
    try:
        with pytest.raises(archspec.SpecError, match="No space left"):
            write_atomic(target, "newer")
    finally:
        os.replace = real
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left behind
