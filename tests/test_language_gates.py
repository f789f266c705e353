"""Language features for networks beyond the Inception/ResNet family: gates (squeeze-and-excitation),
${...} channel arithmetic, depthwise convs, whole-chain repeats and the hard activations. Each built
network is compared with a functional reference written here from the model's own weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archspec
from tests.test_miscompilations import assert_same

HEADER = "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"

SE_NET = """network:
  - c: conv2d 8 3x3
  - se:
      gate:
        - adaptive_avgpool 1x1
        - fc1: conv2d ${8 // 4} 1x1
        - relu
        - fc2: conv2d 8 1x1
        - sigmoid
  - global_avgpool
"""


def test_gate_multiplies_by_the_per_channel_gate() -> None:
    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, sd["c.weight"], sd["c.bias"])
        g = y.mean((2, 3), keepdim=True)
        g = torch.sigmoid(
            F.conv2d(torch.relu(F.conv2d(g, sd["se.fc1.weight"], sd["se.fc1.bias"])), sd["se.fc2.weight"], sd["se.fc2.bias"])
        )
        return (y * g).mean((2, 3))

    assert_same(SE_NET, reference)
    report = archspec.check(HEADER + SE_NET)
    assert report.params == 3 * 8 * 9 + 8 + (8 * 2 + 2) + (2 * 8 + 8)
    assert [r.path for r in report.rows] == ["c", "se", "2"]


@pytest.mark.parametrize(
    "gate, fragment",
    [
        ("[global_avgpool, linear 8, sigmoid]", "got 8"),  # a vector, not 8×1×1
        ("[adaptive_avgpool 1x1, conv2d 4 1x1, sigmoid]", "got 4×1×1"),  # the wrong channels
        ("[conv2d 8 3x3, sigmoid]", "must give 8×1×1"),  # not pooled, and not of x's size (a full gate would be)
    ],
)
def test_a_gate_that_does_not_end_in_c_by_1_by_1_is_refused(gate: str, fragment: str) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + f"network:\n  - conv2d 8 3x3\n  - se: {{gate: {gate}}}\n")
    assert e.value.code == "shape-mismatch" and fragment in e.value.message and e.value.line == 6


def test_make_divisible_agrees_with_torchvision() -> None:
    from torchvision.models._utils import _make_divisible

    from archspec.language.expr import make_divisible

    for v in [0.5, 3, 7.9, 8, 11.9, 12, 15.99, 16, 20, 23.9, 33.3, 100, 255.5, 1000]:
        for d in (1, 4, 8, 16):
            assert make_divisible(v, d) == _make_divisible(v, d), (v, d)


def test_expressions_compute_channels_from_block_parameters() -> None:
    net = """blocks:
  mb:
    params: {c: 8, e: 4}
    chain:
      - expand: conv2d ${c * e} 1x1
      - dw: conv2d ${c * e} 3x3 p1 dw
      - project: {op: conv2d, out: '${make_divisible(c * 0.75, 4)}', kernel: 1}
network:
  - mb c=${4 * 2}
  - mb c=4 e=3
"""
    model = archspec.build(HEADER + net)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.endswith("weight")}
    assert shapes == {
        "0.expand.weight": (32, 3, 1, 1),
        "0.dw.weight": (32, 1, 3, 3),
        "0.project.weight": (8, 32, 1, 1),
        "1.expand.weight": (12, 8, 1, 1),
        "1.dw.weight": (12, 1, 3, 3),
        "1.project.weight": (4, 12, 1, 1),
    }


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("${__import__('os').system('true')}", "is not allowed"),
        ("${c.__class__}", "is not allowed"),
        ("${2 ** 100}", "the value of 2 ** 100 is too large"),
        ("${10 ** 10 ** 9}", "is too large"),  # bounded before it is computed
        ("${int(sqrt(c - 9))}", "sqrt of a negative number (-1)"),
        ("${int(log(c - 8))}", "log of a number that is not positive (0)"),
        ("${int(log(c, 1))}", "log to the base 1"),
        ("${int((-c) ** 0.5)}", "a negative number to a fractional power"),
        ("${int((c - 8) ** -1)}", "0 to a negative power"),
        ("${sqrt}", "undefined parameter $sqrt"),  # a function is called, never a value
        ("${c // 0}", "division by zero"),
        ("${nope + 1}", "undefined parameter $nope"),
        ("${c * 4", "unclosed"),
        ("${" + "1 + " * 80 + "1}", "at most 200 characters"),
    ],
)
def test_expressions_outside_the_whitelist_are_located_errors(expr: str, fragment: str) -> None:
    net = f"blocks:\n  b:\n    params: {{c: 8}}\n    op: conv2d {expr} 1x1\nnetwork:\n  - b\n"
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + net)
    assert e.value.code == "param" and fragment in e.value.message and e.value.line == 7


def test_depthwise_conv_with_dw_and_groups_in() -> None:
    for flag in ("dw", "groups=in"):
        net = f"network:\n  - c: conv2d 8 3x3\n  - d: conv2d 16 3x3 p1 {flag}\n"

        def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            y = F.conv2d(x, sd["c.weight"], sd["c.bias"])
            return F.conv2d(y, sd["d.weight"], sd["d.bias"], padding=1, groups=8)

        assert_same(net, reference)
    # under the width multiplier a depthwise conv stays depthwise
    model = archspec.build(
        HEADER + "network:\n  - c: conv2d 16 3x3\n  - d: conv2d 16 3x3 dw\n  - fc: conv2d 4 1x1\n", overrides={"scale.width": 2}
    )
    assert model.get_submodule("d").groups == model.get_submodule("c").out_channels == 32


def test_a_whole_chain_repeats_with_copies_named_like_block_instances() -> None:
    net = (
        "network:\n  - c: conv2d 4 3x3\n  - {chain: [conv2d 4 3x3 p1, tanh], repeat: 2}\n"
        "  - s: {chain: [conv2d 4 1x1, hardswish], repeat: 2}\n  - hardsigmoid\n"
    )

    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, sd["c.weight"], sd["c.bias"])
        for i in (1, 2):
            x = torch.tanh(F.conv2d(x, sd[f"{i}.0.weight"], sd[f"{i}.0.bias"], padding=1))
        for i in (0, 1):
            x = F.hardswish(F.conv2d(x, sd[f"s.{i}.0.weight"], sd[f"s.{i}.0.bias"]))
        return F.hardsigmoid(x)

    assert_same(net, reference)


@pytest.mark.parametrize(
    "net, fragment",
    [
        ("network:\n  - f: {a: conv2d 8 3x3, c: relu}\n", "f: {chain: {...}}"),  # a nested mapping of parts
        ("network:\n  - {a: conv2d 8 3x3, c: relu}\n", "chain: {a: ..., c: ...}"),  # several keys, no keyword
        (
            "network:\n  - c: conv2d 8 3x3\n  - residual: {body: [adaptive_avgpool 1x1, conv2d 8 1x1, sigmoid]}\n",
            "write gate:",
        ),  # a gate written as a residual (a residual-gate warning: an error with strict)
    ],
)
def test_hints_say_how_to_write_it(net: str, fragment: str) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + net, strict=True)
    assert fragment in str(e.value)
    if fragment == "write gate:":  # a body of one value per channel needs no projection: it is a gate
        assert "projection" not in (e.value.hint or "")


def test_repeats_named_after_a_pattern() -> None:
    net = (
        'network:\n  - c: conv2d 4 3x3\n  - block1: {chain: [conv2d 4 3x3 p1, relu], repeat: 3, names: "layer{n}"}\n'
        '  - {chain: [conv2d 4 1x1], repeat: 2, names: "x{i}"}\n'
    )
    keys = {k.rsplit(".", 1)[0] for k in archspec.build(HEADER + net).state_dict()}
    assert keys == {"c", "block1.layer1.0", "block1.layer2.0", "block1.layer3.0", "x0.0", "x1.0"}
    for bad in ("bad{k}", "{n}x", "no_field"):
        with pytest.raises(archspec.SpecError):
            archspec.check(HEADER + f'network:\n  - {{chain: [conv2d 4 1x1], repeat: 2, names: "{bad}"}}\n')


def test_channel_slice_and_shuffle() -> None:
    net = (
        "network:\n  - c: conv2d 8 3x3\n  - concat:\n      - channel_slice 0 4\n"
        "      - [channel_slice 4 8, b: conv2d 4 1x1]\n  - channel_shuffle 2\n"
    )

    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, sd["c.weight"], sd["c.bias"])
        y = torch.cat([y[:, :4], F.conv2d(y[:, 4:], sd["b.weight"], sd["b.bias"])], 1)
        n, c, h, w = y.shape  # ShuffleNet's shuffle written out: 2 groups of 4 channels, interleaved
        return y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

    assert_same(net, reference)
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + "network:\n  - conv2d 8 3x3\n  - channel_slice 4 9\n")
    assert e.value.code == "shape" and "4:9" in e.value.message


def test_hyphenated_and_numbered_names_as_references_write_them(tmp_path) -> None:
    """issue 20: RegNet's `block1-0` and MNASNet's `layers.8.0` load; the compiled model and the
    standalone file run them (generated code reaches them through getattr and quoted keys)."""
    import importlib.util

    from archspec.cli import main
    from tests.references import assert_same_outputs

    spec = tmp_path / "hy.yaml"
    spec.write_text(
        HEADER.replace("name: t", "name: hy") + "network:\n  stem: conv2d 8 3x3\n  trunk:\n    chain:\n"
        "      block1-0: [conv2d 8 3x3 p1, relu]\n      block1-1: {residual: {body: [a-b: conv2d 8 3x3 p1]}}\n"
        '  layers: ["8": [conv2d 8 1x1]]\n  pool: global_avgpool\n  fc-out: linear 10\n'
    )
    model = archspec.build(spec)
    assert {k.rsplit(".", 1)[0] for k in model.state_dict()} == {
        "stem",
        "trunk.block1-0.0",
        "trunk.block1-1.a-b",
        "layers.8.0",
        "fc-out",
    }
    out = tmp_path / "hy.py"
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    loader = importlib.util.spec_from_file_location("hy_generated", out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    generated = module.Hy()
    generated.load_state_dict(model.state_dict(), strict=True)
    assert_same_outputs(model, generated, torch.randn(2, 3, 16, 16))
    for bad in ("-a", "a-", "a--b", "a b"):
        with pytest.raises(archspec.SpecError):
            archspec.check(HEADER + f'network:\n  - "{bad}": conv2d 8 3x3\n')
