"""Designing variants: --set overrides (paths, list items by name, short-form repeats and arguments)
and the width/depth multipliers. Expected values are worked out by hand from the rounding rule in
docs/language.md and from the paper's Inception-v4 (Fig. 9: 4 × Inception-A, 7 × B, 3 × C)."""

from __future__ import annotations

from pathlib import Path

import pytest

import archspec
from archspec import SpecError
from archspec.language.model import ScaleSpec

SPECS = Path(__file__).resolve().parent.parent / "specs"
V4 = SPECS / "inception_v4.yaml"


def rows(report, label):
    return [r for r in report.rows if r.label == label]


# ---- overrides ------------------------------------------------------------------------------


def test_missing_path_is_a_spec_error_with_did_you_mean():
    with pytest.raises(SpecError) as e:
        archspec.check(V4, {"network.featuers.6": "inception_a"})
    assert e.value.code == "override" and "did you mean 'features'?" in e.value.format()


def test_list_item_by_index_and_by_name_and_repeat():
    by_index = archspec.check(V4, {"network.features.6": "inception_a * 6"})
    by_name = archspec.check(V4, {"network.features.inception_a.repeat": 6})
    assert len(rows(by_index, "Inception-A")) == len(rows(by_name, "Inception-A")) == 6
    assert by_index.params == by_name.params
    # six Inception-A instead of four: + 2 × 317,632 (Fig. 4 by hand, BN 2 per channel)
    branch0 = 384 * 96 + 2 * 96
    branch1 = (384 * 64 + 2 * 64) + (64 * 96 * 9 + 2 * 96)
    branch2 = (384 * 64 + 2 * 64) + (64 * 96 * 9 + 2 * 96) + (96 * 96 * 9 + 2 * 96)
    branch3 = 384 * 96 + 2 * 96
    assert branch0 + branch1 + branch2 + branch3 == 317_632
    assert by_name.params == 42_679_816 + 2 * 317_632
    assert [r.path for r in rows(by_name, "Reduction-A")] == ["features.12"]


def test_a_part_of_a_chain_or_concat_mapping_by_its_module_path():
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [8, 8]}\nnetwork:\n"
        "  body:\n    concat: {a: conv2d 4 1x1, b: conv2d 4 1x1}\n"
        "  head:\n    chain: {pool: adaptive_avgpool 1x1, flatten: flatten, fc: linear 10}\n"
    )
    short = archspec.check(spec, {"network.head.fc": "linear 3", "network.body.b": "conv2d 6 1x1"})
    long = archspec.check(spec, {"network.head.chain.fc": "linear 3", "network.body.concat.b": "conv2d 6 1x1"})
    # linear (4 + 6) → 3 with bias; the convs 3·4 + 4 and 3·6 + 6 with bias
    assert short.params == long.params == (10 * 3 + 3) + (3 * 4 + 4) + (3 * 6 + 6)
    assert short.output_shape == (3,)


def test_a_named_list_item_by_its_name_stands_for_its_value():
    """DOC5, session 11: `network.layer1.1.repeat` said 'network.2 has no key 1'; the item `layer1: [...]`
    addressed by its name now stands for its value (its one-key mapping's spelling still works)."""
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [8, 8]}\nnetwork:\n"
        "  - conv2d 4 1x1\n  - layer1: [conv2d 4 1x1, conv2d 5 1x1 * 2]\n  - global_avgpool\n  - fc: linear 3\n"
    )
    base = archspec.check(spec)
    short = archspec.check(spec, {"network.layer1.1.repeat": 3})
    long = archspec.check(spec, {"network.layer1.layer1.1.repeat": 3})
    assert short.params == long.params == base.params + (5 * 5 + 5)  # one more conv2d 5 1x1 after a 5-channel map
    wider = archspec.check(spec, {"network.layer1.0.out": 7})
    # layer1.0: 4·7 + 7 instead of 4·4 + 4; layer1.1 reads 7 channels: 7·5 + 5 instead of 4·5 + 5
    assert wider.params == base.params + (35 - 20) + (40 - 25)


def test_short_form_argument_by_name():
    # reduction_a's k is the first 1x1 conv of branch1 (Table 1: k = 192): 192 → 200 changes
    # that conv (384·k + 2k) and the next one's input (k·224·9)
    r = archspec.check(V4, {"network.features.reduction_a.k": 200})
    assert r.params - 42_679_816 == 8 * (384 + 2) + 8 * 224 * 9


def test_ambiguous_and_unknown_items():
    with pytest.raises(SpecError, match="names items 0, 1, 2"):
        archspec.check(V4, {"network.features.conv.repeat": 2})
    with pytest.raises(SpecError, match="did you mean 'inception_b'"):
        archspec.check(V4, {"network.features.inceptoin_b.repeat": 2})
    with pytest.raises(SpecError, match="at least 1"):
        archspec.check(V4, {"network.features.inception_b.repeat": 0})
    # a branch's repeat is addressable too: its copies are branch0.0, branch0.1 (docs/language.md, Repeats)
    r = archspec.check(V4, {"blocks.inception_a.concat.branch0.repeat": 2})
    paths = {d.path for _, d in r.graph.records()}
    assert {"features.6.branch0.0.conv", "features.6.branch0.1.conv"} <= paths
    assert r.params - 42_679_816 == 4 * (96 * 96 + 2 * 96)  # one more 1×1 conv with BN in each Inception-A


def test_errors_inside_an_override_point_at_the_override():
    with pytest.raises(SpecError) as e:
        archspec.check(V4, {"blocks.inception_a.concat.branch0": "conv 96 3x3 s2"})
    assert e.value.code == "shape-mismatch"
    assert "--set blocks.inception_a.concat.branch0" in e.value.format()
    assert "38:30" in e.value.format()  # the other branch is still located in the file


def test_build_takes_overrides():
    torch = pytest.importorskip("torch")
    model = archspec.build(V4, overrides={"scale.width": 0.25, "network.features.inception_b.repeat": 1, "input.size": [96, 96]})
    assert (
        sum(p.numel() for p in model.parameters())
        == archspec.check(V4, {"scale.width": 0.25, "network.features.inception_b.repeat": 1}).params
    )
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 96, 96)).shape == (1, 1000)


# ---- multipliers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c, width, expected",
    [
        (32, 1.5, 48),
        (96, 1.5, 144),
        (384, 1.5, 576),
        (64, 1.0, 64),
        (3, 1.0, 3),  # exact multiples
        (10, 0.5, 8),  # 5 → nearest multiple of 8 is 8 (and never below 8)
        (100, 0.75, 72),  # 75 → 72 (within 10 %)
        (20, 1.25, 24),  # 25 → 24
        (36, 1.0, 36),  # width 1 leaves every count alone
        (200, 0.27, 56),  # 54 → 56
    ],
)
def test_width_rounding_rule(c, width, expected):
    assert ScaleSpec(width=width).channels(c) == expected


@pytest.mark.parametrize(
    "n, depth, expected",
    [(4, 1.5, 6), (7, 1.5, 11), (3, 1.5, 5), (4, 1.2, 5), (10, 0.3, 3), (1, 2.0, 2), (4, 0.1, 1), (4, 1.0, 4)],
)
def test_depth_rounding_rule(n, depth, expected):
    assert ScaleSpec(depth=depth).repeats(n) == expected


SMALL = """
archspec: 1
name: small
input: {channels: 3, size: [32, 32]}
blocks:
  res:
    residual:
      body: [conv 16 3x3 p1, conv 16 3x3 p1 act=none]
      then: relu
network:
  - conv 16 3x3 p1
  - res * 2
  - conv 32 1x1 fixed
  - global_avgpool
  - linear 64
  - relu
  - fc: linear 10
aux:
  side:
    tap: "1"
    head: [global_avgpool, {op: linear, out: 7}]
"""


def test_width_scales_channels_except_outputs_and_fixed(write_spec):
    g = archspec.analyze(write_spec(SMALL), {"scale.width": 1.5}).graph
    out = {d.path: d.params.out for _, d in g.records() if d.op in ("conv2d", "linear")}
    assert out == {
        "0.conv": 24,
        "1.0.conv": 24,
        "1.1.conv": 24,
        "2.0.conv": 24,
        "2.1.conv": 24,  # 16 · 1.5
        "3.conv": 32,  # fixed
        "5": 96,  # hidden linear 64 · 1.5
        "fc": 10,  # the logits
        "side.1": 7,  # an aux head's logits
    }


def test_width_scaled_model_equals_its_counts(write_spec):
    torch = pytest.importorskip("torch")
    spec = write_spec(SMALL)
    r = archspec.check(spec, {"scale.width": 1.5})
    conv = 24 * 3 * 9 + 2 * 24 + 4 * (24 * 24 * 9 + 2 * 24) + (32 * 24 + 2 * 32)
    assert r.params == conv + (32 * 96 + 96) + (96 * 10 + 10) + (24 * 7 + 7)
    model = archspec.build(spec, {"scale.width": 1.5})
    assert sum(p.numel() for p in model.parameters()) == r.params
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_width_long_form_fixed(write_spec):
    spec = write_spec(SMALL.replace("conv 32 1x1 fixed", "{op: conv, out: 32, fixed: true}"))
    g = archspec.analyze(spec, {"scale.width": 2}).graph
    assert g.at("3_conv").params.out == 32 and g.at("0_conv").params.out == 32
    with pytest.raises(SpecError, match="'fixed' must be true or false"):
        archspec.check(write_spec(SMALL.replace("conv 32 1x1 fixed", "{op: conv, out: 32, fixed: 2}")))


def test_depth_scales_written_repeats_only():
    r = archspec.check(V4, {"scale.depth": 1.5})
    counts = {
        label: len(rows(r, label))
        for label in ("Inception-A", "Inception-B", "Inception-C", "Reduction-A", "Reduction-B", "Stem (3a)")
    }
    assert counts == {"Inception-A": 6, "Inception-B": 11, "Inception-C": 5, "Reduction-A": 1, "Reduction-B": 1, "Stem (3a)": 1}


def test_depth_applies_to_long_form_repeat(write_spec):
    spec = write_spec(SMALL.replace("- res * 2", "- {block: res, repeat: 2}"))
    assert len(rows(archspec.check(spec, {"scale.depth": 2}), "res")) == 4
    spec = write_spec(SMALL.replace("- res * 2", "- {block: res}"))
    assert len(rows(archspec.check(spec, {"scale.depth": 2}), "res")) == 1


def test_inception_v4_width_via_set():
    r = archspec.check(V4, {"scale.width": 1.5})
    h, w = r.input_size
    assert [row.shape.at(h, w) for row in rows(r, "Inception-A")] == [(576, 35, 35)] * 4
    assert r.output_shape == (1000,)
    assert rows(r, "linear 1000")  # the classifier keeps its 1000 outputs


def test_scale_keys_are_checked():
    with pytest.raises(SpecError, match="did you mean 'width'"):
        archspec.check(V4, {"scale.wdith": 1.5})
    with pytest.raises(SpecError, match="greater than 0"):
        archspec.check(V4, {"scale.width": 0})


def test_set_replaces_an_argument_given_by_position() -> None:
    """--set network.N.out=8 on 'conv 16 3x3' (out given by position) sets it there, never 'out given twice'."""
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"
        "network: [conv 16 3x3, global_avgpool, dropout 0.2, linear 10]\n"
    )
    report = archspec.check(spec, overrides={"network.0.out": 8, "network.2.p": 0.0})
    assert [r.label for r in report.rows[:3]] == ["conv 8 3x3", "global_avgpool", "dropout 0"]
    assert report.params == 3 * 8 * 9 + 2 * 8 + 8 * 10 + 10


def test_set_repeat_on_a_named_part() -> None:
    """issue 20: every repeat is addressable, also a mapping value's: it becomes a chain of copies."""
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"
        "network:\n  stem: conv2d 8 3x3\n  body: conv2d 8 3x3 p1 * 2\n  pool: global_avgpool\n"
    )
    model = archspec.build(spec, overrides={"network.body.repeat": 3, "network.stem.repeat": 1})
    assert sorted({k.rsplit(".", 1)[0] for k in model.state_dict()}) == ["body.0", "body.1", "body.2", "stem.0"]
