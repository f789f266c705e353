"""What a path names in `outputs:`, `from:`, `crop to=` and `aux: tap` (docs/language.md, "What a path
names"): the outermost node at that module path; nodes side by side there are a located `name` error.

Each spec here is a fuzz finding (issues 24 and 30; docs/testing.md) or its neighbour. The truth is
the differential tester's oracle (tests/fuzz: written from the docs, apart from archspec), the output
shapes worked out by hand from the docs' rule, and torch functions over the model's own weights. The
last tests are of the tester itself: it must not report faults that are its own.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F

import archspec
from tests.fuzz.differential import Case, _candidates, run_case
from tests.fuzz.oracle import Oracle
from tests.fuzz.specgen import Aux, Chain, Concat, Gate, Named, Op, Residual, Spec, Take, realize, render


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # small networks: threads cost more than they bring, and CI has 2 cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _spec(*items: object, outputs: list[tuple[str, str]], size: int = 9, as_map: bool = False) -> Spec:
    return Spec(name="t", channels=3, size=(size, size), network=Chain(list(items)), outputs=outputs, outputs_map=as_map)


# name → (spec, each output's shape at 9×9 by the docs' rule, worked out by hand)
FOUND = {
    # seed 4312180: a copy of `{chain: ..., repeat: 1}` is named like a block instance (`add.conv.0`): refused
    "chain_copy": (
        _spec(
            Named("add", Concat([Chain([Op("relu6")], "chain_map", ["branch1"], repeat=1)], ["conv"])),
            Op("conv2d", {"out": 4}),
            outputs=[("add.conv.0", "add.conv.0")],
        ),
        {"add.conv.0": (3, 9, 9)},  # relu6 of the input
    ),
    # seeds 5101704, 5001478: an unnamed concat among the rows and its first branch shared the path `0`, and
    # archspec returned the branch (3 channels) for the concat (6); the row is `[0]` now (docs/language.md, Naming)
    "row_and_its_branch": (
        _spec(
            Concat([Op("identity"), Op("relu")]), Op("conv2d", {"out": 2}), outputs=[("pool", "[0]"), ("first", "0")], as_map=True
        ),
        {"pool": (6, 9, 9), "first": (3, 9, 9)},  # [x, relu(x)], and x
    ),
    # a gate written as an unnamed list item: the gate (x·g) and its single op (g, C×1×1) share `blk.1`
    "gate_over_its_op": (
        _spec(
            Named("blk", Chain([Op("conv2d", {"out": 4}), Gate(Op("adaptive_avgpool", {"size": (1, 1)}))])),
            Op("global_avgpool"),
            outputs=[("blk.1", "blk.1")],
        ),
        {"blk.1": (4, 9, 9)},  # x · mean(x), not mean(x)'s 4×1×1
    ),
    # a named repeat is the chain of its copies: `layer` is its last copy's value (refused as naming no node)
    "named_repeat": (
        _spec(Named("layer", Op("conv2d", {"out": 3}, repeat=2)), Op("global_avgpool"), outputs=[("layer", "layer")]),
        {"layer": (3, 9, 9)},
    ),
    # a residual's `then: conv2d * 2` is `act` (its copies act.0, act.1): refused as naming no node
    "then_repeat": (
        _spec(
            Named("r", Residual(Op("relu"), then=Op("conv2d", {"out": 3}, repeat=2))),
            Op("global_avgpool"),
            outputs=[("r.act", "r.act")],
        ),
        {"r.act": (3, 9, 9)},
    ),
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_a_path_names_the_outermost_node_there(name: str) -> None:
    """check's output shapes as the docs' rule gives them by hand; everything else (rows, parameters,
    MACs, build, the standalone file, optimize, other sizes) equal to the oracle's."""
    spec, shapes = FOUND[name]
    truth = realize(spec)
    assert {k: truth.out_shape(k) for k in truth.main} == shapes  # the truth reads the rule as written
    report = archspec.check(render(spec))
    assert {k: tuple(v.at(9, 9)) for k, v in report.outputs.items()} == shapes
    findings = run_case(spec, truth, 0)
    assert not findings, "; ".join(map(str, findings)) + "\n" + render(spec)


def _model_and_input(text: str) -> tuple[torch.nn.Module, torch.Tensor, dict[str, torch.Tensor]]:
    model = archspec.build(text).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        got = model(x)
    return model, x, got


def test_the_values_equal_torch_functions() -> None:
    """The same three rules over the model's own weights: the row's concat, the gate's product, the last copy."""
    text = textwrap.dedent(
        """\
        archspec: 1
        name: t
        input: {channels: 3, size: 9}
        network:
        - concat: [identity, relu]
        - blk: [conv2d 6 1x1, {gate: adaptive_avgpool 1x1}]
        - layer: conv2d 6 1x1 * 2
        - head: [global_avgpool, linear 2]
        outputs: {row: '[0]', gate: blk.1, layer: layer}
        """
    )
    model, x, got = _model_and_input(text)
    sd = model.state_dict()
    row = torch.cat([x, torch.relu(x)], dim=1)
    conv = F.conv2d(row, sd["blk.0.weight"], sd["blk.0.bias"])
    gate = conv * F.adaptive_avg_pool2d(conv, 1)
    first = F.conv2d(gate, sd["layer.0.weight"], sd["layer.0.bias"])
    last = F.conv2d(first, sd["layer.1.weight"], sd["layer.1.bias"])
    assert list(got) == ["row", "gate", "layer"]
    for name, want in (("row", row), ("gate", gate), ("layer", last)):
        torch.testing.assert_close(got[name], want, msg=name)
    assert "head.1.weight" not in sd  # no output reads the head: left out


def test_rows_leave_out_a_node_named_input_that_no_output_reads() -> None:
    """Seeds 5000016, 5100240, 5102466: a top-level node named `input` that no output reads stayed a row
    (the network's input was taken for its last op)."""
    text = "archspec: 1\nname: t\ninput: {channels: 1, size: 15}\nnetwork: {'1': relu, proj: identity, input: identity}\n"
    report = archspec.check(text + "outputs: [proj, '1']\n")
    assert [(r.path, tuple(r.shape.at(15, 15))) for r in report.rows] == [("1", (1, 15, 15)), ("proj", (1, 15, 15))]
    spec = Spec("t", 1, (15, 15), Chain([Op("relu"), Op("identity"), Op("identity")], "chain_map", ["1", "proj", "input"]))
    spec.outputs = [("proj", "proj"), ("1", "1")]
    assert not run_case(spec, realize(spec), 0)


SIDE_BY_SIDE = {
    # seed 4312239: two unnamed residuals' `then` ops are both `act`; archspec took the first, silently
    "outputs": ("- {residual: {body: hardswish, then: relu}}\n- {residual: {body: relu6, then: tanh}}", "outputs: [act]", 7),
    "from": ("- {residual: {body: hardswish, then: relu}}\n- {residual: {body: relu6, then: tanh}}\n- {from: act}", "", 7),
    "crop": ("- {residual: {body: hardswish, then: relu}}\n- {residual: {body: relu6, then: tanh}}\n- crop to=act", "", 7),
    "aux_tap": (
        "- {residual: {body: hardswish, then: relu}}\n- {residual: {body: relu6, then: tanh}}\n- global_avgpool",
        "aux: {side: {tap: act, head: [global_avgpool, linear 2]}}",
        8,
    ),
    # seed 5101704's spec: row `0` and the copy `0` of `group_norm g6 * 1` in a later unnamed residual
    "row_and_copy": (
        "- concat: [identity, relu]\n- residual: {body: group_norm g6 * 1}",
        "outputs: {pool: '0'}",
        7,
    ),
}


@pytest.mark.parametrize("name", sorted(SIDE_BY_SIDE))
def test_nodes_side_by_side_at_one_path_are_a_located_name_error(name: str) -> None:
    network, rest, line = SIDE_BY_SIDE[name]
    text = f"archspec: 1\nname: t\ninput: {{channels: 3, size: 9}}\nnetwork:\n{network}\n{rest}\n"
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(text)
    assert e.value.code == "name", e.value.format()
    assert "values side by side" in str(e.value) and e.value.line == line, e.value.format()
    assert "line 5" in str(e.value) and "line 6" in str(e.value)  # where the two nodes are written


def test_an_unread_part_does_not_decide_the_accepted_sizes() -> None:
    """Seeds 5001395, 5100255, 5100369, 5101713, 5101757, 4212367: at another input size a part no output
    reads cannot be built (here a channel_slice past a flattened map's 75 values); it is left out, so the
    size is accepted. archspec was right, the tester's truth refused the size."""
    spec = Spec(
        "t",
        1,
        (17, 8),
        Chain([Op("flatten"), Concat([Op("channel_slice", {"start": 59, "stop": 110}), Op("tanh")], ["pool", "F"])]),
    )
    spec.outputs = [("F", "F")]
    truth = realize(spec)
    case = Case(spec, truth, 0)
    case.check_at_size((3, 25))
    assert not case.findings, case.findings
    report = archspec.check(render(spec), {"input.size": [3, 25]})
    assert tuple(report.outputs["F"].at(3, 25)) == (75,)  # 1 channel · 3 · 25, by hand


def test_the_minimiser_takes_gates_and_references() -> None:
    """`KeyError: Gate` in the minimiser (seed 4212250's chunk): every node kind has its simplifications."""
    gate = Gate(Chain([Op("adaptive_avgpool", {"size": (1, 1)}), Op("conv2d", {"out": 4}), Op("sigmoid")]))
    spec = _spec(Named("enc", Op("conv2d", {"out": 4})), gate, Residual(Op("identity"), Take("enc")), outputs=[("enc", "enc")])
    candidates = [render(c) for c in _candidates(spec)]
    assert any("gate" not in c for c in candidates)  # the gate replaced by an identity
    assert any("from" not in c for c in candidates)  # the reference replaced by an identity
    assert any("sigmoid" not in c and "gate" in c for c in candidates)  # inside the gate's body


def test_a_wrong_output_is_reported_once_not_as_later_faults() -> None:
    """Seed 4312239: where one output's shape differed, the tester returned before putting back the
    oracle's BatchNorm statistics after its training step, and the standalone file and optimize were then
    compared with that changed oracle: a right output was reported wrong. Here the truth is made wrong on
    purpose (output b read from a's value); output a must not be reported."""
    spec = _spec(
        Named("a", Op("conv", {"out": 4})),
        Named("b", Op("maxpool", {"kernel": (2, 2), "stride": (2, 2)})),
        outputs=[("a", "a"), ("b", "b")],
    )
    truth = realize(spec)
    truth.outputs["b"] = truth.outputs["a"]
    findings = Case(spec, truth, 0, sizes=False).run()
    assert {f.category for f in findings} >= {"eval-mismatch", "codegen-eval-mismatch", "optimize-mismatch"}
    assert all("output a" not in f.detail for f in findings), "\n".join(map(str, findings))


def test_eval_mode_computes_what_the_outputs_read_only() -> None:
    """The tester crashed in check_sizes (seed 5100000's chunk): with an aux head tapping a merge after every
    output, the oracle computed that merge in eval mode too, at a size where it cannot be (the aux head's part
    of the network runs in training mode only; the sizes eval mode accepts are the outputs')."""
    merge = Concat(
        [Op("maxpool", {"kernel": (2, 2), "stride": (2, 2)}), Op("avgpool", {"kernel": (2, 2), "stride": (2, 2), "ceil": True})]
    )  # agree at even sizes only
    spec = _spec(Named("a", Op("conv2d", {"out": 4})), Named("m", merge), outputs=[("a", "a")], size=8)
    spec.aux = [Aux("side", "m", Chain([Op("global_avgpool"), Named("fc", Op("linear", {"out": 2}))]))]
    truth = realize(spec)
    assert truth.accepts(9, 9) and not truth.accepts(9, 9, train=True)
    model = archspec.build(render(spec)).eval()
    oracle = Oracle(truth).eval()
    oracle.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["a"], oracle(x)["a"])
    assert not run_case(spec, truth, 0)
