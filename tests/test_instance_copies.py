"""Equal block instances written from the first (archspec/graph/instances.py) against each instance
expanded anew, the language's definition (``instances.COPIES = False``).

Truth: the expansion with copies switched off. The graphs must be equal: node ids in order, every
record (op, parameters, path, location, row, enclosing instances, order, text, shape), edges with their
slots and the network's record (rows, outputs, feature taps); and the shaped graphs after shape inference.
Cases: every zoo spec, the efficientnet_b0 spec's variants, width multipliers archspec applies, the
differential fuzzer's random specs (blocks with parameters, ``in``, ``block_index``, ``from:``, ``share:``,
counters, inline blocks), and specs written here for each reason an instance is not copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import archspec
import archspec.graph as expansion
from archspec.errors import SpecError
from archspec.graph import instances
from archspec.language.resolve import resolve
from archspec.pipeline import shaped_resolved

ZOO = Path(archspec.__file__).parent / "zoo"


def _snapshot(graph: Any) -> tuple[Any, ...]:
    edges = sorted((u, v, d["slot"]) for u, v, d in graph.edges(data=True))
    adjacency = [(list(graph.pred[n]), list(graph.succ[n])) for n in graph.nodes]  # in the order they were added
    return list(graph.nodes), [graph.at(n) for n in graph.nodes], edges, adjacency, graph.net


class _Counted:
    """How many instances were copied, while it is installed."""

    def __init__(self, monkeypatch: Any) -> None:
        self.copied = 0
        self.blocks: list[str] = []  # the block of each copy
        copy = instances.InstanceCopies.copy

        def counted(this: Any, *args: Any) -> Any:
            out = copy(this, *args)
            self.copied += out is not None
            if out is not None:
                self.blocks.append(args[0][0])
            return out

        monkeypatch.setattr(instances.InstanceCopies, "copy", counted)


def _both(monkeypatch: Any, spec: Any, overrides: dict[str, Any] | None, shaped: bool = True) -> tuple[Any, Any]:
    """The snapshots with copies and without (each its own resolve, so no state is shared), each with the
    named values its expansions recorded (graph/refs.py: what `from:`, `outputs:` and taps look up)."""
    stage = (lambda r: shaped_resolved(r)[0]) if shaped else expansion.expand
    values: list[Any] = []
    run = expansion.Expander.run

    def recorded(self: Any) -> Any:
        graph = run(self)
        values.append((self.values.at, self.values.ended))
        return graph

    monkeypatch.setattr(expansion.Expander, "run", recorded)
    monkeypatch.setattr(instances, "COPIES", True)
    with_copies = (*_snapshot(stage(resolve(spec, overrides))), values[:])
    values.clear()
    monkeypatch.setattr(instances, "COPIES", False)
    anew = (*_snapshot(stage(resolve(spec, overrides))), values[:])
    return with_copies, anew


CASES = [
    *((p.stem, None) for p in sorted(ZOO.glob("*.yaml"))),
    *(("efficientnet_b0", {"variant": v}) for v in ("b1", "b2", "b3", "b4")),
    ("resnet50", {"scale.width": 1.5}),
    ("densenet121", {"scale.width": 0.5}),
    ("mobilenet_v3_large", {"scale.width": 0.75}),
]
FAST = {"shufflenet_v2_x1_0", "resnet50", "efficientnet_b0", "densenet121"}


@pytest.mark.parametrize(
    ("name", "overrides"),
    [c if c[0] in FAST and c[1] is None else pytest.param(*c, marks=pytest.mark.slow) for c in CASES],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in (v or {}).items()) or "plain",
)
def test_zoo_graphs_equal_with_and_without_copies(monkeypatch: Any, name: str, overrides: dict[str, Any] | None) -> None:
    got, want = _both(monkeypatch, ZOO / f"{name}.yaml", overrides, shaped=False)
    assert got == want
    got, want = _both(monkeypatch, ZOO / f"{name}.yaml", overrides)
    assert got == want


def test_repeated_stages_are_copied(monkeypatch: Any) -> None:
    """The copies are made, from the second instance with given arguments on (the first is kept as the
    template): ShuffleNetV2's 2 + 6 + 2 units after each stage's down unit and first unit; ResNet-50's
    bottlenecks after each stage's first (its projection) and second: the equality above is not that of
    two expansions anew."""
    counted = _Counted(monkeypatch)
    expansion.expand(resolve(ZOO / "shufflenet_v2_x1_0.yaml"))
    assert counted.copied == 2 + 6 + 2
    counted.copied = 0
    expansion.expand(resolve(ZOO / "resnet50.yaml"))
    assert counted.copied == 1 + 2 + 4 + 1


BLOCKS = """
archspec: 1
name: t
input: {channels: 3, size: [16, 16]}
blocks:
  b:
    params: {c: 8}
    chain: {p: BODY, q: conv2d $c 1x1}
  d:
    chain: ['dropout ${0.1 * block_index}']
  e:
    counter: depth
    params: {w: 8}
    chain: [conv2d $w 1x1]
  g:
    counter: depth
    chain: ['dropout ${0.01 * block_index}']
  h:
    params: {w: 8}
    chain: ['conv2d ${in} 1x1', conv2d $w 1x1]
network:
  stem: conv2d 8 3x3 p1
  t: conv2d 8 1x1
  s: [b c=8, b c=8, b c=8, b c=8]
  head: [global_avgpool, linear 4]
"""

# (body of block b, whether its second, third and fourth instances are copies: the first is kept as the template)
REASONS = [
    ("conv2d 8 3x3 p1", True),
    ("'conv2d ${in} 3x3 p1'", True),  # reads `in`: copied where the input's shape is the same
    ("[conv2d 8 3x3 p1, 'conv2d ${in} 1x1']", True),  # ... of a node inside it: that node's early shape too
    ("'dropout ${0.1 * block_index}'", True),  # block_index differs: its argument read again in each copy
    ("'dropout ${0.1 * block_index / block_count}'", True),  # ... and block_count (worked out again when known)
    ("[conv2d 8 3x3 p1, 'leaky_relu ${0.01 * (block_index + 1)}', 'dropout ${0.1 * block_index} channelwise']", True),
    ("'conv2d ${8 + block_index} 3x3 p1'", False),  # an op whose shape its arguments decide
    ("{residual: {body: [conv2d 8 3x3 p1], then: 'leaky_relu ${0.01 * (block_index + 1)}'}}", True),  # a then: too
    ("['dropout ${0.1 * block_index}', 'conv2d ${in} 1x1']", True),  # `in` read after it: the same in every copy
    ("['conv2d 8 1x1 * ${1 + block_index % 2}']", False),  # a repeat count read from block_index
    ("{chain: ['dropout ${0.1 * block_index}'], repeat: 2}", True),  # a repeated chain's copies: still b's index
    ("{residual: {body: [conv2d 8 3x3 p1, bn]}}", True),
    ("{residual: {body: []}}", True),  # x + x: the writer's identity, written after the add that reads it
    ("{from: stem}", False),  # a value from outside the instance
    ("{from: t}", False),  # ... which is the first instance's input, read by name: not the next one's input
    ("{concat: {u: conv2d 4 1x1, v: [{from: stem}, conv2d 4 1x1]}}", False),
    ("{concat: {u: conv2d 4 1x1, v: {from: block_in}}}", True),  # its own input, as block_in: the copy's own
    ("d", False),  # a block inside reads block_index (its own): d's instances are copied, not b's
    ("e w=8", True),  # a block inside: copied with the instance around it
    ("{share: t}", False),  # a module shared with a node outside
    ("{chain: {a: conv2d 8 1x1, z: {share: p.a}}}", False),  # ... or inside: the copy's module would be its own
]


@pytest.mark.parametrize(("body", "copied"), REASONS, ids=[b for b, _ in REASONS])
def test_each_reason_an_instance_is_not_copied(monkeypatch: Any, body: str, copied: bool) -> None:
    text = BLOCKS.replace("BODY", body)
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, text, None, shaped=False)  # (the shapes `in` worked out, before shape inference)
    assert got == want
    got, want = _both(monkeypatch, text, None)
    assert got == want
    counted.blocks.clear()
    monkeypatch.setattr(instances, "COPIES", True)
    expansion.expand(resolve(text))
    assert counted.blocks.count("b") == (3 if copied else 0)


def test_a_name_reading_the_kept_instance_s_input_is_not_copied(monkeypatch: Any) -> None:
    """The kept (first) instance's body reads its own input by name (``from: t`` where it is applied to t):
    a later instance applied elsewhere still reads t, so it is expanded, not copied with its own input."""
    text = BLOCKS.replace("BODY", "{from: t}").replace(
        "s: [b c=8, b c=8, b c=8, b c=8]", "u: b c=8\n  v: [{from: t}, b c=8]\n  w: b c=8\n  z: b c=8"
    )
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, text, None)
    assert got == want
    assert counted.copied == 0


def test_a_copy_advances_the_counters_of_the_blocks_inside(monkeypatch: Any) -> None:
    """Each copy counts the instances of the blocks inside it (``e``, on the counter it shares with ``g``):
    the ``g`` after the stage reads block_index 4, as it does when every instance is expanded."""
    text = BLOCKS.replace("BODY", "e w=8").replace("head: [", "last: g\n  head: [")
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, text, None)
    assert got == want
    assert counted.copied == 3
    (p,) = [r.params.p for r in got[1] if r.op == "dropout"]
    assert p == pytest.approx(0.04)


def test_an_instance_holding_a_copy_that_reads_in_depends_on_its_input(monkeypatch: Any) -> None:
    """``b`` reads `in` only through the copies of ``h`` inside it (its first instance keeps its first ``h`` and
    copies the other two): ``b``'s template still depends on its input's channels, so the ``b`` after the widening
    conv is expanded, its first ``h`` 16 wide."""
    text = BLOCKS.replace("BODY", "[h w=8, h w=8, h w=8]").replace(
        "s: [b c=8, b c=8, b c=8, b c=8]", "s: [b c=8, b c=8, b c=8, conv2d 16 1x1, b c=8]"
    )
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, text, None, shaped=False)
    assert got == want
    got, want = _both(monkeypatch, text, None)
    assert got == want
    assert counted.copied > 0
    assert [r.params.out for r in got[1] if r.path == "s.4.p.0.0"] == [16]


def test_a_different_input_shape_is_expanded_anew(monkeypatch: Any) -> None:
    """An instance reading `in` applied to another shape (after a stride) is expanded, not copied; it is
    then the template for that shape."""
    text = BLOCKS.replace("BODY", "'conv2d ${in} 3x3 p1'")
    text = text.replace("[b c=8, b c=8, b c=8, b c=8]", "[b c=8, b c=8, maxpool 2x2 s2, b c=8]")
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, text, None)
    assert got == want
    assert counted.copied == 1  # the second instance, not the third
    text = text.replace("maxpool 2x2 s2, b c=8]", "maxpool 2x2 s2, b c=8, b c=8]")
    counted.copied = 0
    got, want = _both(monkeypatch, text, None)
    assert got == want
    assert counted.copied == 2  # the second, and the fifth from the fourth


# (b's body, the op, its rate in each of the four instances, how many instances are copies)
RATES = [
    # EfficientNet's stochastic depth, sd · block_index / block_count: each copy's own rate, over the real count (4)
    ("'drop_path ${0.2 * block_index / block_count}'", "drop_path", [0.0, 0.05, 0.1, 0.15], 3),
    # the rate reads `in` from the third instance on (A if C else B evaluates one side): an argument naming `in`
    # is never read again in a copy, so every instance is expanded
    ("'dropout ${0.1 if block_index < 2 else in / 100}'", "dropout", [0.1, 0.1, 0.08, 0.08], 0),
]


@pytest.mark.parametrize(("body", "op", "rates", "copies"), RATES, ids=[r[1] for r in RATES])
def test_arguments_read_again_are_each_instance_s(monkeypatch: Any, body: str, op: str, rates: list[float], copies: int) -> None:
    """The rates the copies read again equal the expansion anew's, instance by instance."""
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, BLOCKS.replace("BODY", body), None)
    assert got == want
    assert counted.blocks.count("b") == copies
    assert [r.params.p for r in got[1] if r.op == op] == pytest.approx(rates)


def test_an_index_read_by_a_block_inside_is_that_block_s(monkeypatch: Any) -> None:
    """Each ``b`` holds a ``d`` whose drop rate reads d's block_index, one ahead of b's (a ``d`` stands before the
    stage): the d instances in b after the first are copies, each reading its own index again; the b instances
    are expanded."""
    text = BLOCKS.replace("BODY", "d").replace("t: conv2d 8 1x1", "t: [conv2d 8 1x1, d]")
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, text, None)
    assert got == want
    assert (counted.blocks.count("b"), counted.blocks.count("d")) == (0, 3)
    assert [r.params.p for r in got[1] if r.op == "dropout"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_under_a_width_multiplier_scaled_instances_are_expanded(monkeypatch: Any) -> None:
    """At width 0.5 every ``b`` holds convs the multiplier scales, and the last one's ``q`` decides the
    network's output channels, which stay as written (worked out again after the expansion): no ``b`` is a
    copy, and the graphs equal the expansion anew."""
    text = BLOCKS.replace("BODY", "'dropout ${0.1 * block_index}'").replace("name: t\n", "name: t\nscale: {width: 0.5}\n")
    text = text.replace("c=8", "c=32").replace("conv2d 8", "conv2d 32").replace("[global_avgpool, linear 4]", "global_avgpool")
    counted = _Counted(monkeypatch)
    got, want = _both(monkeypatch, text, None)
    assert got == want
    assert counted.blocks.count("b") == 0
    assert [r.params.out for r in got[1] if r.op == "conv2d"] == [16, 16, 16, 16, 16, 32]


def test_ops_said_to_keep_their_input_s_shape_do() -> None:
    """Op.keeps_shape, which lets a copy read such an op's arguments again, against each op's own shape rule."""
    from archspec.ops import REGISTRY
    from archspec.symbolic import Dim, Shape

    keeping = [op for op in REGISTRY.values() if op.keeps_shape]
    assert {"relu", "silu", "leaky_relu", "dropout", "drop_path"} <= {op.name for op in keeping}
    for op in keeping:
        params = op.Params.model_validate({name: 0.25 for name in op.positional})
        h, w = Dim(0, 1, symbol="H", ref=7), Dim(0, 1, symbol="W", ref=5)
        for shape in (Shape(16, h, w), Shape(10)):
            assert op.infer(params, [shape]) == shape, op.name


def test_a_clash_in_a_copy_is_the_same_located_error(monkeypatch: Any) -> None:
    """A copy claims its module paths as an expansion does: two modules at one path (unnamed lists restart at
    0, so the fourth instance, a copy, lands on the first's path), the same error."""
    text = BLOCKS.replace("BODY", "conv2d 8 3x3 p1").replace(
        "s: [b c=8, b c=8, b c=8, b c=8]", "s: [[b c=8, b c=8, b c=8], [b c=8]]"
    )
    counted = _Counted(monkeypatch)
    errors = []
    for on in (True, False):
        monkeypatch.setattr(instances, "COPIES", on)
        with pytest.raises(SpecError) as e:
            expansion.expand(resolve(text))
        errors.append((str(e.value), e.value.loc))
    assert "two modules would be named 's.0.p'" in errors[0][0]
    assert errors[0] == errors[1]
    assert counted.copied == 2  # the second and third instances; the fourth, copied too, raises it


@pytest.mark.slow
def test_fuzzer_specs_equal_with_and_without_copies(monkeypatch: Any) -> None:
    """The differential fuzzer's random specs (tests/fuzz/specgen.py), 120 seeds: the same graphs, and
    some instances copied among them."""
    from tests.fuzz.specgen import KNOWN_FAULTS, generate, render

    counted = _Counted(monkeypatch)
    checked = 0
    for seed in range(120):
        spec, _ = generate(seed, set(KNOWN_FAULTS), 1)
        text, overrides = render(spec), dict(spec.overrides) or None
        try:
            got, want = _both(monkeypatch, text, overrides)
        except SpecError:
            continue  # (a spec the generator draws beyond a limit: no graph to compare)
        assert got == want, f"seed {seed}"
        checked += 1
    assert checked >= 100
    assert counted.copied > 0
