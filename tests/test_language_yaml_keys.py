"""Keys YAML 1.1 reads as booleans (docs/language.md, "Blocks and parameters"; docs/errors.md, `schema`):
unquoted, `off: 1` is `{False: 1}`. Such a key is refused where it is written, saying so and to quote it;
quoted, it is an ordinary name: a block parameter used as `$off`, passed as `off=2`, written back quoted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import archspec
from archspec.cli import main
from archspec.errors import SpecError

QUOTED = """\
archspec: 1
name: quoted
input: {channels: 3, size: [8, 8]}
blocks:
  unit:
    params: {'off': 0, 'yes': 8}
    chain: [conv $yes 3x3 p$off]
network: [unit off=1, {block: unit, params: {'off': 1, 'yes': 4}}, unit]
"""


@pytest.mark.parametrize("word", ["off", "on", "yes", "no", "true", "false", "Off", "YES"])
@pytest.mark.parametrize(
    "where, line, column",
    [
        ("params", 6, 14),  # a block parameter
        ("network", 7, 5),  # a node's name
        ("defaults", 3, 19),  # an option under defaults:
    ],
)
def test_an_unquoted_boolean_key_is_refused_where_it_is_written(word: str, where: str, line: int, column: int) -> None:
    text = {
        "params": f"blocks:\n  unit:\n    params: {{{word}: 1, w: 8}}\n    chain: [conv $w 3x3]\nnetwork: [unit]\n",
        "network": "blocks: {}\nnetwork:\n  - conv 8 3x3\n" + f"  - {word}: conv 8 3x3\n",
        "defaults": f"defaults: {{conv: {{{word}: 1}}}}\nnetwork: [conv 8 3x3]\n",
    }[where]
    header = "archspec: 1\nname: m\n" if where == "defaults" else "archspec: 1\nname: m\ninput: {channels: 3, size: [8, 8]}\n"
    footer = "input: {channels: 3, size: [8, 8]}\n" if where == "defaults" else ""
    with pytest.raises(SpecError) as info:
        archspec.check(header + text + footer)
    err = info.value
    value = yaml.safe_load(f"{word}: 1")  # what YAML makes of it: the truth the message reports
    assert list(value) in ([True], [False])
    assert err.code == "schema" and (err.line, err.column) == (line, column), err.format()
    assert f"the key {word!r} is read by YAML as the boolean {str(next(iter(value))).lower()}" in err.message
    assert err.hint is not None and f"quote it: '{word}'" in err.hint


def test_a_quoted_key_is_a_name() -> None:
    report = archspec.check(QUOTED)
    convs = [r for _, r in report.graph.records() if r.op == "conv2d"]
    assert [(r.params.out, r.params.padding) for r in convs] == [(8, (1, 1)), (4, (1, 1)), (8, (0, 0))]
    text = archspec.dump(yaml.safe_load(QUOTED))  # written back with its quotes: it reads back the same
    assert "'off': 0" in text and archspec.check(text).params == report.params


def test_an_override_value_with_a_boolean_key_is_refused_at_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "quoted.yaml"
    path.write_text(QUOTED)
    assert main(["check", str(path), "--set", "blocks.unit.params={on: 1}"]) == 2
    err = capsys.readouterr().err
    # the column counts from the key: `on` is the 21st character of blocks.unit.params={on: 1}
    assert err.startswith("--set blocks.unit.params:1:21: error: the key 'on' is read by YAML as the boolean true"), err
