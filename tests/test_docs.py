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
import yaml

from archspec.docgen import BEGIN, END, ops_reference
from archspec.errors import ERROR_CODES
from archspec.ops import REGISTRY
from tests.paths import ROOT

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
    for word in REGISTRY[name].flags:  # the bare words of its short form (no_bn, dw, ceil...)
        assert f"`{word}`" in text, word


def test_language_reference_covers_every_key():
    from archspec.language.model import (
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

YAML_DOCS = [DOCS / "language.md", DOCS / "tutorial.md", DOCS / "import.md", DOCS / "timm.md", ROOT / "README.md"]
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

    def body_lines(self) -> range:
        """The lines of spec() that the reader sees (1-based)."""
        first = 1 if self.kind == "spec" else 3 + self.frame.count("\n") + (self.kind != "keys")
        return range(first, first + self.body.count("\n"))

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
        before = text[: m.start()].rstrip()
        mark = _MARK.search(before[before.rfind("<!--") :]) if before.endswith("-->") else None
        if mark is None:
            if _is_whole_spec(body):
                out.append(Example(name, line, "spec", body))
            else:
                out.append(
                    Example(
                        name,
                        line,
                        "bad",
                        body,
                        reason="a ```yaml block that is not a whole spec needs a <!-- yaml: KIND --> comment before it",
                    )
                )
            continue
        head = mark["head"]
        if head.startswith("unchecked"):
            reason = head[len("unchecked") :].strip(" —-:")
            out.append(
                Example(
                    name,
                    line,
                    "unchecked" if reason else "bad",
                    body,
                    reason=reason or "say why the example is unchecked: <!-- yaml: unchecked — REASON -->",
                )
            )
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
        # the mistake is in the text shown, not in the hidden completion (a whole-file error has line 0)
        assert info.value.line == 0 or info.value.line in example.body_lines(), info.value.format()
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
    if isinstance(out, dict):  # outputs: several, in order
        assert list(out) == list(report.main), example.where
        h, w = report.input_size
        assert all(tuple(v.shape[1:]) == report.outputs[k].at(h, w) for k, v in out.items()), example.where
        return
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


@pytest.mark.slow
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
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, (
            f"block {i + 1} failed:\n{block}\n--- stdout\n{r.stdout[-2000:]}\n--- stderr\n{r.stderr[-2000:]}"
        )
    assert "torch.Size([1, 1000])" in r.stdout  # the last block builds the variant and runs it


# ---- the JSON Schema and the error codes are documented ------------------------------------------

SCHEMAS = [DOCS / "archspec.schema.json", DOCS / "archspec-blocks.schema.json"]

# Where docs/language.md explains each definition of the schemas (a heading's anchor). A new
# definition fails test_schema_definitions_are_documented until it is given its section here.
DEFINITION_SECTIONS = {
    "AuxHead": "auxiliary-heads-aux",
    "BlockDef": "blocks-and-parameters",
    "BlockRef": "nodes",
    "ChainNode": "nodes",
    "ConcatNode": "nodes",
    "Distribution": "initialisation-init",
    "GateNode": "gates-squeeze-and-excitation",
    "FromNode": "reading-earlier-values-from",
    "ShareNode": "shared-weights-share",
    "IfNode": "conditional-parts-if",
    "InputSpec": "top-level-keys",
    "Members": "nodes",
    "Node": "nodes",
    "OpLong": "ops",
    "ResidualBody": "nodes",
    "ResidualNode": "nodes",
    "ScaleSpec": "multipliers-scale",
    "TensorInit": "initialisation-init",
}


def _schema_words() -> tuple[set[str], set[str], set[str]]:
    """(definition names, property names, enumerated string values) of both schemas."""
    import json

    defs: set[str] = set()
    props: set[str] = set()
    values: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            props.update(node.get("properties", {}))
            defs.update(node.get("$defs", {}))
            values.update(v for v in node.get("enum", []) if isinstance(v, str))
            if isinstance(node.get("const"), str):
                values.add(node["const"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in SCHEMAS:
        walk(json.loads(path.read_text()))
    return defs, props, values


def _code_words(text: str) -> set[str]:
    """The words written as code in a Markdown text: inline code and code blocks."""
    code = re.findall(r"^```.*?^```", text, flags=re.S | re.M)
    code += re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    return {w for chunk in code for w in re.findall(r"\$?[A-Za-z_][A-Za-z0-9_]*", chunk)}


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown text's headings."""
    headings = re.findall(r"^#+ (.*)$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_schema_definitions_are_documented() -> None:
    defs, _, _ = _schema_words()
    assert set(DEFINITION_SECTIONS) == defs, "give each new schema definition its section in DEFINITION_SECTIONS"
    anchors = _anchors((DOCS / "language.md").read_text())
    missing = {d: a for d, a in DEFINITION_SECTIONS.items() if a not in anchors}
    assert not missing, missing


def test_every_schema_key_and_value_is_in_the_language_reference() -> None:
    """Every property name of either schema (top-level keys, node keywords, block keys, op
    parameters, init schemes...) and every enumerated value is written as code in language.md."""
    _, props, values = _schema_words()
    words = _code_words((DOCS / "language.md").read_text())
    assert not sorted(props - words), "undocumented schema keys"
    assert not sorted(values - words), "undocumented schema values"


def test_language_reference_links_resolve() -> None:
    text = (DOCS / "language.md").read_text()
    anchors = _anchors(text)
    assert not sorted(set(re.findall(r"\]\(#([^)]+)\)", text)) - anchors)
    error_anchors = set(re.findall(r'<a id="([\w-]+)"></a>', (DOCS / "errors.md").read_text()))
    assert not sorted(set(re.findall(r"\]\(errors\.md#([^)]+)\)", text)) - error_anchors)


def _checked_data() -> list[object]:
    """The YAML data of every example that is checked and must pass."""
    return [yaml.safe_load(e.spec()) for e in ALL_EXAMPLES if e.kind in KINDS and not e.error]


def test_every_construct_has_a_runnable_example() -> None:
    """Every key of the language (the schemas' properties, op parameters aside: the op reference
    lists those) is used by an example that is checked, built and run, and so is every op, every
    node form and every kind of block body."""
    keys: set[str] = set()
    strings: list[str] = []
    todo = _checked_data()
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            keys.update(str(k) for k in item)
            todo.extend(item.values())
            if isinstance(item.get("op"), str):
                strings.append(item["op"])
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            strings.append(item)
    _, props, _ = _schema_words()
    op_params = {f for op in REGISTRY.values() for f in op.Params.model_fields}
    assert not sorted(props - op_params - set(REGISTRY) - keys), "keys without a runnable example in the docs"
    first_words = {s.split()[0] for s in strings if s.strip()}
    standalone = {name for name, op in REGISTRY.items() if op.standalone}
    assert not sorted(standalone - first_words), "ops without a runnable example in the docs"
    forms = {
        "a repeat (* N)": r"\s\*\s*\d+$",
        "a block parameter as key=value": r"^\w+ (\w+=\S+ ?)+",
        "a $parameter": r"\$[A-Za-z_]",
        "an expression ${...}": r"\$\{",
        "a flag word": r"\s(ceil|exclude_pad|no_bias|dw|fixed)\b",
    }
    missing = [form for form, pattern in forms.items() if not any(re.search(pattern, s) for s in strings)]
    assert not missing, missing
    bodies = {
        key
        for data in _checked_data()
        if isinstance(data, dict)
        for block in (data.get("blocks") or {}).values()
        for key in block
    }
    assert bodies >= {"concat", "residual", "gate", "chain", "op"}, "a block body without a runnable example"


# ---- error codes ---------------------------------------------------------------------------------


def _literals(expr: object) -> list[str]:
    """The strings an expression can be: a literal, or either side of `A if C else B` (else none)."""
    import ast

    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.IfExp):
        body, other = _literals(expr.body), _literals(expr.orelse)
        return body + other if body and other else []
    return []


def _raised_codes() -> dict[str, list[str]]:
    """code → where archspec's source raises it: every SpecError(...) and SpecWarning(...) call."""
    import ast

    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "archspec").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("SpecError", "SpecWarning")
            ):
                continue
            code: ast.expr | None = next((k.value for k in node.keywords if k.arg == "code"), None)
            if code is None and node.func.id == "SpecWarning" and len(node.args) > 2:
                code = node.args[2]
            if isinstance(code, ast.Attribute) and code.attr == "code":
                continue  # an error passed on with the code it had (e.code)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            values = ["schema"] if code is None else _literals(code)
            assert values, f"{where}: the code must be written as a literal (or a choice of literals)"
            for value in values:
                found.setdefault(value, []).append(where)
    return found


def test_every_error_code_raised_is_declared_and_explained() -> None:
    raised = _raised_codes()
    undeclared = {c: w for c, w in raised.items() if c not in ERROR_CODES}
    assert not undeclared, undeclared
    assert set(ERROR_CODES) <= set(raised), f"declared but never raised: {set(ERROR_CODES) - set(raised)}"
    rows = {
        m[0]: (m[1].strip(), m[2].strip())
        for m in re.findall(
            r'^\| <a id="([\w-]+)"></a>`[\w-]+` \|([^|]+)\|([^|]+)\|$', (DOCS / "errors.md").read_text(), flags=re.M
        )
    }
    for code in ERROR_CODES:
        assert code in rows, f"errors.md: no row '| <a id=\"{code}\"></a>`{code}` | meaning | what to do |'"
        meaning, todo = rows[code]
        assert len(meaning) > 20 and len(todo) > 10, code


def test_language_reference_links_the_error_codes_it_mentions() -> None:
    """An error code in language.md is a link to its explanation: [`code`](errors.md#code)."""
    text = (DOCS / "language.md").read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    unlinked = []
    for m in re.finditer(r"(\[?)`([\w-]+)`(\]\(errors\.md#([\w-]+)\))?( (?:error|warning))?", prose):
        code = m[2]
        if code not in ERROR_CODES or not ("-" in code or m[5] or m[3]):
            continue  # a key such as `name` or `use`, not an error code
        if not (m[1] and m[3] and m[4] == code):
            unlinked.append(prose[max(0, m.start() - 30) : m.end() + 10].replace("\n", " "))
    assert not unlinked, unlinked
    assert len(re.findall(r"\]\(errors\.md#", prose)) >= 10
