"""A block whose body is an `if:` (docs/language.md, "Blocks and parameters"): written as the body
(`if:` with `then:`/`else:` beside it) or as `op: {if: ...}`, the chosen op stands at the instance's own
path, as an `op:` body's does. Truth: torch's own functions and modules, with the same weights;
torchvision's mobilenet_v3_small (tests/specs_outside/mobilenet_v3_small.yaml chooses each block's
activation this way) is checked in tests/test_outside_networks.py."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402

SPEC = """
archspec: 1
name: if_bodies
input: {channels: 3, size: [12, 12]}
blocks:
  act:
    params: {hs: false}
    if: $hs
    then: hardswish
    else: relu
  pw:
    params: {c: 8, bias: true}
    op: {if: $bias, then: conv2d $c 1x1, else: conv2d $c 1x1 no_bias}
  extra:
    params: {on_: false}
    if: $on_
    then: [conv2d 8 3x3 p1, relu]
network:
  - stem: conv2d 8 3x3 p1
  - a1: act hs=true
  - p1: pw
  - a2: act
  - p2: pw bias=false
  - e1: extra on_=true
  - e2: extra
"""


def test_the_chosen_op_stands_at_the_instance_path_and_computes_as_torch() -> None:
    model = archspec.build(SPEC).eval()
    state = model.state_dict()
    assert sorted(state) == sorted(["stem.weight", "stem.bias", "p1.weight", "p1.bias", "p2.weight", "e1.0.weight", "e1.0.bias"])
    f = torch.nn.functional
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        y = f.conv2d(x, state["stem.weight"], state["stem.bias"], padding=1)
        y = f.hardswish(y)  # a1: hs=true
        y = f.conv2d(y, state["p1.weight"], state["p1.bias"])
        y = f.relu(y)  # a2: the default, relu
        y = f.conv2d(y, state["p2.weight"])  # no bias
        y = f.relu(f.conv2d(y, state["e1.0.weight"], state["e1.0.bias"], padding=1))  # e2: the identity
        torch.testing.assert_close(model(x), y)


def test_the_two_spellings_build_the_same_network() -> None:
    as_op = SPEC.replace("    if: $hs\n    then: hardswish\n    else: relu\n", "    op: {if: $hs, then: hardswish, else: relu}\n")
    assert as_op != SPEC
    a, b = archspec.check(SPEC), archspec.check(as_op)
    assert [(r.path, r.shape.at(12, 12), r.params) for r in a.rows] == [(r.path, r.shape.at(12, 12), r.params) for r in b.rows]


def test_then_without_if_is_a_located_schema_error() -> None:
    spec = SPEC.replace("    if: $hs\n", "")
    with pytest.raises(SpecError) as e:
        archspec.check(spec)
    assert e.value.code == "schema"
    assert "write if: CONDITION" in str(e.value)
    assert e.value.loc.line == 7  # the block `act`


def test_a_condition_that_is_not_true_or_false_is_a_param_error() -> None:
    with pytest.raises(SpecError) as e:
        archspec.check(SPEC.replace("a1: act hs=true", "a1: act hs=3"))
    assert e.value.code == "param"
