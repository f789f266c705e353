"""BN-Inception (specs/bn_inception.yaml) against pretrainedmodels' BNInception, random init.

pretrainedmodels is installed without its dependencies (see .ci/run and README's Quick start).
"""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import SPECS
from tests.reference_macs import reference_macs
from tests.references import perturb_bn

bninception = pytest.importorskip("pretrainedmodels.models.bninception")

SPEC = SPECS / "bn_inception.yaml"


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    ref = bninception.BNInception(num_classes=1000)
    perturb_bn(ref)  # non-trivial BatchNorm statistics, so eval mode tests eps and the affine terms
    ours = archspec.build(SPEC)
    ours.load_state_dict(ref.state_dict(), strict=True)  # flat names: conv1_7x7_s2, conv1_7x7_s2_bn, ...
    return ref.eval(), ours.eval()


def test_params() -> None:
    ref = bninception.BNInception(num_classes=1000)
    assert archspec.check(SPEC).params == sum(p.numel() for p in ref.parameters())


def test_module_names_are_the_reference_names(pair) -> None:
    ref, ours = pair
    assert list(ours.state_dict()) == list(ref.state_dict())  # same names, same order


def test_eval_logits(pair) -> None:
    ref, ours = pair
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (ref(x) - ours(x)).abs().max().item() <= 1e-5
    assert reference_macs(ref, x[:1])[1] == archspec.check(SPEC).macs  # hooks on the reference's convs and linears


def test_accepted_sizes_are_where_the_reference_runs(pair) -> None:
    """The head (7×7/1 pool, flatten, linear 1024) and the stride-2 conv beside a ceil-mode pool in 3c
    and 4e (equal only for even maps) leave few sizes; the reference runs at exactly those."""
    ref, ours = pair
    report = archspec.check(SPEC)
    assert report.min_input_size == (223, 223) and report.max_input_size == (230, 230)
    for h in (222, 223, 230, 231, 240, 255):
        x = torch.randn(1, 3, h, 224)
        try:
            with torch.no_grad():
                expected = ref(x)
        except RuntimeError:
            with pytest.raises(ValueError, match="expected input"):
                ours(x)
            assert not report.accepted.ok(h, 224), h
        else:
            assert report.accepted.ok(h, 224), h
            with torch.no_grad():
                assert (expected - ours(x)).abs().max().item() <= 1e-5
