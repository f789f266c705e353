"""docs/zoo.md's numbers are what `archspec.check` reports for each spec, and every spec is listed."""

from __future__ import annotations

import re

import pytest

import archspec
from tests.paths import ROOT, SPECS

ZOO = ROOT / "docs" / "zoo.md"
ROW = re.compile(r"^\|\s*`specs/(?P<spec>[\w/]+\.yaml)`\s*\|(?P<cells>.*)\|\s*$")


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in ZOO.read_text().splitlines():
        if m := ROW.match(line):
            rows[m["spec"]] = [c.strip() for c in m["cells"].split("|")]
    return rows


ROWS = _rows()


def test_every_spec_is_in_the_table() -> None:
    assert sorted(p.name for p in SPECS.glob("*.yaml")) == sorted(ROWS)


@pytest.mark.parametrize("spec", sorted(ROWS))
def test_row_matches_check(spec: str) -> None:
    _network, params, macs, min_input, _reference = ROWS[spec]
    report = archspec.check(SPECS / spec)
    assert int(params.replace(",", "")) == report.params
    m = re.match(r"([\d.]+)\s*G(?:MACs)? at (\d+)×(\d+)$", macs)
    assert m, f"MACs cell {macs!r}: write e.g. '4.09 G at 224×224'"
    assert m[1] == f"{report.macs / 1e9:.2f}" and (int(m[2]), int(m[3])) == report.input_size
    assert min_input == "{}×{}".format(*report.min_input_size)
