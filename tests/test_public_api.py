"""The public API (docs/design.md, "The public functions"): the table there is ``archspec.__all__``,
``dir(archspec)`` lists every name, options are keyword-only, and the functions named like modules
stay functions whatever is imported."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys

import archspec
from tests.paths import DOCS, ROOT, SPECS

TINY = ROOT / "tests" / "specs" / "tiny_aux.yaml"


def _table_names() -> set[str]:
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    section = text.split("## The public functions", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)(?:\(|`)", row.split("|")[1])}


def test_the_design_table_is_all() -> None:
    assert _table_names() == set(archspec.__all__) - {"__version__"}


def test_dir_lists_every_public_name_and_each_resolves() -> None:
    assert set(archspec.__all__) <= set(dir(archspec))
    for name in archspec.__all__:
        assert getattr(archspec, name) is not None


def test_options_are_keyword_only() -> None:
    for name in ("check", "analyze", "build", "render", "render_page", "summary", "compile", "export", "diff"):
        params = inspect.signature(getattr(archspec, name)).parameters.values()
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert set(positional) <= {"spec", "overrides", "path", "a", "b"}, (name, positional)


def test_functions_named_like_modules_stay_functions() -> None:
    for name in ("render", "summary", "diff", "compile", "export"):
        importlib.import_module(f"archspec.{name}")
        assert callable(getattr(archspec, name)) and inspect.isfunction(getattr(archspec, name)), name


def test_analyze_returns_the_report_with_its_graph() -> None:
    report = archspec.analyze(TINY)
    assert isinstance(report, archspec.Report) and report.params == report.graph.net.params > 0


def test_compile_is_what_the_command_writes() -> None:
    """The function and `archspec compile` (another process) give the same file."""
    spec = SPECS / "resnet18.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "archspec.cli", "compile", str(spec)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert archspec.compile(spec) == done.stdout


def test_summary_and_diff_agree_with_the_report() -> None:
    report = archspec.check(TINY)
    summary = archspec.summary(TINY)
    assert summary.report.params == report.params
    d = archspec.diff(TINY, overrides_b={"network.fc": "linear 5"})
    assert any(r.status != "same" for r in d.rows)


# The modules each public function calls into: its command calls the function instead.
WRAPPED = {
    "render": {"archspec.render", "archspec.view", "archspec.pipeline", "archspec.api"},
    "summary": {"archspec.summary", "archspec.api"},
    "diff": {"archspec.diff", "archspec.summary", "archspec.api"},
    "compile": {"archspec.codegen", "archspec.compile", "archspec.api"},
    "export": {"archspec.api", "archspec.inference", "archspec.weights"},
}


def test_commands_are_thin_wrappers_over_the_public_functions() -> None:
    """archspec/commands/X.py reads its arguments and calls archspec.X (public.py); it does not reach
    past it into the modules the function calls (so the CLI and the API cannot drift apart)."""
    for command, below in WRAPPED.items():
        tree = ast.parse((ROOT / "archspec" / "commands" / f"{command}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # names used in annotations only: never imported at run time
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert not imported & below, (command, imported & below)
        assert f"public.{command}" in calls, command
