"""Where things are, for every test: the repository root and its folders."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
DOCS = ROOT / "docs"
ZOO = ROOT / "archspec" / "zoo"
