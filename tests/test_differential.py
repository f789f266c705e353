"""Differential testing (issue 13): random valid specs, compiled by archspec, against an oracle.

tests/fuzz/specgen.py draws specs over the whole language and works out, without archspec, what
each one means (module paths, shapes at every input size, parameter count, MACs);
tests/fuzz/oracle.py runs that meaning eagerly with plain torch modules; tests/fuzz/differential.py
compares check, build, the standalone file of `archspec compile` and `archspec.optimize` with it.
docs/testing.md explains the design and how to run a long run
(``python -m tests.fuzz.differential --cases 20000``).

Constructs archspec miscompiles today are switched off in ``KNOWN_FAULTS``; each switch has a
minimal spec in FAULT_SPECS, and test_switched_off_fault_is_still_there fails once that fault is
fixed: then delete the switch from KNOWN_FAULTS and its entry in FAULT_SPECS, so that the
generator draws the construct again.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings

import archspec
from archspec.ops import REGISTRY
from tests.fuzz.differential import run_case
from tests.fuzz.oracle import Oracle
from tests.fuzz.specgen import (
    KNOWN_FAULTS,
    Aux,
    Block,
    Chain,
    Concat,
    Gen,
    If,
    Invalid,
    Named,
    Op,
    Residual,
    Spec,
    Use,
    coverage,
    generate,
    realize,
    render,
    specs,
)

EXAMPLES = int(os.environ.get("ARCHSPEC_DIFF_EXAMPLES", "300"))



@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # small networks: threads cost more than they bring, and CI has 2 cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate], database=None)
@given(specs())
def test_archspec_agrees_with_the_oracle(case: tuple) -> None:
    seed, spec, truth = case
    findings = run_case(spec, truth, seed)
    assert not findings, (
        f"seed {seed}: " + "; ".join(map(str, findings)) + f"\n--- spec (overrides {spec.overrides})\n{render(spec)}"
        + f"\nminimise it: python -m tests.fuzz.differential --seed {seed} --cases 1"
    )


def test_the_generator_covers_every_op_and_option() -> None:
    """Every op of the registry and every parameter of each is drawn (so a new op or option that
    the generator does not know fails here), and every kind of node and spelling."""
    seen: set[str] = set()
    for seed in range(400):
        spec, _ = generate(seed)
        seen |= coverage(spec)
    wanted = set()
    for name, op in REGISTRY.items():
        if name in ("add", "concat"):  # merges: made by residual: and concat:
            continue
        wanted.add(f"op:{name}")
        wanted |= {f"opt:{name}.{f}" for f in op.Params.model_fields}
    wanted |= {"opt:add.scale", "op:add", "op:concat"}
    wanted |= {f"node:{k}" for k in ("chain-list", "chain-chain_list", "chain-chain_map", "named", "concat-list",
                                     "concat-map", "residual", "residual-shortcut", "residual-scale", "residual-then",
                                     "if-true", "if-false", "if-param", "if-else", "use-short", "use-long", "use-args",
                                     "use-repeat", "op-long", "op-repeat", "op-fixed", "param", "block-concat",
                                     "block-residual", "block-chain", "block-op", "block-nested", "defaults", "aux",
                                     "scale-width", "scale-depth", "network-map", "network-list", "empty-chain")}
    wanted |= {f"set:{k}" for k in ("input.size", "scale.width", "scale.depth", "defaults", "blocks", "network")}
    assert not wanted - seen, f"never drawn: {sorted(wanted - seen)}"


def test_the_truth_agrees_with_torch_on_shapes() -> None:
    """The generator's own shapes (for every output, at the spec's size and at other accepted
    sizes) are the shapes the oracle's torch ops produce: the tester's truth is checked too."""
    for seed in range(60):
        spec, truth = generate(seed)
        oracle = Oracle(truth).train()
        h, w = truth.size
        for size in {(h, w), (truth.min_size[0], truth.min_size[1] if truth.accepts(*truth.min_size) else w)}:
            if not truth.accepts(*size, train=True):
                continue
            out = oracle(torch.randn(2, truth.channels, *size))
            outs = out if isinstance(out, dict) else {"logits": out}
            for name in truth.outputs:
                assert tuple(outs[name].shape[1:]) == truth.out_shape(name, size), (seed, name, size, render(spec))


def test_the_generator_is_deterministic_and_honours_switches() -> None:
    a, b = generate(123), generate(123)
    assert render(a[0]) == render(b[0]) and a[0].overrides == b[0].overrides
    counts: Counter[str] = Counter()
    for seed in range(200):
        counts.update(generate(seed, faults=set())[1].notes)
        assert not generate(seed)[1].notes & KNOWN_FAULTS
    # with every switch off, the generator does draw the constructs the switches exclude
    drawn = {"named_repeat", "relu_after_saved", "relu_on_view", "repeat_in_branch", "merge_same_input", "if_in_list"}
    assert drawn <= set(counts), sorted(drawn - set(counts))


def test_invalid_trees_are_refused_by_the_truth() -> None:
    """The truth refuses what the language refuses (so a generator bug cannot make a bad spec 'valid')."""
    spec, _ = Gen(5).spec()
    spec.network.items.insert(0, Op("linear", {"out": 3}))
    with pytest.raises(Invalid):
        realize(spec)


# ---- one minimal spec per KNOWN_FAULTS switch: the fault must still be there -------------------------

def _spec(*items: object, size: int = 9, **kw: object) -> Spec:
    return Spec(name="t", channels=3, size=(size, size), network=Chain(list(items)), **kw)  # type: ignore[arg-type]


FAULT_SPECS: dict[str, Callable[[], Spec]] = {  # the smallest spec of each switched-off construct that fails today
    "named_repeat": lambda: _spec(Named("layer", Op("conv2d", {"out": 4, "kernel": 3, "padding": 1}, repeat=3))),
    "relu_after_saved": lambda: _spec(Op("conv", {"out": 4, "kernel": 3, "act": "sigmoid"}), Op("relu")),
    "relu_on_view": lambda: _spec(Op("dropout", {"p": 0.1}), Op("relu"), Op("global_avgpool")),
    "repeat_in_branch": lambda: _spec(Concat([Op("sigmoid", repeat=2), Op("identity")])),
    "nested_list_clash": lambda: _spec(Op("dropout", {"p": 0.2}), Chain([Op("conv2d", {"out": 3})])),
    "identity_codegen": lambda: _spec(Op("conv2d", {"out": 4}), Op("identity")),
    "optimize_identity": lambda: _spec(Op("conv2d", {"out": 3, "kernel": 3}), Named("res", Residual(Chain([Op("identity")])))),
    "hostile_names": lambda: _spec(Op("conv2d", {"out": 4}), Named("output", Op("global_avgpool"))),
    "bounded_merge": lambda: _spec(Op("conv2d", {"out": 3}), Concat([Op("adaptive_avgpool", {"size": (5, 5)}), Op("identity")],
                                                                    ["a", "b"]), size=5),
    "relu_on_output": lambda: _spec(Named("res", Op("conv2d", {"out": 5})), aux=[Aux("aux1", "res", Op("relu"))]),
    "set_positional": lambda: _spec(Op("conv2d", {"out": 8}, style=1), Op("global_avgpool"),
                                    overrides={"network.0.out": 4}),
    "if_in_list": lambda: _spec(Op("conv2d", {"out": 3}), If(True, Op("conv2d", {"out": 4}))),
    "merge_same_input": lambda: _spec(Op("conv2d", {"out": 4}), Concat([Chain([]), Chain([])]), Op("global_avgpool")),
    "dropout_module_clash": lambda: _spec(
        Use("res"), blocks=[Block("res", {}, Residual(Op("dropout", {"p": 0.0}), then=Op("dropout", {"p": 0.0})))]),
}


def test_every_switch_has_a_fault_spec() -> None:
    assert set(FAULT_SPECS) == KNOWN_FAULTS - {"standalone_merge"}  # finding 4 is a refusal: see below


@pytest.mark.parametrize("switch", sorted(FAULT_SPECS))
def test_switched_off_fault_is_still_there(switch: str) -> None:
    """Each KNOWN_FAULTS switch hides a fault that archspec still has. When this test fails, the
    fault is fixed: delete the switch from KNOWN_FAULTS (the generator then draws it again)."""
    faults = KNOWN_FAULTS - {switch}
    spec = FAULT_SPECS[switch]()
    truth = realize(spec, forbid=faults)
    assert switch in truth.notes or switch in ("identity_codegen", "optimize_identity", "set_positional"), truth.notes
    findings = run_case(spec, truth, 0, faults)
    assert findings, f"{switch} looks fixed: remove it from KNOWN_FAULTS in tests/fuzz/specgen.py\n{render(spec)}"


# ---- what the language must refuse (a located SpecError), not build ------------------------------------

MUST_REFUSE = {
    # finding 4: a merge op written alone
    "standalone_add": "network: [conv2d 4 1x1, add]",
    "standalone_concat": "network: [conv2d 4 1x1, {op: concat}]",
    # finding 5: defaults for an op that does not exist, or an option the op does not have
    "defaults_unknown_op": "defaults: {cnov: {eps: 0.001}}\nnetwork: [conv 4 1x1]",
    "defaults_unknown_option": "defaults: {conv: {epsilon: 0.001}}\nnetwork: [conv 4 1x1]",
}


@pytest.mark.parametrize("name", sorted(MUST_REFUSE))
def test_refused_with_a_located_error(name: str) -> None:
    text = f"archspec: 1\nname: t\ninput: {{channels: 3, size: 9}}\n{MUST_REFUSE[name]}\n"
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(text)
    assert e.value.line > 0
