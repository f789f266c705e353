"""The command line: output of `check`, exit codes, and the Quick start commands of the README."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from archspec.cli import main
from tests.paths import ROOT, SPECS


def test_check_prints_table_formulas_and_minimum(capsys) -> None:
    assert main(["check", str(SPECS / "inception_v4.yaml")]) == 0
    out = capsys.readouterr().out
    # a row per top-level block: Inception-A at features.6..9 is 384×35×35 (paper, Fig. 9)
    rows = [line for line in out.splitlines() if line.startswith("Inception-A")]
    assert len(rows) == 4
    assert all("384×35×35" in r and "384×floor((H - 19)/8)×floor((W - 19)/8)" in r for r in rows)
    assert "42,679,816 parameters" in out
    assert "minimum input size: 75×75" in out


def test_check_json_and_set(capsys) -> None:
    assert main(["check", str(SPECS / "inception_v4.yaml"), "--json", "--set", "input.size=[331,331]"]) == 0
    data = json.loads(capsys.readouterr().out)
    # one convention with summary --json: input_channels apart, sizes as [H, W]
    assert data["input_channels"] == 3 and data["input_size"] == [331, 331] and data["min_input_size"] == [75, 75]
    # floor((331 - 19)/8) = 39
    row = next(b for b in data["blocks"] if b["path"] == "features.6")
    assert row["output_shape"] == [384, 39, 39]


def test_cli_process_exit_codes_and_no_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: x\nnetwork:\n  f: [conv 8 3x3, cnov 8 3x3]\n")
    proc = subprocess.run([sys.executable, "-m", "archspec.cli", "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert re.match(rf"^{re.escape(str(bad))}:4:19: error: unknown op or block 'cnov'", proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_readme_quick_start_commands_are_the_ci_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    first, second = blocks[0], blocks[1]
    assert "archspec check specs/inception_v4.yaml" in first or "archspec render" in first
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = [line for line in second.splitlines() if "pytest" in line][0].strip()
    assert test_command in ci
    for line in second.splitlines():
        if line.startswith("pip install"):
            assert line.replace("pip install", "python -m pip install -q") in ci or line in ci


def test_diff_takes_its_second_spec_after_options(capsys) -> None:
    """issue 20: `diff A --set-b … B` as argparse users expect, the same as `diff A B --set-b …`."""
    spec = str(SPECS / "inception_v4.yaml")
    assert main(["diff", spec, "--set-b", "input.size=[331,331]", spec]) == 0
    late = capsys.readouterr().out
    assert main(["diff", spec, spec, "--set-b", "input.size=[331,331]"]) == 0
    assert capsys.readouterr().out == late and "331×331" in late
    try:  # anything else left over is still an error
        main(["check", spec, "stray"])
        raise AssertionError("a stray argument was accepted")
    except SystemExit as e:
        assert e.code == 2


def test_build_refuses_a_network_over_the_activation_budget(tmp_path, capsys) -> None:
    """Few weights, huge maps: check is instant, but a forward pass at input.size would need 12 GiB."""
    import pytest

    import archspec

    text = (
        "archspec: 1\nname: wide\ninput: {channels: 3, size: [16384, 16384]}\n"
        "network: [conv2d 8 3x3 p1, global_avgpool, linear 10]\n"
    )
    n = 16384 * 16384
    values = 3 * n + 8 * n + 8 + 10  # the input, the conv's map, the pooled vector, the logits
    assert archspec.check(text).params == 8 * 27 + 8 + 10 * 8 + 10  # checking computes nothing
    with pytest.raises(archspec.SpecError) as info:
        archspec.build(text)
    err = info.value
    assert err.code == "limit" and f"computes {values:,} activation values (one image)" in err.message
    assert "max_activations" in (err.hint or "") and "input.size" in (err.hint or "")
    model = archspec.build(text, max_activations=values)  # the budget is inclusive and can be raised
    assert sum(p.numel() for p in model.parameters()) == 8 * 27 + 8 + 10 * 8 + 10
    with pytest.raises(archspec.SpecError, match="activation values"):
        archspec.build(text, overrides={"input.size": [64, 64]}, max_activations=values // n)
    assert archspec.build(text, overrides={"input.size": [64, 64]}) is not None
    with pytest.raises(TypeError, match="max_activations must be an int"):
        archspec.build(text, max_activations="many")
    # the command that builds, export, refuses it the same way, before writing anything
    spec = tmp_path / "wide.yaml"
    spec.write_text(text)
    assert main(["export", str(spec), "-o", str(tmp_path / "wide.pt2")]) == 2
    out = capsys.readouterr().err
    assert f"computes {values:,} activation values" in out and "[limit]" in out and "Traceback" not in out
    assert not (tmp_path / "wide.pt2").exists()


def test_help_of_the_program_and_every_command(capsys) -> None:
    # argparse %-formats help text: one stray % in a command's docstring made `archspec --help` a traceback
    from archspec.cli import COMMANDS

    for argv in [["--help"], *[[name, "--help"] for name in COMMANDS]]:
        try:
            main(argv)
        except SystemExit as stop:
            assert stop.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith("usage: archspec"), argv
    for module in ("archspec.cli", "archspec"):  # the installed command's module, and `python -m archspec`
        main_help = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert main_help.returncode == 0 and main_help.stderr == "", module
        assert main_help.stdout.startswith("usage: archspec") and all(name in main_help.stdout for name in COMMANDS)
    bad = subprocess.run([sys.executable, "-m", "archspec", "check", "no-such.yaml"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no-such.yaml" in bad.stderr and "Traceback" not in bad.stderr


def test_list_fits_the_terminal_and_cuts_only_at_words(capsys, monkeypatch) -> None:
    from archspec.library import ZOO

    for columns in (80, 100, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        assert main(["list"]) == 0
        rows = capsys.readouterr().out.splitlines()
        # each zoo spec, then a row for each member of its family (its variants:, read here with PyYAML), by
        # the member's own zoo name (the name it gives the network), its label the variant it is
        specs = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in ZOO.glob("*.yaml")}
        family = {s: [(m, v.get("name", f"{s}_{m}")) for m, v in (d.get("variants") or {}).items()] for s, d in specs.items()}
        want = [n for stem in sorted(family) for n in [f"zoo:{stem}", *(f"zoo:{name}" for _, name in family[stem])]]
        assert [r.split()[0] for r in rows] == want
        assert all(len(r) < columns for r in rows), columns
        # a cut label ends in an ellipsis after a whole word of the spec's header (a member's: of
        # "--variant NAME of zoo:SPEC"), never inside a word
        stem = ""
        for r in rows:
            label = r.split("  ")[-1]
            stem = r.split()[0][4:] if r.startswith("zoo:") else stem
            member = next((f"--variant {m} of zoo:{stem}" for m, name in family[stem] if r.split()[0] == f"zoo:{name}"), None)
            if member is not None:
                assert member.startswith(label.removesuffix("…")) and (label == member or member[len(label) - 1] == " "), r
            elif label.endswith("…"):
                header = (ZOO / f"{stem}.yaml").read_text(encoding="utf-8")
                assert set(re.findall(r"[\w×.()']+", label[:-1])) <= set(re.findall(r"[\w×.()']+", header)), r
    monkeypatch.setenv("COLUMNS", "200")
    main(["list"])
    v4 = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("zoo:inception_v4 "))
    # 42,679,816 parameters (the paper's Inception-v4 as timm builds it), shown in millions
    assert "42.7 M params" in v4 and "min 75×75" in v4 and "Inception-v4" in v4
