"""Inception-v4 as written in specs/ equals timm's inception_v4 (the reference people trust)."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import SPECS

timm = pytest.importorskip("timm")

SPEC = SPECS / "inception_v4.yaml"


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    reference = timm.create_model("inception_v4").eval()
    model = archspec.build(SPEC).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return model, reference


def test_parameter_count_matches_timm_and_issue() -> None:
    reference = timm.create_model("inception_v4")
    expected = sum(p.numel() for p in reference.parameters())
    assert expected == 42_679_816
    assert archspec.check(SPEC).params == expected


def test_state_dict_keys_and_shapes_are_timms(pair) -> None:
    model, reference = pair
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours == theirs


@pytest.mark.slow
@pytest.mark.parametrize("size", [299, 331, 75])
def test_logits_match_timm(pair, size: int) -> None:
    model, reference = pair
    torch.manual_seed(size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    assert ours.shape == theirs.shape == (2, 1000)
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_minimum_input_size_runs_and_one_pixel_less_is_refused(pair) -> None:
    model, reference = pair
    report = archspec.check(SPEC)
    assert report.min_input_size == (75, 75)
    with torch.no_grad():
        model(torch.randn(1, 3, 75, 75))
        reference(torch.randn(1, 3, 75, 75))  # the reference agrees it is legal
        with pytest.raises(RuntimeError):
            reference(torch.randn(1, 3, 74, 74))  # ... and that one pixel less is not
        for bad in [(74, 75), (75, 74)]:
            with pytest.raises(ValueError, match="H >= 75 and W >= 75"):
                model(torch.randn(1, 3, *bad))


def test_forward_is_generated_straight_line_code(pair) -> None:
    model, reference = pair
    assert isinstance(model, torch.fx.GraphModule)
    code = model.code
    assert "for " not in code and "while " not in code
    # every leaf module is called exactly once, by name, from the generated code
    targets = [n.target for n in model.graph.nodes if n.op == "call_module"]
    leaves = [name for name, m in model.named_modules() if not list(m.children())]
    assert sorted(targets) == sorted(leaves)
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in reference.modules())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == n_convs


def test_report_shapes_follow_the_paper() -> None:
    # Inception-v4 paper, Figure 9: 35×35×384 after the stem and the A blocks, 17×17×1024 after
    # Reduction-A and the B blocks, 8×8×1536 after Reduction-B and the C blocks.
    report = archspec.check(SPEC)
    by_label: dict[str, set[tuple[int, ...]]] = {}
    for row in report.rows:
        by_label.setdefault(row.label, set()).add(row.shape.at(299, 299))
    assert by_label["Stem (5a)"] == {(384, 35, 35)}
    assert by_label["Inception-A"] == {(384, 35, 35)}
    assert by_label["Reduction-A"] == {(1024, 17, 17)}
    assert by_label["Inception-B"] == {(1024, 17, 17)}
    assert by_label["Reduction-B"] == {(1536, 8, 8)}
    assert by_label["Inception-C"] == {(1536, 8, 8)}
    assert report.output_shape == (1000,)
    counts = {label: sum(r.label == label for r in report.rows) for label in by_label}
    assert (counts["Inception-A"], counts["Inception-B"], counts["Inception-C"]) == (4, 7, 3)
