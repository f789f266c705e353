"""Docs that cannot drift: the op reference is generated from the registry, the tutorial runs."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from archspec.docgen import BEGIN, END, ops_reference
from archspec.errors import ERROR_CODES
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


# ---- every YAML example is checked --------------------------------------------------------------
#
# Each ```yaml block of the documents below is one of:
#
# - a whole spec (a mapping with `archspec:` and `network:`): checked, built and run;
# - a fragment, announced by an HTML comment right before the block, invisible once rendered:
#       <!-- yaml: network -->      the block is a node, the value of `network:`
#       <!-- yaml: blocks -->       the block is block definitions, the value of `blocks:`
#       <!-- yaml: keys -->         the block is top-level keys of a spec
#   Lines after the first line of the comment are top-level keys that complete the spec (an
#   `input:`, a `network:` using the blocks shown...). `archspec: 1` and a `name:` are added;
# - `spec`, or any of the fragments, followed by `, error CODE`: it must be refused with that code
#   (by check, or by build), and with the text of any `# error: TEXT` comment in the block; followed
#   by `, warning CODE`: check passes with that warning;
# - <!-- yaml: unchecked — REASON -->: not checked, for the reason given (which must be given).
#
# Whole specs may `use:` the zoo's libraries as `blocks/NAME.yaml`: they are checked next to a copy of
# specs/blocks.

YAML_DOCS = [DOCS / "language.md", DOCS / "tutorial.md", DOCS / "import.md", ROOT / "README.md"]
_FENCE = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!--\s*yaml:\s*(?P<head>[^\n]*?)\s*(?:\n(?P<frame>.*?))?-->\s*\Z", re.S)
KINDS = ("spec", "network", "blocks", "keys")


@dataclass
class Example:
    doc: str
    line: int  # of the opening fence
    kind: str  # spec, network, blocks, keys or unchecked
    body: str
    frame: str = ""
    error: str | None = None
    warning: str | None = None
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def spec(self) -> str:
        """The whole spec the example stands for."""
        if self.kind == "spec":
            return self.body
        head = "archspec: 1\nname: example\n" + self.frame
        if self.kind == "network":
            return head + "network:\n" + textwrap.indent(self.body, "  ")
        if self.kind == "blocks":
            return head + "blocks:\n" + textwrap.indent(self.body, "  ")
        return head + self.body


def _is_whole_spec(text: str) -> bool:
    return bool(re.search(r"^archspec:", text, re.M) and re.search(r"^network:", text, re.M))


def yaml_examples(path: Path) -> list[Example]:
    text = path.read_text()
    name = str(path.relative_to(ROOT))
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        body = m.group(1)
        before = text[:m.start()].rstrip()
        mark = _MARK.search(before[before.rfind("<!--"):]) if before.endswith("-->") else None
        if mark is None:
            if _is_whole_spec(body):
                out.append(Example(name, line, "spec", body))
            else:
                out.append(Example(name, line, "bad", body, reason="a ```yaml block that is not a whole spec needs "
                                                                       "a <!-- yaml: KIND --> comment before it"))
            continue
        head = mark["head"]
        if head.startswith("unchecked"):
            reason = head[len("unchecked"):].strip(" —-:")
            out.append(Example(name, line, "unchecked" if reason else "bad", body, reason=reason or
                               "say why the example is unchecked: <!-- yaml: unchecked — REASON -->"))
            continue
        kind, *options = [p.strip() for p in head.split(",")]
        ex = Example(name, line, kind, body, textwrap.dedent(mark["frame"] or ""))
        if kind not in KINDS:
            ex.kind, ex.reason = "bad", f"unknown example kind {kind!r} (one of {', '.join(KINDS)}, or unchecked)"
        for option in options:
            word, _, code = option.partition(" ")
            if word in ("error", "warning") and code in ERROR_CODES:
                setattr(ex, word, code)
            else:
                ex.kind, ex.reason = "bad", f"{option!r} is not 'error CODE' or 'warning CODE' with a code of errors.md"
        out.append(ex)
    return out


ALL_EXAMPLES = [e for doc in YAML_DOCS for e in yaml_examples(doc)]


def _copy_libraries(folder: Path) -> None:
    if not (folder / "blocks").exists():
        shutil.copytree(ROOT / "specs" / "blocks", folder / "blocks")


def test_every_yaml_example_says_what_it_is() -> None:
    bad = [f"{e.where}: {e.reason}" for e in ALL_EXAMPLES if e.kind == "bad"]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("example", [e for e in ALL_EXAMPLES if e.kind in KINDS], ids=lambda e: e.where)
def test_yaml_example(example: Example, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example checks, builds and runs, with the output shape check reports; or it is refused
    with the code it documents."""
    import torch

    import archspec

    folder = tmp_path_factory.getbasetemp() / "examples"
    folder.mkdir(exist_ok=True)
    _copy_libraries(folder)
    spec = folder / f"{example.doc.replace('/', '_')}_{example.line}.yaml"
    spec.write_text(example.spec())
    if example.error:
        with pytest.raises(archspec.SpecError) as info:
            archspec.check(spec)
            archspec.build(spec)
        assert info.value.code == example.error, f"{example.where}: {info.value.format()}"
        for said in re.findall(r"# error: (.*)$", example.body, flags=re.M):  # what the comment says it says
            assert said.strip() in info.value.format(), f"{example.where}: {said!r} not in {info.value.format()!r}"
        return
    try:
        report = archspec.check(spec)
    except archspec.SpecError as e:
        pytest.fail(f"{example.where}: the example is refused:\n{e.format()}\n--- as checked:\n{example.spec()}")
    assert [w.code for w in report.warnings] == ([example.warning] if example.warning else []), example.where
    model = archspec.build(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(1, report.input_channels, *report.input_size))
    assert tuple(out.shape[1:]) == report.output_shape


def test_yaml_examples_are_found() -> None:
    """The convention is applied: the reference has examples of every kind, each in one place."""
    kinds = {e.kind for e in ALL_EXAMPLES if e.doc == "docs/language.md"}
    assert kinds >= {"spec", "network", "blocks", "keys"}
    assert any(e.error for e in ALL_EXAMPLES) and any(e.warning for e in ALL_EXAMPLES)
    fences = sum(len(re.findall(r"^```yaml", d.read_text(), flags=re.M)) for d in YAML_DOCS)
    indented = sum(len(re.findall(r"^ +```yaml", d.read_text(), flags=re.M)) for d in YAML_DOCS)
    assert indented == 0, "write ```yaml fences at the start of a line so that they are checked"
    assert len(ALL_EXAMPLES) == fences


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
