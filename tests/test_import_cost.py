"""Checking a spec must not import torch (importing torch alone costs seconds and ~650 MB)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.paths import ROOT


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_check_does_not_import_torch() -> None:
    out = _run(
        "import sys, archspec\n"
        "r = archspec.check('specs/inception_v4.yaml')\n"
        "assert r.output_shape == (1000,), r.output_shape\n"
        "print(sorted(m for m in ('torch', 'sympy', 'timm', 'numpy') if m in sys.modules))"
    )
    assert out == "[]"


def test_cli_check_does_not_import_torch() -> None:
    out = _run(
        "import sys, contextlib, io\n"
        "from archspec.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['check', 'specs/inception_v4.yaml'])\n"
        "print(rc, 'torch' in sys.modules)"
    )
    assert out == "0 False"


def test_optimize_is_exported_lazily() -> None:
    out = _run(
        "import sys, archspec\n"
        "before = 'torch' in sys.modules\n"
        "from archspec.inference import optimize\n"
        "print(before, archspec.optimize is optimize)"
    )
    assert out == "False True"
