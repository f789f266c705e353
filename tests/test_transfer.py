"""archspec.transfer: weights carried from a network into a variant whose module paths shift.

Truth is the reference network (timm's Inception-v4) and its own state_dict and logits: a tensor
copied into a variant must equal the reference's tensor of the corresponding block, and weights
carried into the variant and back into the original design must give the reference's logits.
"""

from __future__ import annotations

import pytest
import torch
from references import REFERENCES, SPECS, perturb_bn

import archspec
from archspec.cli import main
from archspec.weights import Transfer, transfer

V4 = SPECS / "inception_v4.yaml"
SIX_A = {"network.features.inception_a.repeat": 6}
A_PARAMS = 317_632  # one Inception-A (docs/tutorial.md)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    torch.manual_seed(0)
    ref = REFERENCES["inception_v4"]().eval()
    perturb_bn(ref)
    return ref


@pytest.fixture(scope="module")
def six_a(reference: torch.nn.Module) -> tuple[torch.nn.Module, Transfer]:
    variant = archspec.build(V4, overrides=SIX_A)
    return variant, transfer(reference, variant)


def test_six_inception_a_take_every_original_tensor(reference, six_a) -> None:
    variant, result = six_a
    ref_state, var_state = reference.state_dict(), variant.state_dict()
    assert result.count("dropped") == result.count("mismatched") == result.count("reshaped") == 0
    assert result.count("transferred") == len(ref_state)
    assert result.params("transferred") == sum(p.numel() for p in reference.parameters())
    # only the two new Inception-A blocks are initialised afresh
    new = {e.key for e in result.of("new")}
    assert new == {k for k in var_state if k.startswith(("features.10.", "features.11."))}
    assert result.params("new") == 2 * A_PARAMS
    # blocks after them moved two places and took the weights of the block they were in the original
    for e in result.of("transferred"):
        assert torch.equal(var_state[e.key], ref_state[e.source_key])
    shifted = [(e.key, e.source_key) for e in result.of("transferred") if e.key != e.source_key]
    assert ("features.12.branch0.conv.weight", "features.10.branch0.conv.weight") in shifted
    assert all(k.split(".")[1] == str(int(s.split(".")[1]) + 2) for k, s in shifted)
    assert "transferred" in result.table() and "features.10.branch0.conv.weight" in result.table()


def test_weights_carried_there_and_back_give_the_reference_logits(reference, six_a) -> None:
    variant, _ = six_a
    original = archspec.build(V4).eval()
    back = transfer(variant, original)  # the variant is archspec-built: its own rows are used
    assert back.count("new") == back.count("mismatched") == 0
    assert {e.source_key.split(".")[1] for e in back.of("dropped")} == {"10", "11"}
    x = torch.randn(1, 3, 107, 107)
    with torch.no_grad():
        assert (original(x) - reference(x)).abs().max().item() <= 1e-5


def test_wider_variant_reports_what_could_not_transfer(reference) -> None:
    wide = archspec.build(V4, overrides={"scale.width": 1.25})
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    result = transfer(reference.state_dict(), wide)  # a plain state_dict: rows from the variant's paths
    assert result.count("new") == result.count("dropped") == result.count("reshaped") == 0
    # the classifier keeps 1000 outputs: only its bias (and the BN step counters) keep their shape
    assert {e.key for e in result.of("transferred") if not e.key.endswith("num_batches_tracked")} == {"last_linear.bias"}
    assert result.count("mismatched") > 700
    for e in result.of("mismatched"):
        assert torch.equal(wide.state_dict()[e.key], before[e.key])  # left as initialised
    sliced = transfer(reference.state_dict(), wide, reshape="slice")
    assert sliced.count("reshaped") == result.count("mismatched")
    w = wide.state_dict()["features.0.conv.weight"]
    assert w.shape[0] == 40 and torch.equal(w[:32], reference.state_dict()["features.0.conv.weight"])


def test_archspec_transfer_is_the_function() -> None:
    import archspec.weights as module

    a, b = torch.nn.Linear(2, 3), torch.nn.Linear(2, 3)
    assert archspec.transfer is module.transfer and archspec.transfer(a, b).complete
    assert torch.equal(a.weight, b.weight)


def test_transfer_refuses_what_is_not_weights() -> None:
    with pytest.raises(TypeError, match="state_dict or a torch.nn.Module"):
        transfer(42, torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="reshape"):
        transfer({}, torch.nn.Linear(2, 2), reshape="pad")


def test_export_weights_from_a_saved_state_dict(tmp_path, capsys) -> None:
    spec = SPECS.parent / "tests" / "specs" / "tiny_aux.yaml"
    source = archspec.build(spec)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "m.ts"
    # a third residual block: the last Inception-like block moves from features.5 to features.6
    assert (
        main(
            ["export", str(spec), "--set", "network.features.2=res * 3", "--weights-from", str(tmp_path / "w.pt"), "-o", str(out)]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "transferred" in err and "new         features.4." in err and out.exists()
    moved = torch.jit.load(str(out)).state_dict()["features.6.branch1.1.conv.weight"]
    assert torch.equal(moved, source.state_dict()["features.5.branch1.1.conv.weight"])


def test_train_starts_from_weights_carried_into_a_variant(tmp_path, capsys) -> None:
    import archspec.train as train

    spec = SPECS.parent / "tests" / "specs" / "tiny_aux.yaml"
    source = archspec.build(spec)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    quick = ["--batch-size", "4", "--synthetic-size", "16", "--workers", "0", "--no-progress", "--lr", "0.0"]
    model = train.train(
        train.parse_args(
            [str(spec), "--set", "network.features.2=res * 3", "--weights-from", str(tmp_path / "w.pt"), "--steps", "1", *quick]
        )
    ).model
    assert "new         features.4." in capsys.readouterr().err
    # lr 0: the carried weights are still the source's (features.5 moved to features.6)
    assert torch.equal(
        model.state_dict()["features.6.branch0.conv.weight"], source.state_dict()["features.5.branch0.conv.weight"]
    )
