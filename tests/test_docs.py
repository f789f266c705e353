"""Docs that cannot drift: the op reference is generated from the registry, the tutorial runs."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.docgen import BEGIN, END, ops_reference
from archspec.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_language_reference_is_generated_from_the_registry():
    text = (DOCS / "language.md").read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    assert text[start:end] == ops_reference(), "regenerate it: python -m archspec.docgen"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_language_reference_mentions_every_op(name):
    text = (DOCS / "language.md").read_text()
    assert f"#### `{name}`" in text
    for field in REGISTRY[name].Params.model_fields:
        assert f"`{field}`" in text


def test_language_reference_covers_every_key():
    from archspec.spec.model import (
        AuxHead,
        BlockDef,
        BlockRef,
        ChainNode,
        GateNode,
        InputSpec,
        ResidualBody,
        ScaleSpec,
        Spec,
    )

    text = (DOCS / "language.md").read_text()
    for model in (Spec, BlockDef, BlockRef, InputSpec, ResidualBody, AuxHead, ScaleSpec, ChainNode, GateNode):
        for key, info in model.model_fields.items():
            assert f"`{info.alias or key}`" in text or f"{info.alias or key}:" in text, (model.__name__, key)


def test_whole_spec_examples_in_the_language_reference_build():
    """Every ```yaml example of docs/language.md that is a whole spec checks, builds and runs."""
    import torch

    import archspec

    examples = [b for b in re.findall(r"^```yaml\n(.*?)^```", (DOCS / "language.md").read_text(), flags=re.S | re.M)
                if b.startswith("archspec: 1")]
    assert examples
    for text in examples:
        report = archspec.check(text)
        model = archspec.build(text).eval()
        out = model(torch.randn(1, report.input_channels, *report.input_size))
        assert tuple(out.shape[1:]) == report.output_shape


def bash_blocks(path: Path) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def test_tutorial_commands_run(tmp_path):
    """Paste every ```bash block of docs/tutorial.md, in order, into a shell in a copy of the repository."""
    blocks = bash_blocks(DOCS / "tutorial.md")
    assert len(blocks) >= 6
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "specs", work / "specs")
    shutil.copytree(DOCS, work / "docs")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in (("archspec", f'"{sys.executable}" -m archspec.cli'), ("python", f'"{sys.executable}"')):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    for i, block in enumerate(blocks):
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, (f"block {i + 1} failed:\n{block}\n--- stdout\n{r.stdout[-2000:]}\n"
                                   f"--- stderr\n{r.stderr[-2000:]}")
    assert "torch.Size([1, 1000])" in r.stdout  # the last block builds the variant and runs it
