"""`{share: NAME}`: an earlier part applied again with the same modules (shared weights). Truth: timm's
CBAM (`resnet18` with attn_layer='cbam', whose channel MLP weighs both pooled vectors) written as a spec
(tests/specs_outside/cbam_resnet18.yaml) loads timm's state_dict with strict=True and gives its logits,
built, optimized and as a standalone file, its MACs as fvcore counts them; a shared named part with
BatchNorm against torch written out by hand, in eval and in training (gradients summed over both calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archspec
from archspec.errors import SpecError
from tests.paths import ROOT
from tests.test_ops_attention import _same, same_as_reference

CBAM_RESNET18 = ROOT / "tests" / "specs_outside" / "cbam_resnet18.yaml"


def test_cbam_resnet18_loads_timm_and_gives_its_logits(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    reference = timm.create_model("resnet18", block_args={"attn_layer": "cbam"})
    model = same_as_reference(CBAM_RESNET18, reference, [(64, 64), (45, 61)], tmp_path, "CbamResnet18")
    # the MLP's weights once: the parameter count is timm's (same_as_reference), the state_dict has no other key
    assert set(model.state_dict()) == set(reference.state_dict())
    fvcore = pytest.importorskip("fvcore.nn")
    analysis = fvcore.FlopCountAnalysis(reference, torch.randn(1, 3, 40, 56))
    by_op = analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_operator()
    # a shared conv computes twice: its MACs count twice, as fvcore counts each call
    assert archspec.check(CBAM_RESNET18, overrides={"input.size": [40, 56]}).macs == int(by_op["conv"] + by_op["linear"])


PART = """\
archspec: 1
name: shared_part
input: {channels: 3, size: [12, 10]}
network:
  stem: conv2d 8 3x3 p1
  mlp: [conv2d 6 3x3 p1 no_bias, bn, relu, conv2d 8 1x1]
  again: {share: mlp}
  mix: conv 8 1x1
  twice: {share: mix}
  head: global_avgpool
  fc: linear 5
"""


class Part(nn.Module):
    """PART as torch writes it: one Sequential and one conv-bn-relu, each called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mlp = nn.Sequential(nn.Conv2d(8, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 1))
        self.mix = nn.ModuleDict({"conv": nn.Conv2d(8, 8, 1, bias=False), "bn": nn.BatchNorm2d(8)})
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(self.mlp(self.stem(x)))
        for _ in range(2):
            x = F.relu(self.mix["bn"](self.mix["conv"](x)))
        return self.fc(x.mean((2, 3)))


def test_a_shared_part_with_batch_norm_equals_torch(tmp_path: Path) -> None:
    _same(PART, Part(), [(12, 10), (5, 7)], tmp_path, "SharedPart")


def test_a_shared_part_trains_as_torch_does(tmp_path: Path) -> None:
    # both calls update BatchNorm's statistics, and each weight's gradient is the sum over its calls
    path = tmp_path / "part.yaml"
    path.write_text(PART)
    torch.manual_seed(0)
    reference = Part().train().double()
    model = archspec.build(path).train().double()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(4, 3, 12, 10, dtype=torch.float64)
    model(x).square().sum().backward()
    reference(x).square().sum().backward()
    grads = {k: p.grad for k, p in reference.named_parameters()}
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[k])
    want = reference.state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, want[k])  # the running statistics, updated by both calls


def _check(network: str) -> None:
    archspec.check(f"archspec: 1\nname: s\ninput: {{channels: 3, size: [8, 8]}}\nnetwork:\n{network}")


def test_a_part_given_other_channels_is_refused() -> None:
    with pytest.raises(SpecError, match="made for 3×H×W") as e:
        _check("  fc1: conv2d 4 1x1\n  again: {share: fc1}\n")
    assert e.value.code == "shape-mismatch"


def test_a_part_reading_two_values_is_refused_naming_them() -> None:
    with pytest.raises(SpecError, match="reads 2 values from outside it"):
        _check(
            "  a: conv2d 4 1x1\n  b: conv2d 4 1x1\n"
            "  pair: {concat: [{from: a}, identity]}\n  c: conv2d 8 1x1\n  again: {share: pair}\n"
        )


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ("  again: {share: fc1}\n  fc1: conv2d 3 1x1\n", "names no node before this one"),  # forward: a cycle
        ("  a: {from: input}\n  again: {share: a}\n", "no ops of its own"),
        ("  again: {share: input}\n", "no ops of its own"),
    ],
)
def test_what_a_share_cannot_name_is_a_located_name_error(network: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as e:
        _check(network)
    assert e.value.code == "name" and e.value.loc is not None and e.value.loc.line >= 5


class ReluOnce(nn.Module):
    """One conv called twice, a ReLU after the first call only: a pass fusing the ReLU into the conv for the first
    call must not change the second."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.c(F.relu(self.c(x))))
        return self.fc(x.mean((2, 3)))


def test_optimize_rewrites_each_call_of_a_shared_module_apart(tmp_path: Path) -> None:
    spec = (
        "archspec: 1\nname: relu_once\ninput: {channels: 3, size: [9, 9]}\nnetwork:\n"
        "  c: conv2d 3 3x3 p1\n  act: relu\n  again: {share: c}\n  bn: bn\n  head: global_avgpool\n  fc: linear 5\n"
    )
    _same(spec, ReluOnce(), [(9, 9)], tmp_path, "ReluOnce")
    path = tmp_path / "relu_once.yaml"
    path.write_text(spec)
    fast = archspec.optimize(archspec.build(path).eval())
    assert fast.archspec_passes[0].name == "unshare" and fast.archspec_passes[0].rewrites == 1


@pytest.mark.parametrize(
    "network, blocks, times",
    [
        ("[a: {residual: {body: []}}, b: {share: a}]", "", 4),  # x + x, then the same part again: 4x
        # an op reading the part's input twice (its size from block_in, which is its input): the copy reads the share's
        ("[m: blk]", "blocks:\n  blk:\n    residual: {body: {a: interpolate size_of=block_in}, shortcut: {share: m.a}}\n", 2),
    ],
)
def test_a_shared_part_reading_its_input_twice_is_applied_again(network: str, blocks: str, times: int) -> None:
    # FUZZ, session 10 (seeds 21100366, 21100320): an internal KeyError; the writer adds the second read as an
    # identity after the op, which the replay met before its copy existed
    spec = f"archspec: 1\nname: twice\ninput: {{channels: 5, size: [17, 17]}}\n{blocks}network: {network}\n"
    model = archspec.build(spec).eval()
    x = torch.randn(2, 5, 17, 17)
    with torch.no_grad():
        torch.testing.assert_close(model(x), times * x)


def _built_and_standalone(tmp_path: Path, text: str, cls: str) -> tuple[nn.Module, Any]:
    """The built model of ``text`` (eval mode) and a function running its standalone file, with the same weights."""
    from tests.test_codegen import compile_to, run_standalone

    spec, out = tmp_path / "s.yaml", tmp_path / "standalone.py"
    spec.write_text(text)
    model = archspec.build(spec).eval()
    compile_to(spec, out)
    return model, lambda x: run_standalone(tmp_path, out, cls, model.state_dict(), x)


def test_a_share_of_a_repeated_block_with_numbered_parts_compiles_standalone(tmp_path: Path) -> None:
    """Differential seed 31003235: the standalone file reached a block class's part named `1` as
    `self.drop[0].1` (a SyntaxError). The copy calls the repeat's modules again; torch written apart."""
    text = (
        "archspec: 1\nname: shared_eca\ninput: {channels: 2, size: [9, 9]}\nblocks:\n"
        "  blk2:\n    gate: ['adaptive_avgpool size=[1,1]', channel_conv]\n"
        "network:\n- drop: {block: blk2, repeat: 2}\n- {share: drop}\n"
    )
    model, standalone = _built_and_standalone(tmp_path, text, "SharedEca")
    state = model.state_dict()
    assert sorted(state) == ["drop.0.1.weight", "drop.1.1.weight"]

    def eca(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # x · conv1d over the channels of mean(x)
        pooled = x.mean((2, 3)).unsqueeze(1)
        return x * F.conv1d(pooled, weight, padding=weight.shape[-1] // 2).transpose(1, 2).unsqueeze(-1)

    x = torch.randn(2, 2, 9, 9)
    y = x
    for _ in range(2):  # the repeat, then its share: the same two modules again
        y = eca(eca(y, state["drop.0.1.weight"]), state["drop.1.1.weight"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), y)
        torch.testing.assert_close(standalone(x), y)


def test_a_share_of_a_block_instance_s_part_compiles_standalone(tmp_path: Path) -> None:
    """Differential seed 63300134: `{share: left}` after the block instance `left` calls `left.a.conv` from the
    network's own forward, inside the block's class; the standalone file's module tree did not reach into a
    block class's children (KeyError 'left.a'). Now by path (``get_submodule``); torch written apart."""
    text = (
        "archspec: 1\nname: share_part\ninput: {channels: 2, size: [7, 7]}\nblocks:\n"
        "  shared0:\n    chain:\n      a: [conv2d 2 3x3 p1]\n"
        "network:\n- {left: shared0}\n- shared0\n- {share: left}\n"
    )
    model, standalone = _built_and_standalone(tmp_path, text, "SharePart")
    state = model.state_dict()
    assert sorted(state) == ["1.a.0.bias", "1.a.0.weight", "left.a.0.bias", "left.a.0.weight"]

    def conv(x: torch.Tensor, at: str) -> torch.Tensor:
        return F.conv2d(x, state[f"{at}.a.0.weight"], state[f"{at}.a.0.bias"], padding=1)

    x = torch.randn(2, 2, 7, 7)
    y = conv(conv(conv(x, "left"), "1"), "left")  # left, the second instance, left's modules again
    with torch.no_grad():
        torch.testing.assert_close(model(x), y)
        torch.testing.assert_close(standalone(x), y)


def _one_training_step_alike(tmp_path: Path, text: str, cls: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The built model and its standalone file (same weights), one training-mode call each: the same outputs and,
    after it, the same state (BatchNorm's statistics). Returns the outputs."""
    from tests.test_codegen import _load, compile_to

    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    model = archspec.build(spec).train()
    out = tmp_path / "standalone.py"
    compile_to(spec, out)
    standalone = _load(out, cls).train()
    standalone.load_state_dict(model.state_dict(), strict=True)
    got, want = standalone(x), model(x)
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(standalone.state_dict()[key], value)
    return want


def test_an_aux_head_sharing_a_composite_inside_a_block_instance_runs_standalone(tmp_path: Path) -> None:
    """Differential seed 63300538: an aux head's `share:` of `right.0.p.0`, a conv + BN + ReLU inside the block
    instance `right.0`: the standalone file called it as one helper module, but the block's class builds its
    parts itself (a container with no forward). Now each part by its path; training mode's outputs and the
    BatchNorm statistics after one step equal the built model's."""
    text = (
        "archspec: 1\nname: aux_part\ninput: {channels: 5, size: [9, 9]}\nblocks:\n  shared0:\n    chain:\n"
        "      p: [conv out=2, conv2d $block_in]\n      resize: identity\n      q: {share: p}\n"
        "network:\n- right: [shared0]\n- {block: shared0, repeat: 2, names: 'unit{n}'}\n"
        "aux:\n  h:\n    tap: unit2.resize\n    head: {share: right.0.p.0}\n    weight: 1.0\n"
    )
    assert set(_one_training_step_alike(tmp_path, text, "AuxPart", torch.randn(3, 5, 9, 9))) == {"logits", "h"}


def test_a_shortcut_sharing_its_body_s_part_moves_batch_norm_in_the_built_order(tmp_path: Path) -> None:
    """Differential seed 63300256: a residual whose shortcut shares a part of its body, the sum read only by an
    aux head (so in training only): the standalone file ran the shortcut's copy before the body, as soon as its
    input existed, and the shared BatchNorm's statistics came out in the other order. Now no training-only
    line runs before a line written before it; after one training step the statistics equal the built model's."""
    text = (
        "archspec: 1\nname: shared_order\ninput: {channels: 3, size: 9}\nblocks:\n  shared0:\n    chain:\n"
        "      m:\n        residual:\n          body:\n          - a: [mish, conv out=4]\n"
        "          shortcut:\n          - bn\n          - {share: m.a}\n"
        "network: {add: shared0, layer: identity}\noutputs: [add.m.a.1, add.m.a]\n"
        "aux:\n  h: {tap: layer, head: identity, weight: 1.0}\n"
    )
    _one_training_step_alike(tmp_path, text, "SharedOrder", torch.randn(2, 3, 9, 9))


AUX = """\
archspec: 1
name: aux_share
input: {channels: 3, size: [12, 10]}
network:
  stem: conv2d 8 3x3 p1
  mlp: [conv2d 6 3x3 p1 no_bias, bn, relu, conv2d 8 1x1]
  pool: global_avgpool
  fc: linear 5
aux:
  h:
    tap: stem
    head: [share: mlp, global_avgpool, share: fc]
"""


class AuxShare(nn.Module):
    """AUX as torch writes it: the aux head calls the main path's mlp and fc on the stem's output, before the
    main path goes on (so in training the head's call moves BatchNorm's statistics first)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mlp = nn.Sequential(nn.Conv2d(8, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 1))
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        s = self.stem(x)
        aux = self.fc(self.mlp(s).mean((2, 3))) if self.training else None
        logits = self.fc(self.mlp(s).mean((2, 3)))
        return logits if aux is None else {"logits": logits, "h": aux}


def test_a_share_in_an_aux_head_calls_the_main_paths_modules(tmp_path: Path) -> None:
    """FUZZ, session 10 (differential seed 48367): any `share:` in an aux head was an internal error (the head runs
    right after its tap, so its copy came before its original in the shapes stage). Torch written apart, in eval
    (logits alone) and in training (both outputs, BatchNorm's statistics moved by both calls, gradients summed)."""
    _same(AUX, AuxShare(), [(12, 10), (5, 7)], tmp_path, "AuxShare")
    path = tmp_path / "aux_share.yaml"
    path.write_text(AUX)
    assert archspec.check(path).params == sum(p.numel() for p in AuxShare().parameters())
    torch.manual_seed(0)
    reference = AuxShare().train().double()
    model = archspec.build(path).train().double()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(4, 3, 12, 10, dtype=torch.float64)
    got, want = model(x), reference(x)
    assert isinstance(got, dict) and isinstance(want, dict) and list(got) == list(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k])
    sum(v.square().sum() for v in got.values()).backward()
    sum(v.square().sum() for v in want.values()).backward()
    grads = {k: p.grad for k, p in reference.named_parameters()}
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[k])
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_a_share_of_a_flatten_takes_another_size() -> None:
    """Differential seed 49025: a flatten holds no module, so its copy on a map of another size flattens that map
    (its length differs from the original's); check refused it, comparing the output's channels as for a module."""
    spec = (
        "archspec: 1\nname: flat\ninput: {channels: 2, size: [6, 6]}\nnetwork:\n"
        "  stem: conv2d 2 1x1\n  pool: adaptive_avgpool 2x3\n  f: flatten\n  fc: linear 4\n"
        "aux:\n  h: {tap: stem, head: [share: f, linear 3]}\n"
    )
    model = archspec.build(spec).train()
    sd = model.state_dict()
    x = torch.randn(2, 2, 6, 6)
    stem = F.conv2d(x, sd["stem.weight"], sd["stem.bias"])
    out = model(x)
    torch.testing.assert_close(out["h"], F.linear(stem.flatten(1), sd["h.1.weight"], sd["h.1.bias"]))
    pooled = F.adaptive_avg_pool2d(stem, (2, 3)).flatten(1)
    torch.testing.assert_close(out["logits"], F.linear(pooled, sd["fc.weight"], sd["fc.bias"]))


UNREAD_OWNER = """\
archspec: 1
name: unread_owner
input: {channels: 3, size: [12, 10]}
blocks:
  unit:
    chain:
      p: {x: conv2d 3 1x1}
      back: {from: block_in}
      q: {share: p}
network: [unit]
aux:
  h: {tap: 0.back, head: {share: '0'}}
"""


class UnreadOwner(nn.Module):
    """UNREAD_OWNER as torch writes it: the block's `p` is computed only through its copy `q` (on the block's
    input), and the aux head runs the whole block again on the same value."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        logits = self.p(x)
        return {"logits": logits, "h": self.p(x)} if self.training else logits


def test_an_aux_head_sharing_a_block_leaves_its_unread_part_s_modules_to_the_network(tmp_path: Path) -> None:
    """Differential seed 62001362: a part nothing reads (`p`, read only through its share `q`) handed its
    modules to the aux head's copy, which runs first (right after its tap): the row of block 0 counted no
    parameters and the standalone file failed (KeyError 'p'). The network's copy holds them: its row counts
    them (as torch does: one conv), and the built model and the standalone file equal torch written apart."""
    from tests.test_codegen import compile_to, run_standalone

    spec = tmp_path / "unread_owner.yaml"
    spec.write_text(UNREAD_OWNER)
    rows = {row.path: row.params for row in archspec.check(spec).rows}
    assert rows == {"0": sum(p.numel() for p in UnreadOwner().parameters()), "h": 0}
    torch.manual_seed(0)
    reference = UnreadOwner().eval()
    model = archspec.build(spec).eval()
    state = {f"0.p.x.{k.removeprefix('p.')}": v for k, v in reference.state_dict().items()}  # `p: {x: conv}`
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 12, 10)
    out = tmp_path / "unread_owner.py"
    compile_to(spec, out)
    with torch.no_grad():
        want = reference(x)
        torch.testing.assert_close(model(x), want)
        torch.testing.assert_close(run_standalone(tmp_path, out, "UnreadOwner", state, x), want)
        got, train_want = model.train()(x), reference.train()(x)
    assert isinstance(got, dict) and isinstance(train_want, dict) and list(got) == list(train_want)
    for k in train_want:
        torch.testing.assert_close(got[k], train_want[k])
