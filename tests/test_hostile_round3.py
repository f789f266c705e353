"""Issue 24, "nothing escapes, round 3": each hostile or clumsy input ends in one located error (or a
warning that --strict makes one), fast. The expected outcome of each is written here from the issue
and docs/language.md, not taken from the code's output. Spec-shaped cases live in tests/errors/."""

from __future__ import annotations

import pytest

import archspec
from archspec.cli import main
from tests.paths import ROOT

V4 = str(ROOT / "specs" / "inception_v4.yaml")
R18 = str(ROOT / "specs" / "resnet18.yaml")
HEADER = "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"


@pytest.mark.parametrize(
    "expr",
    [
        "int(1e999)",
        "floor(1e999)",
        "ceil(-1e999)",
        "round(1e999)",
        "make_divisible(1e999)",
        "make_divisible(8, 1e999)",
        "round(5, -1000000000)",
        "round(5, 2.5)",
        "max(8, 99999999999999999999999)",
        "min(8, -99999999999999999999999)",
        "8 if 1e999 > 0 else 4",
        "int(-(-1e999))",
    ],
)
def test_expression_numbers_out_of_bounds_are_located_errors(expr: str) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + f"network:\n  - conv ${{{expr}}} 3x3 p1\n")
    assert e.value.code == "param" and e.value.line == 5, e.value.format()


def test_an_expression_through_set_is_bounded_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", R18, "--set", "network.conv1=conv ${round(5, -100000000)} 3x3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--set network.conv1:") and "[param]" in err and "digit count" in err


def test_a_negative_index_in_set_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", V4, "--set", "network.features.-1=relu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--set network.features.-1:1:18: error:") and "[override]" in err
    assert "network.features.10" in err  # the hint names the last item's index
    assert main(["check", V4, "--set", "network.features.11=relu"]) == 2  # past the end, as before
    assert "[override]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "spec, key",
    [(V4, "network.features.inception_a.repat=6"), (R18, "network.conv1.repat=6"), (R18, "network.layer1.0.repaet=3")],
)
def test_a_misspelt_repeat_suggests_repeat(spec: str, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", spec, "--set", key]) == 2
    assert "did you mean 'repeat'?" in capsys.readouterr().err
