"""A zoo network built from scratch starts from the same distribution as its reference: for every
tensor of the state_dict, a two-sample Kolmogorov–Smirnov test between archspec's fresh build and the
reference's fresh construction (p > 0.01, Bonferroni-corrected over the network's tensors); tensors
the reference fills with one value must be equal. Also: init: is validated and reproducible."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.references import REFERENCES, SPECS, assert_same_init, zoo_with_references

pytest.importorskip("scipy.stats")


@pytest.mark.slow
@pytest.mark.parametrize("stem", zoo_with_references())
def test_fresh_weights_follow_the_reference_s_distribution(stem: str) -> None:
    torch.manual_seed(1)
    reference = REFERENCES[stem]()
    torch.manual_seed(2)
    assert_same_init(archspec.build(SPECS / f"{stem}.yaml"), reference, stem)


HEADER = "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"


def test_init_schemes_and_precedence() -> None:
    spec = (
        HEADER
        + """init:
  conv2d: {weight: kaiming_normal_fan_out, bias: zeros}
  linear: {weight: {normal: 0.5}, bias: ones}
  "b.*": {weight: zeros}
blocks:
  blk:
    init: {conv2d: {trunc_normal: 0.01}}
    chain: [c: conv2d 64 3x3]
network:
  - a: conv2d 64 3x3
  - b: blk
  - global_avgpool
  - fc: linear 512
"""
    )
    torch.manual_seed(0)
    model = archspec.build(spec)
    sd = model.state_dict()
    fan_out = 64 * 9
    assert abs(sd["a.weight"].std().item() - (2 / fan_out) ** 0.5) < 0.01 and (sd["a.bias"] == 0).all()
    assert (sd["b.c.weight"] == 0).all()  # a path pattern of the spec wins over the block's op table
    assert abs(sd["fc.weight"].std().item() - 0.5) < 0.02 and (sd["fc.bias"] == 1).all()
    torch.manual_seed(0)
    again = archspec.build(spec).state_dict()
    assert all(torch.equal(sd[k], again[k]) for k in sd)


def test_block_table_applies_inside_its_instances() -> None:
    spec = (
        HEADER
        + """blocks:
  blk:
    init: {conv2d: {trunc_normal: 0.01}}
    chain: [c: conv2d 64 3x3]
network: [a: conv2d 64 3x3, b: blk]
"""
    )
    sd = archspec.build(spec).state_dict()
    assert abs(sd["b.c.weight"].std().item() - 0.01) < 0.001
    assert abs(sd["a.weight"].std().item() - 0.01) > 0.005  # PyTorch's default U(±1/√27) outside the block


def test_init_of_an_op_without_weights_is_a_located_error() -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + "init: {conv: kaiming_normal_fan_out}\nnetwork: [conv 8 3x3]\n")
    assert (e.value.line, e.value.code) == (4, "unknown-op") and "conv2d" in (e.value.hint or "")


def test_a_layer_scale_starts_at_its_written_value_and_has_no_init_entry() -> None:
    spec = HEADER + "network: [c: conv2d 8 3x3, ls: layer_scale 0.25, global_avgpool, v: layer_scale 2]\n"
    sd = archspec.build(spec).state_dict()
    assert sd["ls"].shape == (8, 1, 1) and (sd["ls"] == 0.25).all()  # a tensor, not a module: no ".weight"
    assert sd["v"].shape == (8,) and (sd["v"] == 2).all()
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + "init: {layer_scale: zeros}\nnetwork: [conv2d 8 3x3, layer_scale 1e-6]\n")
    assert (e.value.line, e.value.code) == (4, "bad-op-args") and "layer_scale [INIT]" in (e.value.hint or "")


def test_a_spec_with_weight_and_bias_schemes_checks_without_warnings() -> None:
    # ConvNeXt's init: table gives weight and bias (a TensorInit); the spec's digest serialises it and
    # must recognise the model instance as what the table held, not warn that it expected a distribution
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = archspec.check("zoo:convnext_tiny")
    assert report.params == 28_589_128  # torchvision's convnext_tiny
