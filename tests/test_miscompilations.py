"""Regression tests for the miscompilations of issue 13: each spec is compared with the network it
says, computed here by hand from the built model's own weights with torch.nn.functional (float64,
no in-place ops), for values and gradients."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import archspec

HEADER = "archspec: 1\nname: t\ninput: {channels: 3, size: [16, 16]}\n"
Fn = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def _bn(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, training: bool) -> torch.Tensor:
    w, b = sd.get(f"{p}.weight"), sd.get(f"{p}.bias")
    return F.batch_norm(x, sd[f"{p}.running_mean"].clone(), sd[f"{p}.running_var"].clone(), w, b, training, 0.0, 1e-5)


def _model(net: str, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = archspec.build(HEADER + net, **kw).double()
    with torch.no_grad():  # trained-like BatchNorm statistics, so wrong wiring cannot hide
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.5)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return model


def assert_same(net: str, reference: Fn, modes: tuple[str, ...] = ("eval", "train"), **kw: object) -> None:
    """The built model equals ``reference(params, x)`` in value and in the gradients of x and every
    parameter, and leaves the caller's input as it was."""
    model = _model(net, **kw)
    for mode in modes:
        model.train(mode == "train")
        x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
        x0 = x.clone()
        xa = x.clone().requires_grad_()
        out = model(xa)
        assert torch.equal(x, x0)
        params = dict(model.named_parameters())
        sd = {**{k: v.detach() for k, v in model.state_dict().items()}, **params}
        xb = x.clone().requires_grad_()
        want = reference(sd, xb)
        torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)
        g = torch.randn_like(want)
        grads = torch.autograd.grad(out, [xa, *params.values()], g, allow_unused=True)
        want_grads = torch.autograd.grad(want, [xb, *params.values()], g, allow_unused=True)
        for got_g, want_g in zip(grads, want_grads, strict=True):
            torch.testing.assert_close(got_g, want_g, rtol=1e-10, atol=1e-10)
        assert torch.equal(xa.detach(), x0), "the model modified the caller's input"


# ---- 1 and 9: repeats wherever they are written ---------------------------------------------------
@pytest.mark.parametrize(
    "net",
    [
        "network:\n  - layer: conv2d 8 3x3 p1 * 3\n  - global_avgpool\n",
        "network:\n  layer: conv2d 8 3x3 p1 * 3\n  pool: global_avgpool\n",
        "blocks:\n  b: {op: conv2d 8 3x3 p1}\nnetwork:\n  - layer: {block: b, repeat: 3}\n  - global_avgpool\n",
    ],
)
def test_a_repeat_on_a_named_node_builds_every_copy(net: str) -> None:
    model = _model(net)
    convs = sorted({k.rsplit(".", 1)[0] for k in model.state_dict()})
    assert convs == ["layer.0", "layer.1", "layer.2"]

    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for i in range(3):
            x = F.conv2d(x, sd[f"layer.{i}.weight"], sd[f"layer.{i}.bias"], padding=1)
        return x.mean((2, 3))

    assert_same(net, reference)


def test_depth_multiplier_scales_a_named_repeat() -> None:
    model = archspec.build(
        HEADER + "network:\n  - layer: conv2d 8 3x3 p1 * 2\n  - global_avgpool\n", overrides={"scale.depth": 2}
    )
    assert sorted({k.rsplit(".", 1)[0] for k in model.state_dict()}) == [f"layer.{i}" for i in range(4)]


def test_repeats_in_a_concat_branch_and_a_shortcut() -> None:
    net = (
        "network:\n  - c: conv2d 4 3x3\n  - concat: [sigmoid * 2, identity]\n"
        "  - residual: {body: [r: conv2d 8 3x3 p1], shortcut: tanh * 2}\n"
    )

    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, sd["c.weight"], sd["c.bias"])
        x = torch.cat([torch.sigmoid(torch.sigmoid(x)), x], 1)
        return torch.tanh(torch.tanh(x)) + F.conv2d(x, sd["r.weight"], sd["r.bias"], padding=1)

    assert_same(net, reference)


# ---- 2, 3, 7, 8: in-place ops only where they are sound -------------------------------------------
@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_relu_after_an_activation_whose_backward_reads_its_output(act: str) -> None:
    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = _bn(sd, "0.bn", F.conv2d(x, sd["0.conv.weight"]), _training[0])
        return torch.relu(getattr(torch, act)(y))

    _check_both_modes(f"network:\n  - conv 8 3x3 act={act}\n  - relu\n", reference)


def test_relu_after_a_conv_s_own_relu() -> None:
    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = _bn(sd, "0.bn", F.conv2d(x, sd["0.conv.weight"]), _training[0])
        return torch.relu(torch.relu(y))

    _check_both_modes("network:\n  - conv 8 3x3\n  - relu\n", reference)


_training = [False]


def _check_both_modes(net: str, reference: Fn) -> None:
    for mode in ("eval", "train"):
        _training[0] = mode == "train"
        assert_same(net, reference, modes=(mode,))


def test_relu_on_a_flatten_view_leaves_the_other_branch_alone() -> None:
    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, sd["c.weight"], sd["c.bias"]).flatten(1)
        return torch.cat([torch.relu(y), y], 1)

    assert_same("network:\n  - c: conv2d 4 3x3\n  - concat: {a: [flatten, relu], b: [flatten]}\n", reference)


def test_the_caller_s_input_is_never_overwritten() -> None:
    assert_same("network: [dropout 0.1, relu, global_avgpool]\n", lambda sd, x: torch.relu(x).mean((2, 3)), modes=("eval",))
    assert_same("network:\n  - residual: {body: [dropout 0.0, relu]}\n", lambda sd, x: x + torch.relu(x))


# ---- 4: merges cannot stand alone -----------------------------------------------------------------
@pytest.mark.parametrize("op", ["add", "concat", "add scale=0.5"])
def test_a_standalone_merge_is_a_located_error(op: str) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(HEADER + f"network:\n  - conv2d 4 3x3\n  - {op}\n")
    assert (e.value.line, e.value.column, e.value.code) == (6, 5, "bad-op-args")
    assert "cannot stand alone" in e.value.message


# ---- 6: merges whose branches agree at some sizes only --------------------------------------------
PARTIAL = (
    "archspec: 1\nname: t\ninput: {channels: 3, size: [33, 33]}\nnetwork:\n  - concat: {a: conv2d 8 3x3 s2, b: conv2d 8 2x2 s2}\n"
)


def test_partial_merge_accepts_exactly_the_sizes_where_branches_agree() -> None:
    report = archspec.check(PARTIAL)
    assert report.accepted.describe() == "odd H from 3, odd W from 3"
    assert report.min_input_size == (3, 3)
    for size in range(3, 40):  # independent truth: torch's own conv output sizes
        x = torch.zeros(1, 3, size, size)
        a = F.conv2d(x, torch.zeros(8, 3, 3, 3), stride=2).shape[-1]
        b = F.conv2d(x, torch.zeros(8, 3, 2, 2), stride=2).shape[-1]
        assert report.accepted.ok(size, size) == (a == b), size
    (warning,) = report.warnings
    assert (warning.loc.line, warning.loc.column, warning.code) == (5, 5, "partial-merge")
    assert "conv2d 8 3x3 s2 at a" in warning.message and "conv2d 8 2x2 s2 at b" in warning.message


def test_partial_merge_is_an_error_under_strict_and_outside_the_set() -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(PARTIAL, strict=True)
    assert e.value.code == "partial-merge"
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(PARTIAL, overrides={"input.size": [32, 32]})
    assert e.value.code == "shape-mismatch" and (e.value.line, e.value.column) == (5, 5)
    assert "at a" in e.value.message and "at b" in e.value.message and "odd H from 3" in (e.value.hint or "")


# ---- 10: module paths that clash -------------------------------------------------------------------
def test_dropout_and_a_nested_layer_at_the_same_path_both_run() -> None:
    net = "network:\n  - dropout 0.2\n  - [conv2d 3 1x1]\n"
    model = _model(net)
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 1
    assert_same(net, lambda sd, x: F.conv2d(x, sd["0.weight"], sd["0.bias"]), modes=("eval",))
    model.train()
    torch.manual_seed(1)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    y = model(x)
    w, b = model.state_dict()["0.weight"], model.state_dict()["0.bias"]
    kept = (F.conv2d(x * 0, w, b) - y).abs().sum((1, 2, 3)) > 0  # dropout ran: the output is not conv(x)
    assert not torch.allclose(y, F.conv2d(x, w, b)) and bool(kept.all())


# ---- 12: optimize on graphs the passes did not expect ----------------------------------------------
@pytest.mark.parametrize(
    "net",
    [
        "network:\n  - conv2d 3 3x3\n  - residual: {body: [identity]}\n",
        "network:\n  - global_avgpool\n  - linear 5\n  - bn no_affine\n",
        "network:\n  - conv2d 3 3x3\n  - bn no_affine\n  - relu\n",
    ],
)
def test_optimize_keeps_the_logits(net: str) -> None:
    model = _model(net).float().eval()
    fast = archspec.optimize(model)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)


# ---- an input read twice by one merge, and repeats on a residual's then ---------------------------
def test_a_merge_reading_one_tensor_twice() -> None:
    def conv(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, sd["c.weight"], sd["c.bias"])

    assert_same("network:\n  - c: conv2d 4 3x3\n  - residual: {body: []}\n", lambda sd, x: 2 * conv(sd, x))
    assert_same("network:\n  - c: conv2d 4 3x3\n  - concat: [[], []]\n", lambda sd, x: torch.cat([conv(sd, x)] * 2, 1))


def test_then_with_a_repeat_applies_every_copy() -> None:
    def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, sd["c.weight"], sd["c.bias"])
        return torch.tanh(torch.tanh(y + F.conv2d(y, sd["r.weight"], sd["r.bias"], padding=1)))

    assert_same("network:\n  - c: conv2d 4 3x3\n  - residual: {body: [r: conv2d 4 3x3 p1], then: tanh * 2}\n", reference)


# ---- found by the differential fuzzer ---------------------------------------------------------------
def test_an_if_item_of_a_list_keeps_its_index() -> None:
    net = "network:\n  - c: conv2d 4 3x3\n  - {if: true, then: conv2d 4 1x1}\n  - {if: false, then: relu, else: tanh}\n"
    model = _model(net)
    assert sorted(model.state_dict()) == ["1.bias", "1.weight", "c.bias", "c.weight"]
    assert_same(net, lambda sd, x: torch.tanh(F.conv2d(F.conv2d(x, sd["c.weight"], sd["c.bias"]), sd["1.weight"], sd["1.bias"])))


def test_a_dropout_under_a_layer_s_path_is_not_made_its_child() -> None:
    net = (
        "network:\n  - c: conv2d 4 3x3\n  - c: [dropout 0.5]\n"
        if False
        else "network:\n  c: conv2d 4 3x3\n  d: [dropout 0.0, relu]\n"
    )
    model = _model(net)
    assert not list(model.get_submodule("c").children())
    assert_same(net, lambda sd, x: torch.relu(F.conv2d(x, sd["c.weight"], sd["c.bias"])))
