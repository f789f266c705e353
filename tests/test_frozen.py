"""`frozen:` (docs/language.md, "Frozen parameters"): the parameters of the modules it names, and of every
module under them, do not train (requires_grad False) in the built model and in the standalone file.

Truth: the sets of frozen parameter names are written out here by hand from the spec's module paths
(torchvision's rule: a parameter trains unless its name starts with a frozen module's path and a dot);
the zoo's FPN is compared with torchvision's own flags in tests/test_zoo_segmentation.py."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
import torch

import archspec
from archspec.cli import main

SPEC = """archspec: 1
name: t
input: {channels: 3, size: [16, 16]}
frozen: [stem, "layer*.1", head.ls]
network:
  - stem: conv 8 3x3 p1
  - layer1: [conv2d 8 3x3 p1, conv 8 3x3 p1, frozen_bn]
  - layer2: [conv2d 8 3x3 p1, conv 8 3x3 p1]
  - layer10: [conv2d 8 3x3 p1, conv 8 3x3 p1]
  - global_avgpool
  - head: {chain: {fc: linear 10, ls: layer_scale 0.5}}
"""
# stem is a composite conv: its conv2d and bn (stem.conv, stem.bn); "layer*.1" matches layer1.1,
# layer2.1 and layer10.1 (fnmatch's * crosses dots too, but a layer's .1 is what is written); head.ls is a
# tensor, not a module: it is frozen alone, head.fc trains
FROZEN = {
    "stem.conv.weight",
    "stem.bn.weight",
    "stem.bn.bias",
    *(f"layer{i}.1.{part}" for i in (1, 2, 10) for part in ("conv.weight", "bn.weight", "bn.bias")),
    "head.ls",
}


def _frozen(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def test_the_modules_it_names_and_everything_under_them_do_not_train() -> None:
    model = archspec.build(SPEC)
    names = {n for n, _ in model.named_parameters()}
    assert FROZEN < names and _frozen(model) == FROZEN
    assert archspec.check(SPEC).params == sum(p.numel() for p in model.parameters())  # still counted
    model.train()
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    assert {n for n, p in model.named_parameters() if p.grad is None} == FROZEN
    assert all(b.requires_grad is False for b in model.buffers())  # buffers untouched: frozen_bn's stay buffers
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    assert _frozen(torch.load(buffer, weights_only=False)) == FROZEN  # a saved model keeps its flags


def test_the_standalone_file_freezes_the_same(tmp_path: Path) -> None:
    source = archspec.compile(SPEC)
    assert "requires_grad_(False)" in source
    path = tmp_path / "t.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("generated_frozen", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.T()
    assert _frozen(generated) == FROZEN


def test_without_frozen_everything_trains() -> None:
    assert _frozen(archspec.build(SPEC, {"frozen": []})) == set()


@pytest.mark.parametrize(
    "entry, hint",
    [
        ("layer3", "did you mean 'layer"),  # a typo: nothing would be frozen
        ("layer1.2", "did you mean"),  # the frozen_bn: buffers only, nothing to freeze
        ("stem.conv.weight", "did you mean"),  # a tensor of a module: name the module
    ],
)
def test_an_entry_that_freezes_nothing_is_a_located_error(entry: str, hint: str) -> None:
    text = SPEC.replace('frozen: [stem, "layer*.1", head.ls]', f"frozen: [stem, {entry}]")
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(text)
    assert (e.value.code, e.value.line) == ("name", 4), e.value.format()
    assert f"{entry!r} matches no module with parameters" in e.value.message
    assert hint in (e.value.hint or "")


def test_the_cli_refuses_it_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(SPEC.replace("head.ls]", "head.lz]"))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4:" in err and "error: frozen: 'head.lz' matches no module with parameters" in err
    assert "Traceback" not in err


def test_an_entry_with_a_line_break_stays_a_comment_in_the_standalone_file(tmp_path: Path) -> None:
    """A pattern reaches the generated file only through repr(): one with a line break and quotes (it
    still matches: `[!...]` is any other character) cannot end the comment and run code."""
    text = SPEC.replace('frozen: [stem, "layer*.1", head.ls]', 'frozen: ["stem[!\\n\\"\']*"]')
    assert _frozen(archspec.build(text)) == {"stem.conv.weight", "stem.bn.weight", "stem.bn.bias"}
    source = archspec.compile(text)
    compile(source, "t.py", "exec")  # valid Python
    (comment,) = [line for line in source.splitlines() if "# the spec's frozen:" in line]
    assert comment.strip().startswith("#") and "\\n" in comment  # the line break written as \n
