"""`archspec schema`: a valid JSON Schema that accepts every zoo spec, rejects broken ones, and is
the file in docs/ that the zoo's `# yaml-language-server: $schema=` lines point at."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from archspec.cli import main
from archspec.ops import REGISTRY
from tests.paths import ROOT, SPECS

ZOO = sorted(SPECS.glob("*.yaml"))
LIBRARIES = sorted((SPECS / "blocks").glob("*.yaml"))
LINE = "# yaml-language-server: $schema=../docs/archspec.schema.json"


@pytest.fixture(scope="module")
def printed() -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schema"]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def validator(printed):
    jsonschema.Draft202012Validator.check_schema(printed)
    return jsonschema.Draft202012Validator(printed)


@pytest.mark.parametrize("spec", ZOO, ids=lambda p: p.stem)
def test_zoo_spec_is_valid_and_points_at_the_schema(spec, validator):
    text = spec.read_text()
    assert text.splitlines()[0] == LINE
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(yaml.safe_load(text))]
    assert not errors, errors


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.stem)
def test_block_libraries_are_valid(library, capsys):
    first = library.read_text().splitlines()[0]
    if first.startswith("# yaml-language-server:"):  # a library is not a spec: it has its own schema
        assert first == "# yaml-language-server: $schema=../../docs/archspec-blocks.schema.json"
    assert main(["schema", "--blocks"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [e.message[:200] for e in jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(library.read_text()))]
    assert not errors, errors


@pytest.mark.parametrize("kind, name", [("spec", "archspec.schema.json"), ("blocks", "archspec-blocks.schema.json")])
def test_docs_copy_is_up_to_date(kind, name, tmp_path):
    target = tmp_path / name
    assert main(["schema", "-o", str(target)] + (["--blocks"] if kind == "blocks" else [])) == 0
    assert (ROOT / "docs" / name).read_text() == target.read_text(), (
        f"regenerate it: archspec schema {'--blocks ' if kind == 'blocks' else ''}-o docs/{name}"
    )


def _v4() -> dict:
    return yaml.safe_load((SPECS / "inception_v4.yaml").read_text())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(netwrok=d.pop("network")),  # misspelt key
        lambda d: d["input"].update(channels="three"),  # wrong type
        lambda d: d["network"]["features"].__setitem__(0, {"op": "conv", "outt": 32}),  # unknown op parameter
        lambda d: d["network"]["features"].__setitem__(0, {"op": "cnov", "out": 32}),  # unknown op
        lambda d: d["network"]["features"].__setitem__(0, {"op": "conv"}),  # missing required parameter
        lambda d: d["blocks"]["inception_a"].update(params=[1]),  # params must be a mapping
        lambda d: d.update(defaults={"conv": {"epss": 0.1}}),  # unknown default
        lambda d: d.update(scale={"width": -1}),  # out of range
        lambda d: d["network"]["features"].__setitem__(0, {"a": "conv 8 1x1", "b": "relu"}),  # two names
    ],
)
def test_schema_rejects_mistakes(mutate, validator):
    data = _v4()
    mutate(data)
    assert list(validator.iter_errors(data))


def test_long_forms_and_param_refs_are_accepted(validator):
    data = _v4()
    data["network"]["features"][0] = {"op": "conv", "out": 32, "kernel": 3, "stride": [2, 2], "fixed": True}
    data["blocks"]["reduction_a"]["concat"]["branch2"] = {"op": "maxpool", "kernel": "$n"}
    data["scale"] = {"width": 1.5, "depth": 2}
    assert not list(validator.iter_errors(data))


def test_every_op_has_a_long_form(printed):
    forms = printed["$defs"]["OpLong"]["oneOf"]
    names = {f["properties"]["op"]["const"] for f in forms}
    assert names == {n for n, op in REGISTRY.items() if op.arity == 1}
    conv = next(f for f in forms if f["properties"]["op"]["const"] == "conv")
    assert "out" in conv["required"] and "act" in conv["properties"]
