"""Inception-v3 (specs/inception_v3.yaml) against torchvision's inception_v3, random init."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import SPECS
from tests.references import assert_same_eval_logits, no_dropout, perturb_bn

torchvision = pytest.importorskip("torchvision")

SPEC = SPECS / "inception_v3.yaml"


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    ref = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
    assert ref.transform_input is False  # weights=None: inputs reach the stem unchanged, as in the spec
    perturb_bn(ref)
    ours = archspec.build(SPEC)
    ours.load_state_dict(ref.state_dict(), strict=True)  # flat names: Mixed_5b.branch5x5_1.conv.weight, ...
    return ref, ours


def test_params() -> None:
    ref = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    assert archspec.check(SPEC).params == sum(p.numel() for p in ref.parameters())


def test_eval_logits(pair) -> None:
    assert_same_eval_logits(*pair, SPEC, 299)


def test_training_outputs_with_aux(pair) -> None:
    ref, ours = pair
    no_dropout(ref, ours)
    ref.train(), ours.train()
    x = torch.randn(2, 3, 299, 299)  # the aux head needs 299 in training mode
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert set(got) == {"logits", "AuxLogits"}
    assert (expected.logits - got["logits"]).abs().max().item() <= 1e-5
    assert (expected.aux_logits - got["AuxLogits"]).abs().max().item() <= 1e-5
    assert ours.aux_weights == {"AuxLogits": 0.4}


def test_eval_skips_the_aux_head() -> None:
    model = archspec.build(SPEC).eval()
    calls: list[str] = []
    for name, m in model.named_modules():
        if name.startswith("AuxLogits.") and not list(m.children()):
            m.register_forward_hook(lambda mod, i, o, name=name: calls.append(name))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 75, 75))  # eval mode runs at 75, far below what the aux head needs
    assert out.shape == (1, 1000) and calls == [] and "AuxLogits" not in model.code


def test_min_sizes_match_reference() -> None:
    report = archspec.check(SPEC)
    assert report.min_input_size == (75, 75)  # torchvision's meta: min_size 75×75
    assert report.train_min_input_size == (299, 299)  # the aux head's 5×5/3 pool and 5×5 conv need 17×17 at 6e
    ref = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    with torch.no_grad():
        ref.eval()(torch.randn(1, 3, 75, 75))
        with pytest.raises(RuntimeError):
            ref(torch.randn(1, 3, 74, 75))
        ref.train()
        with pytest.raises(RuntimeError):
            ref(torch.randn(2, 3, 298, 299))
