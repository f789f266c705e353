"""The expansion stage's own rules (archspec/graph/): the short-form reader's values, one expansion.

Truth here is PyYAML (what ``key=value`` means) and the language's definition of width and
block_count by passes, run beside the one-pass expansion on the same specs."""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from archspec.graph import Expander, _expand_in_passes, expand
from archspec.ir import OpGraph
from archspec.language.resolve import resolve
from archspec.language.tokens import scalar
from tests.paths import ROOT

ZOO = ROOT / "archspec" / "zoo"

WORDS = [
    "yes",
    "No",
    "ON",
    "off",
    "true",
    "False",
    "null",
    "~",
    "y",
    "n",
    "inf",
    ".inf",
    "-.Inf",
    ".nan",
    "0x1f",
    "017",
    "08",
    "-0",
    "1_000",
    "1e-6",
    "1.0e-6",
    "1.5",
    "3.",
    ".5",
    "[1, 2]",
    "{a: 1}",
    "silu",
    "a:b",
    "1:30",
    "2020-01-02",
    "'q'",
    '"x"',
    "[1,",
    "@x",
    "#c",
    "-",
    "+1",
    "0b101",
]


def _yaml(text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


@pytest.mark.parametrize("text", WORDS)
def test_key_value_reads_as_yaml_does(text: str) -> None:
    assert repr(scalar(text)) == repr(_yaml(text))  # repr: the type too, and NaN equals itself


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "_.-+:[]{}, ~'\"", min_size=1, max_size=8))
def test_any_key_value_reads_as_yaml_does(text: str) -> None:
    assert repr(scalar(text)) == repr(_yaml(text))


def _canon(g: OpGraph) -> list[object]:
    nodes = [
        (n, r.op, repr(r.params), r.path, str(r.loc), r.unit, r.origin, r.text, repr(r.composite), sorted(g.pred[n]))
        for n, r in g.records()
    ]
    units = [(u.path, u.label, u.kind, u.output, u.block) for u in g.net.units]
    return [nodes, units, g.net.outputs]


ONE_PASS = [
    ("efficientnet_b0", None),  # block_count in drop rates
    ("convnext_tiny", {"scale.width": 1.5}),  # block_count, `in`, and the width multiplier
    ("mobilenet_v3_large", {"scale.width": 0.75}),
    ("inception_v3", {"scale.width": 0.5}),  # an aux head: its classifier keeps its channels too
]


@pytest.mark.parametrize(("net", "overrides"), ONE_PASS)
def test_one_expansion_gives_what_the_passes_give(net: str, overrides: dict[str, float] | None) -> None:
    """block_count and the output ops are known at the end of the one pass and replayed in place:
    the graph equals the language's definition, pass by pass, and only one expansion ran."""
    resolved = resolve(ZOO / f"{net}.yaml", overrides)
    runs = [0]
    real = Expander.run

    def counting(self: Expander) -> OpGraph:
        runs[0] += 1
        return real(self)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Expander, "run", counting)
        once = expand(resolved)
    assert runs[0] == 1
    assert _canon(once) == _canon(_expand_in_passes(resolved))


STRUCTURE = {
    "block_count decides a branch": """
blocks:
  unit:
    chain:
      - conv2d 8 3x3 p1
      - if: ${block_index == block_count - 1}
        then: relu
        else: [sigmoid, "dropout ${0.1 * block_index / block_count}"]
network: [unit * 3, global_avgpool, flatten, linear 10]
""",
    "block_count passed to a block": """
scale: {width: 1.5}
blocks:
  inner:
    params: {p: 0.0}
    chain: [conv2d 8 3x3 p1, "dropout $p"]
  outer:
    chain: ["inner p=${0.2 * block_index / block_count}", "drop_path ${0.1 * block_index / block_count}"]
network: [outer * 3, global_avgpool, flatten, linear 10]
""",
    "`in` decides a branch under width": """
scale: {width: 1.5}
network:
  - conv2d 16 3x3 p1
  - {if: "${in > 20}", then: relu, else: sigmoid}
  - global_avgpool
  - flatten
  - linear 10
""",
    "`in` read after an output op": """
scale: {width: 2}
network: [conv2d 16 3x3 p1, global_avgpool, flatten, linear 10, "dropout ${in / 100}"]
""",
}


@pytest.mark.parametrize("name", STRUCTURE)
def test_where_a_late_fact_decides_structure_the_passes_run(name: str) -> None:
    text = "archspec: 1\nname: t\ninput: {channels: 3, size: [32, 32]}\n" + STRUCTURE[name]
    resolved = resolve(text)
    assert _canon(expand(resolved)) == _canon(_expand_in_passes(resolved))
