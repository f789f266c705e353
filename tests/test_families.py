"""Families and multipliers' rounding: `variants:` picked by --variant / overrides, `width_mult` and
`depth_mult` in expressions, `scale.apply` and `scale.depth_rounding`. Truth: torchvision's
efficientnet_b0 … b4 (parameters, strict state_dict load, logits at the minimum and an odd size, MACs as
fvcore counts them, dropout and stochastic-depth rates)
and repeat counts worked out by hand from the rounding each rule names."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import archspec
from archspec import SpecError
from archspec.cli import main
from tests.references import perturb_bn, perturb_layer_norm

torchvision = pytest.importorskip("torchvision")

# torchvision's efficientnet_b1 … b4 (torchvision/models/efficientnet.py): width, depth, dropout, crop size
FAMILY = {"b1": (1.0, 1.1, 0.2, 240), "b2": (1.1, 1.2, 0.3, 288), "b3": (1.2, 1.4, 0.3, 300), "b4": (1.4, 1.8, 0.4, 380)}
B0_LAYERS = (1, 2, 2, 3, 3, 4, 1)  # Table 1 of arXiv 1905.11946


@pytest.mark.parametrize("member", ["b0", *FAMILY])
def test_each_member_has_torchvision_s_parameters_and_layers(member: str) -> None:
    report = archspec.check("zoo:efficientnet_b0", overrides=None if member == "b0" else {"variant": member})
    reference = getattr(torchvision.models, f"efficientnet_{member}")()
    assert report.name == f"efficientnet_{member}"
    assert report.params == sum(p.numel() for p in reference.parameters())
    depth = FAMILY[member][1] if member != "b0" else 1.0
    assert [len(reference.features[i]) for i in range(1, 8)] == [math.ceil(n * depth) for n in B0_LAYERS]
    if member != "b0":
        assert report.input_size == (FAMILY[member][3],) * 2


@pytest.mark.slow
@pytest.mark.parametrize("member", list(FAMILY))
def test_each_member_equals_torchvision_s(member: str) -> None:
    torch.manual_seed(3)
    reference = getattr(torchvision.models, f"efficientnet_{member}")().eval()
    perturb_bn(reference, 3)
    with torch.no_grad():  # torchvision's classifier is drawn small: logits far from zero
        reference.classifier[1].weight.mul_(10)
    model = archspec.build("zoo:efficientnet_b0", overrides={"variant": member}).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    report = archspec.check("zoo:efficientnet_b0", overrides={"variant": member})
    for size in (report.min_input_size, (67, 45)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            theirs = reference(x)
            torch.testing.assert_close(model(x), theirs, rtol=0, atol=1e-5)
        assert theirs.std() > 1e-2
    assert model.get_submodule("classifier.0").p == reference.classifier[0].p == FAMILY[member][2]
    # MACs: fvcore's conv and linear counts on the reference (at an odd size: its tracing at the crop size is slow)
    fvcore = pytest.importorskip("fvcore.nn")
    at = archspec.check("zoo:efficientnet_b0", overrides={"variant": member, "input.size": [67, 45]})
    analysis = fvcore.FlopCountAnalysis(reference, torch.randn(1, 3, 67, 45))
    by_op = analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_operator()
    assert at.macs == by_op["conv"] + by_op["linear"]
    rates = {k: m.p for k, m in model.named_modules() if type(m).__name__ == "DropPath"}
    theirs_rates = {k: m.p for k, m in reference.named_modules() if type(m).__name__ == "StochasticDepth"}
    assert rates and all(rates[k] == pytest.approx(theirs_rates[k], abs=1e-12) for k in rates)


def test_variant_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "zoo:efficientnet_b0", "--variant", "b1"]) == 0
    assert "7,794,184 parameters" in capsys.readouterr().out  # torchvision's efficientnet_b1
    assert main(["check", "zoo:efficientnet_b0", "--set", "variant=b2", "--set", "input.size=[224,224]"]) == 0
    out = capsys.readouterr().out
    assert "9,109,994 parameters" in out and "3×224×224" in out  # the user's --set wins over the variant's size
    assert main(["check", "zoo:efficientnet_b0", "--variant", "b7"]) == 2
    err = capsys.readouterr().err
    assert "no variant 'b7' in this spec: its variants are b1, b2, b3, b4" in err and "[override]" in err


FAMILY_SPEC = """archspec: 1
name: fam
input: {channels: 3, size: [16, 16]}
variants:
  big: {scale.width: 2, scale.depth: 1.5}
network:
  - conv 8 3x3 p1 * 3
  - {block: unit, params: {c: '${int(8 * width_mult)}'}, repeat: '${ceil(2 * depth_mult)}'}
  - global_avgpool
  - linear 10
blocks:
  unit:
    params: {c: 8}
    op: conv $c 1x1
"""


def test_width_mult_and_depth_mult_read_the_multipliers() -> None:
    def convs(overrides: dict[str, object]) -> list[int]:
        return [r.shape.channels for r in archspec.check(FAMILY_SPEC, overrides=overrides).rows[:-2]]  # not pool, linear

    assert convs({}) == [8] * 3 + [8] * 2
    # archspec's rules on: 3 written copies → ceil(4.5) = 5 of 16; the unit's 8·2 = 16 channels are scaled
    # again (32), and its count ceil(2·1.5) = 3 is a written count, multiplied again: ceil(4.5) = 5
    assert convs({"variant": "big"}) == [16] * 5 + [32] * 5
    # rules off: only what the spec computes
    assert convs({"variant": "big", "scale.apply": []}) == [8] * 3 + [16] * 3


@pytest.mark.parametrize(("rounding", "copies"), [("ceil", [4, 6]), ("round", [4, 5]), ("floor", [3, 5])])
def test_depth_rounding_is_selectable(rounding: str, copies: list[int]) -> None:
    spec = (
        "archspec: 1\nname: d\ninput: {channels: 3, size: [8, 8]}\n"
        f"scale: {{depth: 1.75, depth_rounding: {rounding}}}\n"
        "network: [a: conv 4 3x3 p1 * 2, b: conv 4 3x3 p1 * 3, global_avgpool, linear 2]\n"
    )
    paths = [r.path for r in archspec.check(spec).rows]
    # 2 · 1.75 = 3.5 and 3 · 1.75 = 5.25: ceil 4 and 6, round 4 and 5, floor 3 and 5
    assert [sum(p.startswith(f"{name}.") for p in paths) for name in "ab"] == copies


def test_a_variant_must_be_a_mapping() -> None:
    spec = FAMILY_SPEC.replace("big: {scale.width: 2, scale.depth: 1.5}", "big: 2")
    with pytest.raises(SpecError, match="variant 'big' must be a mapping") as e:
        archspec.check(spec, overrides={"variant": "big"})
    assert e.value.loc.line == 5
    with pytest.raises(SpecError, match="did you mean 'big'"):
        archspec.check(FAMILY_SPEC, overrides={"variant": "bog"})


Sizes = tuple[tuple[int, int], ...]


def _equals_reference(name: str, reference: torch.nn.Module, sizes: Sizes, batch: int, scaled: bool = False) -> Any:
    """``zoo:NAME`` built and given ``reference``'s state_dict (strict): the network of that name, computing the
    reference's logits at each of ``sizes`` within 1e-4 relative and 1e-5 absolute (``scaled``: 1e-4 of the
    largest logit); the model."""
    model = archspec.build(f"zoo:{name}").eval()
    assert model.archspec_report.name == name
    model.load_state_dict(reference.state_dict(), strict=True)
    for size in sizes:
        x = torch.randn(batch, 3, *size)
        with torch.no_grad():
            theirs = reference(x)
            atol = 1e-4 * float(theirs.abs().max()) if scaled else 1e-5
            torch.testing.assert_close(model(x), theirs, rtol=1e-4, atol=atol)
        assert theirs.std() > 1e-2
    return model


# torchvision's DenseNets (torchvision/models/densenet.py; arXiv 1608.06993, Table 1; DenseNet-161 as torchvision builds it):
# growth rate, stem channels, layers per dense block
DENSENETS = {
    "densenet121": (32, 64, (6, 12, 24, 16)),
    "densenet161": (48, 96, (6, 12, 36, 24)),
    "densenet169": (32, 64, (6, 12, 32, 32)),
    "densenet201": (32, 64, (6, 12, 48, 32)),
}


@pytest.mark.parametrize("member", sorted(DENSENETS))
def test_each_densenet_equals_torchvision_s(member: str) -> None:
    """zoo:densenet121's family: each member is torchvision's network of its name (strict load, the same logits
    at two sizes), with its growth rate, stem and block lengths."""
    torch.manual_seed(4)
    reference = getattr(torchvision.models, member)().eval()
    perturb_bn(reference, 4)
    model = _equals_reference(member, reference, ((29, 29), (67, 45)), 2)  # DenseNet's smallest input, an odd one
    growth, stem, blocks = DENSENETS[member]
    assert model.get_submodule("features.conv0").out_channels == stem
    assert [len(list(model.get_submodule(f"features.denseblock{i}").children())) for i in (1, 2, 3, 4)] == list(blocks)
    assert model.get_submodule("features.denseblock1.denselayer1.conv2").out_channels == growth


def test_a_member_is_a_zoo_name_of_its_own() -> None:
    """zoo:efficientnet_b1 is zoo:efficientnet_b0 read as the file of its member b1 (`variant: b1`); a --set
    variant still wins; a report kept for one member is not another's (archspec/memo.py keys by name)."""
    for name, spec, member in (("efficientnet_b1", "efficientnet_b0", "b1"), ("densenet169", "densenet121", "densenet169")):
        by_name, by_variant = archspec.check(f"zoo:{name}"), archspec.check(f"zoo:{spec}", overrides={"variant": member})
        assert (by_name.name, by_name.params, by_name.input_size) == (by_variant.name, by_variant.params, by_variant.input_size)
    assert archspec.check("zoo:efficientnet_b1", overrides={"variant": "b2"}).name == "efficientnet_b2"
    assert archspec.build("zoo:densenet121").archspec_report.name == "densenet121"
    assert sum(p.numel() for p in archspec.build("zoo:densenet169").parameters()) == 14_149_480  # torchvision's
    with pytest.raises(SpecError, match="not in archspec's zoo") as e:
        archspec.check("zoo:densenet196")
    assert "did you mean 'densenet169'" in (e.value.hint or "")


def test_a_member_named_without_zoo_is_pointed_to_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "efficientnet_b2"]) == 2
    assert "did you mean zoo:efficientnet_b2?" in capsys.readouterr().err


# torchvision's ShuffleNetV2 widths (torchvision/models/shufflenetv2.py; arXiv 1807.11164, Table 5): the
# channels of stages 2-4 and of conv5
SHUFFLENETS = {
    "x0_5": (48, 96, 192, 1024),
    "x1_0": (116, 232, 464, 1024),
    "x1_5": (176, 352, 704, 1024),
    "x2_0": (244, 488, 976, 2048),
}


@pytest.mark.parametrize("member", sorted(SHUFFLENETS))
def test_each_shufflenet_v2_equals_torchvision_s(member: str) -> None:
    """zoo:shufflenet_v2_x1_0's family: each width is torchvision's network of its name (strict load, the same
    logits at two sizes), with its stages' channels."""
    torch.manual_seed(5)
    reference = getattr(torchvision.models, f"shufflenet_v2_{member}")().eval()
    perturb_bn(reference, 5)
    with torch.no_grad():  # torchvision's classifier is drawn small: logits far from zero
        reference.fc.weight.mul_(10)
    model = _equals_reference(f"shufflenet_v2_{member}", reference, ((32, 32), (67, 45)), 2)  # members by their names
    channels = [model.get_submodule(f"stage{i}.0.branch2.5").out_channels * 2 for i in (2, 3, 4)]  # the last 1×1 conv: c
    assert [*channels, model.get_submodule("conv5.0").out_channels] == list(SHUFFLENETS[member])


# torchvision's ConvNeXts (torchvision/models/convnext.py; the paper's ConvNeXt-T/S/B/L, arXiv 2201.03545): the
# stage widths, the blocks per stage and the last block's stochastic depth rate
CONVNEXTS = {
    "tiny": ((96, 192, 384, 768), (3, 3, 9, 3), 0.1),
    "small": ((96, 192, 384, 768), (3, 3, 27, 3), 0.4),
    "base": ((128, 256, 512, 1024), (3, 3, 27, 3), 0.5),
    "large": ((192, 384, 768, 1536), (3, 3, 27, 3), 0.5),
}


@pytest.mark.parametrize("member", [pytest.param(m, marks=pytest.mark.slow) if m == "large" else m for m in CONVNEXTS])
def test_each_convnext_equals_torchvision_s(member: str) -> None:
    """zoo:convnext_tiny's family: each size is torchvision's network of its name (strict load, the same logits
    at two sizes), with its stages' widths and lengths and its stochastic depth rates."""
    torch.manual_seed(6)
    reference = getattr(torchvision.models, f"convnext_{member}")().eval()
    perturb_layer_norm(reference)
    model = _equals_reference(f"convnext_{member}", reference, ((32, 32), (67, 45)), 1, scaled=True)
    widths, blocks, rate = CONVNEXTS[member]
    assert [model.get_submodule(f"features.{i}.0.block.0").out_channels for i in (1, 3, 5, 7)] == list(widths)
    assert [len(list(model.get_submodule(f"features.{i}").children())) for i in (1, 3, 5, 7)] == list(blocks)
    rates = [m.p for m in model.modules() if type(m).__name__ == "DropPath"]
    theirs_rates = [m.p for m in reference.modules() if type(m).__name__ == "StochasticDepth"]
    assert rates == pytest.approx(theirs_rates, abs=1e-12) and rates[-1] == pytest.approx(rate)
