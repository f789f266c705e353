"""Stochastic depth and the expressions it needs: the `drop_path` op against torchvision's
StochasticDepth (same values and gradients, the same random numbers for the same seed, the identity
in eval mode, in every backend), `block_index`/`block_count` over every way of making instances, and
conditions in `${...}` (comparisons, and/or/not, A if C else B) as `if:` takes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.pipeline import shaped_graph
from tests.reference_macs import reference_macs
from tests.references import perturb_bn

torchvision_ops = pytest.importorskip("torchvision.ops")

HEADER = "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"

# two residual blocks whose branch ends in drop_path, a ReLU after each sum, then a head
RESIDUAL = (
    HEADER
    + """blocks:
  res:
    params: {p: 0.5}
    residual:
      body:
        - conv: conv2d 8 3x3 p1
        - bn: bn
        - drop: drop_path $p
      then: relu
network:
  - stem: conv2d 8 1x1
  - a: res p=0.5
  - b: res p=0.25
  - global_avgpool
"""
)


def _reference(sd: dict[str, torch.Tensor], x: torch.Tensor, training: bool) -> torch.Tensor:
    """The network of RESIDUAL written with torch functions and torchvision's stochastic_depth."""
    x = F.conv2d(x, sd["stem.weight"], sd["stem.bias"])
    for name, p in (("a", 0.5), ("b", 0.25)):
        y = F.conv2d(x, sd[f"{name}.conv.weight"], sd[f"{name}.conv.bias"], padding=1)
        y = F.batch_norm(
            y,
            sd[f"{name}.bn.running_mean"].clone(),
            sd[f"{name}.bn.running_var"].clone(),
            sd[f"{name}.bn.weight"],
            sd[f"{name}.bn.bias"],
            training=training,
        )
        y = torchvision_ops.stochastic_depth(y, p, "row", training=training)
        x = torch.relu(y + x)
    return x.mean((2, 3))


def _model(text: str = RESIDUAL) -> torch.nn.Module:
    torch.manual_seed(0)
    model = archspec.build(text)
    perturb_bn(model)  # trained-like BatchNorm statistics, so wrong wiring cannot hide
    return model


@pytest.mark.parametrize("training", [False, True])
def test_drop_path_equals_torchvision_stochastic_depth(training: bool) -> None:
    """Values and gradients, with the same random numbers for the same seed (8 samples, so some are
    dropped and some kept in training mode), and the caller's input untouched."""
    model = _model().train(training)
    params = dict(model.named_parameters())
    sd = {**{k: v.detach() for k, v in model.state_dict().items()}, **params}
    x = torch.randn(8, 3, 16, 16)
    x0 = x.clone()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(11)
    ours = model(xa)
    torch.manual_seed(11)
    theirs = _reference(sd, xb, training)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(theirs)
    got = torch.autograd.grad(ours, [xa, *params.values()], g)
    want = torch.autograd.grad(theirs, [xb, *params.values()], g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert torch.equal(x, x0) and torch.equal(xa.detach(), x0)
    if training:  # another seed drops other samples: the randomness is real
        torch.manual_seed(12)
        assert not torch.allclose(model(x), ours)


def test_drop_path_is_the_identity_in_eval_mode_and_draws_nothing() -> None:
    model = _model().eval()
    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(3)
    model(x)
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(1), after)  # no random numbers were drawn
    drop = model.get_submodule("a.drop")
    y = torch.randn(2, 8, 4, 4)
    assert drop(y) is y


def test_drop_path_has_no_weights_and_no_macs() -> None:
    without = RESIDUAL.replace("        - drop: drop_path $p\n", "").replace("params: {p: 0.5}", "params: {}")
    without = without.replace("res p=0.5", "res").replace("res p=0.25", "res")
    report, plain = archspec.check(RESIDUAL), archspec.check(without)
    assert report.params == plain.params and report.macs == plain.macs
    model = _model().eval()
    assert reference_macs(model, torch.randn(1, 3, 16, 16))[1] == report.macs
    assert "drop" not in "".join(model.state_dict())


def test_drop_path_forms_and_errors() -> None:
    for form in ("drop_path 0.1", "drop_path p=0.1", "{op: drop_path, p: 0.1}"):
        _, graph, _ = shaped_graph(HEADER + f"network:\n  - conv2d 4 1x1\n  - {form}\n  - global_avgpool\n")
        (p,) = [d.params.p for _, d in graph.records() if d.op == "drop_path"]
        assert p == 0.1
    for form, fragment in (("drop_path 1.0", "less than 1"), ("drop_path", "needs 'p'"), ("drop_path -0.1", "greater")):
        with pytest.raises(archspec.SpecError) as e:
            archspec.check(HEADER + f"network:\n  - conv2d 4 1x1\n  - {form}\n  - global_avgpool\n")
        assert e.value.line == 6 and fragment in e.value.message, e.value.message


def test_drop_path_through_every_backend(tmp_path: Path) -> None:
    """The standalone file (its own DropPath class) draws the same numbers; torch.export and the
    optimised inference module see the identity; torch.compile takes it in one graph."""
    from archspec.api import analyze
    from archspec.codegen import generate
    from archspec.inference import optimize

    model = _model()
    graph = analyze(RESIDUAL).graph
    source = generate(graph)
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert "class DropPath(nn.Module):" in source and not any("archspec" in line for line in imports)
    namespace: dict[str, object] = {}
    exec(compile(source, "t.py", "exec"), namespace)  # noqa: S102 - the file archspec just wrote
    standalone = namespace["T"]()  # type: ignore[operator]
    standalone.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(8, 3, 16, 16)
    for training in (True, False):
        model.train(training), standalone.train(training)
        torch.manual_seed(5)
        a = model(x)
        torch.manual_seed(5)
        torch.testing.assert_close(standalone(x), a, rtol=0, atol=0)
    model.eval()
    program = torch.export.export(model, (x,))
    assert "bernoulli" not in str(program.graph)
    torch.testing.assert_close(program.module()(x), model(x))
    fast = optimize(model)
    assert "drop" not in fast.code
    torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)
    model.train()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.manual_seed(5)
    a = compiled(x)
    torch.manual_seed(5)
    torch.testing.assert_close(a, model(x), rtol=0, atol=0)


# ---- block_index and block_count ---------------------------------------------------------------
COUNTED = (
    HEADER
    + """blocks:
  b:
    op: dropout ${0.01 * block_index + 0.001 * block_count}
  pair:
    chain:
      - b * 2
network:
  - b
  - first: b * 2
  - {block: b, repeat: 2, names: "layer{n}"}
  - {chain: [b, pair], repeat: 2}
  - pair
  - global_avgpool
"""
)


def _rates(text: str) -> list[tuple[str, float]]:
    _, graph, _ = shaped_graph(text)
    nodes = sorted((d.order, d.path, d.params.p) for _, d in graph.records() if d.op == "dropout")
    return [(path, round(p, 9)) for _, path, p in nodes]


def test_block_index_counts_every_instance_in_network_order() -> None:
    """Written once, repeated with `* N`, with `names:`, inside a repeated chain and inside another
    block: 1 + 2 + 2 + 2·(1 + 2) + 2 = 13 instances of b, numbered 0 … 12 in the order written."""
    paths = ["0", "first.0", "first.1", "layer1", "layer2", "4.0", "4.1.0", "4.1.1", "5.0", "5.1.0", "5.1.1", "6.0", "6.1"]
    assert _rates(COUNTED) == [(path, round(0.01 * i + 0.001 * 13, 9)) for i, path in enumerate(paths)]


def test_block_index_is_the_innermost_block_s() -> None:
    """Inside pair, the index is pair's (0 and 1 of 2), not that of the b around it."""
    text = (
        HEADER
        + """blocks:
  b:
    op: conv2d 4 1x1
  pair:
    chain:
      - b
      - dropout ${0.1 * block_index + 0.01 * block_count}
network:
  - pair * 2
  - b
  - global_avgpool
"""
    )
    assert _rates(text) == [("0.1", 0.02), ("1.1", 0.12)]


def test_depth_multiplier_changes_the_count() -> None:
    text = HEADER + "blocks:\n  b: {op: 'dropout ${0.1 * block_index / block_count}'}\nnetwork:\n  - b * 2\n"
    assert [p for _, p in _rates(text)] == [0.0, 0.05]
    _, graph, _ = shaped_graph(text, overrides={"scale.depth": 2})
    rates = sorted(d.params.p for _, d in graph.records() if d.op == "dropout")
    assert rates == pytest.approx([0, 0.025, 0.05, 0.075])


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        (
            HEADER + "network:\n  - conv2d 4 1x1\n  - dropout ${0.1 * block_index}\n",
            (6, 13),
            "$block_index is defined only inside a block",
        ),
        (
            HEADER + "network:\n  - conv2d 4 1x1\n  - {chain: [dropout $block_count], repeat: 2}\n",
            (6, 22),
            "$block_count is defined only inside a block",
        ),
        (
            HEADER + "blocks:\n  b:\n    params: {block_index: 1}\n    op: conv2d $block_index 1x1\nnetwork: [b]\n",
            (6, 14),
            "declares a parameter $block_index",
        ),
        (
            HEADER + "blocks:\n  b: {op: conv2d 4 1x1}\n  c:\n    chain:\n      - b * $block_count\nnetwork: [c]\n",
            (8, 13),
            "a repeat count cannot use $block_count",
        ),
        (  # a condition may read block_count, but not to decide how many instances there are
            HEADER + "blocks:\n  b: {op: conv2d 4 1x1}\n  c:\n    chain:\n      - {if: '${block_count > 2}', then: b}\n"
            "network: [c, c]\n",
            (8, 42),
            "the number of instances of block 'b' depends on $block_count",
        ),
        (
            HEADER + "blocks:\n  b: {op: 'dropout ${block_index / (block_count - 1)}'}\nnetwork: [b]\n",
            (5, 20),
            "division by zero",
        ),
    ],
)
def test_block_index_errors_are_located(text: str, where: tuple[int, int], fragment: str) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(text)
    assert (e.value.line, e.value.column) == where and e.value.code == "param", e.value.format()
    assert fragment in e.value.message


# ---- conditions in expressions -------------------------------------------------------------------
CONDITIONAL = (
    HEADER
    + """blocks:
  unit:
    params: {cin: 8, out: 8, s: 1}
    chain:
      - if: ${s == 1 and cin == out}
        then:
          residual: {body: [conv2d $out 3x3 p1]}
        else:
          conv2d $out 3x3 s$s p1
network:
  - conv2d 8 1x1
  - unit cin=8 out=8 s=1
  - unit cin=8 out=16 s=1
  - unit cin=16 out=16 s=2
  - global_avgpool
"""
)


def test_a_condition_chooses_the_branch() -> None:
    _, graph, _ = shaped_graph(CONDITIONAL)
    adds = sorted(d.path for _, d in graph.records() if d.op == "add")
    assert adds == ["1.add"]  # only the first unit keeps its shape and stride


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("e > 1", True),
        ("e != 6", False),
        ("0 < s <= 2", True),
        ("not (e > 1 or s > 1)", False),
        ("3 if e > 1 else 5", 3),
        ("3 if e < 1 else 5", 5),
        ("max(1, e // 4) if s == 1 else 0", 1),
    ],
)
def test_conditions_evaluate_like_python(expr: str, value: object) -> None:
    from archspec.language.expr import evaluate

    got = evaluate(expr, {"e": 6, "s": 1}.__getitem__)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("(e > 1) + 1", "is true or false, not a number"),
        ("e and s", "is a number, not true or false"),
        ("1 if e else 2", "is a number, not true or false"),
        ("max(e > 1, 2)", "is true or false, not a number"),
        ("e is 1", "is not allowed"),
        ("e in 1", "is not allowed"),
    ],
)
def test_conditions_and_numbers_do_not_mix(expr: str, fragment: str) -> None:
    from archspec.language.expr import ExprError, evaluate

    with pytest.raises(ExprError, match=fragment):
        evaluate(expr, {"e": 6, "s": 1}.__getitem__)
