"""The spec language on small specs whose expected graphs, names and shapes are worked out by hand."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import ROOT

HEADER = "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"


def keys(text: str) -> set[str]:
    return set(archspec.build(HEADER + text).state_dict())


def test_naming_rule_ops_by_index_containers_only_when_named() -> None:
    got = keys("""
blocks:
  mixed:
    concat:
      branch0: conv 8 1x1
      branch1: [conv 4 1x1, conv 8 3x3 p1]
      branch2: [avgpool 3x3 p1, conv 8 1x1]
network:
  features: [conv 4 3x3, mixed * 2]
""")

    def conv(p: str) -> set[str]:
        return {
            f"{p}.conv.weight",
            f"{p}.bn.weight",
            f"{p}.bn.bias",
            f"{p}.bn.running_mean",
            f"{p}.bn.running_var",
            f"{p}.bn.num_batches_tracked",
        }

    expected = conv("features.0")
    for i in (1, 2):
        expected |= conv(f"features.{i}.branch0") | conv(f"features.{i}.branch1.0") | conv(f"features.{i}.branch1.1")
        expected |= conv(f"features.{i}.branch2.1")  # the pool at branch2.0 holds no state
    assert got == expected


def test_flat_names_inside_unnamed_chains_like_torchvision() -> None:
    got = keys("""
network:
  Mixed:
    concat:
      - b1x1: conv2d 4 1x1
      - [b5x5_1: conv2d 4 1x1, b5x5_2: conv2d 4 5x5 p2]
      - - b3_1: conv2d 4 1x1
        - concat:
            - b3_2a: conv2d 4 1x3 p0,1
            - b3_2b: conv2d 4 3x1 p1,0
""")
    assert {k.rsplit(".", 1)[0] for k in got} == {
        "Mixed.b1x1",
        "Mixed.b5x5_1",
        "Mixed.b5x5_2",
        "Mixed.b3_1",
        "Mixed.b3_2a",
        "Mixed.b3_2b",
    }


def test_repeats_have_independent_weights() -> None:
    model = archspec.build(HEADER + "network:\n  f: [conv 4 3x3 p1 * 3]\n")
    weights = [model.get_submodule(f"f.{i}.conv").weight for i in range(3)]
    assert len({w.data_ptr() for w in weights}) == 3
    assert not torch.equal(weights[0], weights[1])


def test_block_parameters_and_defaults() -> None:
    text = """
defaults:
  conv: {eps: 0.001, bias: true}
blocks:
  red:
    params: {k: 8, s: 2}
    concat:
      a: conv $k 3x3 s$s
      b: maxpool 3x3 s$s
network:
  f: [red k=6, red]
"""
    report = archspec.check(HEADER + text)
    # 16 → floor((16 - 3)/2) + 1 = 7 → 3; channels 3 + 6 = 9, then 9 + 8 = 17
    assert [r.shape.at(16, 16) for r in report.rows] == [(9, 7, 7), (17, 3, 3)]
    model = archspec.build(HEADER + text)
    bn = model.get_submodule("f.0.a.bn")
    assert bn.eps == 0.001 and model.get_submodule("f.0.a.conv").bias is not None


def test_residual_with_scale_projection_and_no_final_act() -> None:
    text = """
network:
  block:
    residual:
      body: [conv 8 3x3 s2 p1, c2: conv2d 8 3x3 p1]
      shortcut: {proj: conv2d 8 1x1 s2}
      scale: 0.25
  last:
    residual:
      body: [conv2d 8 1x1]
      then: relu
"""
    model = archspec.build(HEADER + text).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        m = model.get_submodule
        body = m("block.c2")(torch.relu(m("block.0.bn")(m("block.0.conv")(x))))
        y = m("block.proj")(x) + 0.25 * body
        expected = torch.relu(y + m("last.0")(y))
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_long_forms_equal_short_forms() -> None:
    short = archspec.check(HEADER + "network:\n  f: [conv 8 3x3 s2 p1, maxpool 2x2 s2 ceil]\n")
    long = archspec.check(
        HEADER
        + """
network:
  f:
    - {op: conv, out: 8, kernel: 3, stride: 2, padding: 1}
    - {op: maxpool, kernel: [2, 2], stride: 2, ceil: true}
"""
    )
    assert [r.shape.at(16, 16) for r in short.rows] == [r.shape.at(16, 16) for r in long.rows] == [(8, 8, 8), (8, 4, 4)]
    assert short.params == long.params


def test_use_imports_blocks_relative_to_the_file(write_spec) -> None:
    write_spec("archspec: 1\nblocks:\n  stem: {chain: [conv 8 3x3 s2]}\n", "blocks/lib.yaml")
    spec = write_spec(HEADER + "use: [blocks/lib.yaml]\nnetwork:\n  f: [stem]\n")
    assert archspec.check(spec).rows[0].shape.at(16, 16) == (8, 7, 7)


def test_aux_heads_train_dict_eval_tensor() -> None:
    text = """
network:
  features: [conv 8 3x3, conv 8 3x3]
  pool: global_avgpool
  fc: linear 5
aux:
  aux1:
    tap: features.0
    head: [global_avgpool, fc: linear 3]
"""
    model = archspec.build(HEADER + text)
    x = torch.randn(2, 3, 16, 16)
    out = model.train()(x)
    assert set(out) == {"logits", "aux1"} and out["aux1"].shape == (2, 3)
    assert model.eval()(x).shape == (2, 5)
    assert "aux1" not in model.code  # eval code never computes the head
    assert set(archspec.build(HEADER + text).state_dict()) >= {"aux1.fc.weight", "fc.weight"}


def test_min_input_size_is_exact_for_asymmetric_kernels() -> None:
    report = archspec.check(HEADER + "network:\n  f: [conv 4 7x1, conv 4 1x3 s2]\n")
    # H: 7x1 needs H >= 7; W: 1x3 s2 needs W >= 3
    assert report.min_input_size == (7, 3)
    model = archspec.build(HEADER + "network:\n  f: [conv 4 7x1, conv 4 1x3 s2]\n").eval()
    model(torch.randn(1, 3, 7, 3))
    for bad in [(6, 3), (7, 2)]:
        with pytest.raises(ValueError):
            model(torch.randn(1, 3, *bad))


def test_check_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, archspec; r = archspec.check('specs/inception_v4.yaml'); "
        "assert r.params == 42679816; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(ROOT),
    )
    assert out.stdout.strip() == "False"
