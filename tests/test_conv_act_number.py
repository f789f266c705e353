"""A composite conv's activation with its number: `act=leaky_relu(0.1)`, `act=elu(0.5)`, `act=prelu(0.1)`
(docs/language.md, `conv`). Truth: torch's nn.Conv2d + nn.BatchNorm2d + nn.LeakyReLU(0.1) (Darknet's and YOLO's
conv block), timm's ConvNormAct with a leaky ReLU of slope 0.1, nn.ELU(0.5) and nn.PReLU(init=0.1), loaded
strictly; the same value reaches a conv through `defaults:`, a block's `$act` and `--set`, is written back
by the short-form writer and by `archspec import`, and a mistake in it is one located SpecError."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from archspec.errors import SpecError
from archspec.ops import REGISTRY
from archspec.ops.conv import NUMBERED
from tests.test_ops_attention import same_as_reference

SPEC = """\
archspec: 1
name: darknet_like
input: {channels: 3, size: [12, 10]}
network:
  stem: conv 8 3x3 p1 act=leaky_relu(0.1)          # stem.conv, stem.bn, LeakyReLU(0.1)
  down: conv 16 3x3 s2 p1 act=leaky_relu(1e-1)     # the same slope, written otherwise
  elu: {op: conv, out: 16, kernel: 1, act: elu(0.5)}   # the long form
  prelu: conv 8 3x3 p1 act=prelu(0.1)              # prelu.act.weight [1], starting at 0.1
  plain: conv 8 1x1 act=leaky_relu                 # torch's default slope 0.01
  pool: global_avgpool
  fc: linear 5
"""


class ConvBNAct(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, act: nn.Module, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DarknetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 8, 3, nn.LeakyReLU(0.1))
        self.down = ConvBNAct(8, 16, 3, nn.LeakyReLU(0.1), stride=2)
        self.elu = ConvBNAct(16, 16, 1, nn.ELU(0.5))
        self.prelu = ConvBNAct(16, 8, 3, nn.PReLU(init=0.1))
        self.plain = ConvBNAct(8, 8, 1, nn.LeakyReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.plain(self.prelu(self.elu(self.down(self.stem(x)))))
        return self.fc(x.mean((2, 3)))


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_act_with_its_number_equals_torch_s_layers(tmp_path: Path) -> None:
    """Built, optimized and as a standalone file: the reference's logits, its state_dict loaded strictly."""
    model = same_as_reference(_spec(tmp_path, SPEC), DarknetLike(), [(12, 10), (7, 9)], tmp_path, "DarknetLike")
    assert torch.equal(archspec.build(SPEC).state_dict()["prelu.act.weight"], torch.tensor([0.1]))  # PReLU's init
    assert model.state_dict()["prelu.act.weight"].shape == (1,)


def test_act_leaky_relu_01_equals_timm_s_conv_norm_act() -> None:
    timm_layers = pytest.importorskip("timm.layers")
    ref = timm_layers.ConvNormAct(3, 16, 3, stride=2, act_layer="leaky_relu", act_kwargs={"negative_slope": 0.1}).eval()
    torch.manual_seed(3)
    with torch.no_grad():  # statistics a trained network could have
        ref.bn.running_mean.uniform_(-1, 1), ref.bn.running_var.uniform_(0.5, 2), ref.bn.weight.uniform_(0.5, 2)
    spec = "archspec: 1\nname: m\ninput: {channels: 3, size: [9, 9]}\nnetwork: [conv 16 3x3 s2 p1 act=leaky_relu(0.1)]\n"
    model = archspec.build(spec).eval()
    model.load_state_dict({f"0.{k}": v for k, v in ref.state_dict().items()}, strict=True)
    x = torch.randn(2, 3, 9, 9) * 3  # negative values well below zero: the slope shows
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-5)


def test_every_activation_with_a_number_is_given_it(tmp_path: Path) -> None:
    """NUMBERED is every activation conv's act= names that has one number (Op.number), and each reaches torch."""
    acts = {n for n, op in REGISTRY.items() if op.kind == "act" and op.number is not None}
    assert set(NUMBERED) == acts == {"leaky_relu", "elu", "prelu"}
    for name, layer in (("leaky_relu", nn.LeakyReLU(0.3)), ("elu", nn.ELU(0.3)), ("prelu", nn.PReLU(init=0.3))):
        spec = f"archspec: 1\nname: m\ninput: {{channels: 2, size: [4, 4]}}\nnetwork: [conv 3 1x1 no_bn act={name}(0.3)]\n"
        model = archspec.build(spec)
        conv = nn.Conv2d(2, 3, 1, bias=False)
        conv.weight.data.copy_(model.state_dict()["0.conv.weight"])
        x = torch.randn(2, 2, 4, 4) * 2
        with torch.no_grad():
            torch.testing.assert_close(model(x), layer(conv(x)))


DEFAULTS = """\
archspec: 1
name: yolo_like
input: {channels: 3, size: [8, 8]}
defaults:
  conv: {act: leaky_relu(0.1)}        # every conv as Darknet's
blocks:
  unit:
    params: {act: relu}
    chain: [conv 8 3x3 p1 act=$act]
network:
  - conv 8 3x3 p1                     # leaky 0.1 from defaults
  - unit act=elu(0.5)                 # through a block's parameter
  - head: conv 4 1x1 bias linear      # the detection head: no activation
"""


def test_defaults_block_parameters_and_set_carry_the_number() -> None:
    graph = archspec.check(DEFAULTS).graph
    acts = {r.path: (r.op, dict(r.params)) for _, r in graph.records() if r.op in REGISTRY and REGISTRY[r.op].kind == "act"}
    assert acts == {"0.act": ("leaky_relu", {"slope": 0.1}), "1.0.act": ("elu", {"alpha": 0.5})}
    graph = archspec.check(DEFAULTS, {"network.0": "conv 8 3x3 p1 act=leaky_relu(0.2)"}).graph
    assert [dict(r.params) for _, r in graph.records() if r.path == "0.act"] == [{"slope": 0.2}]


def test_the_writer_writes_the_number_and_leaves_the_default_out() -> None:
    op = REGISTRY["conv"]
    for written, back, act in (
        ("leaky_relu(0.1)", "conv 8 3x3 act=leaky_relu(0.1)", ("leaky_relu", {"slope": 0.1})),
        ("leaky_relu(.10)", "conv 8 3x3 act=leaky_relu(0.1)", ("leaky_relu", {"slope": 0.1})),
        ("leaky_relu(0.01)", "conv 8 3x3 act=leaky_relu", ("leaky_relu", {"slope": 0.01})),  # the default: the name
        ("elu(2)", "conv 8 3x3 act=elu(2)", ("elu", {"alpha": 2.0})),
        ("prelu(-0.5)", "conv 8 3x3 act=prelu(-0.5)", ("prelu", {"per_channel": False, "init": -0.5})),
    ):
        p = op.Params.model_validate({"out": 8, "kernel": (3, 3), "act": written})
        assert op.short(p) == back
        graph = archspec.check(f"archspec: 1\nname: m\ninput: {{channels: 3, size: [8, 8]}}\nnetwork: [{back}]\n").graph
        assert [(r.op, dict(r.params)) for _, r in graph.records() if r.path == "0.act"] == [act]  # it reads back


class _Imported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 8, 3, nn.LeakyReLU(0.1))
        self.mid = ConvBNAct(8, 8, 3, nn.ELU(0.5))
        self.last = ConvBNAct(8, 8, 3, nn.LeakyReLU())
        self.slope = ConvBNAct(8, 8, 3, nn.PReLU(init=0.1))
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.slope(self.last(self.mid(self.stem(x)))).mean((2, 3)))


def test_import_writes_one_conv_with_its_activation_s_number() -> None:
    reference = _Imported().eval()
    text = archspec.import_module(reference)
    assert "stem: conv 8 3x3 p1 act=leaky_relu(0.1)" in text and "mid: conv 8 3x3 p1 act=elu(0.5)" in text
    assert "last: conv 8 3x3 p1 act=leaky_relu}" in text and "slope: conv 8 3x3 p1 act=prelu(0.1)}" in text
    model = archspec.build(text).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 20, 20) * 2
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "act, fragments",
    [
        ("relu(0.1)", ["relu takes no number", "write act=relu", "leaky_relu(SLOPE)"]),
        ("mish(1)", ["mish takes no number"]),
        ("leaky_relu(x)", ["'x' in 'leaky_relu(x)' is not a number", "act=leaky_relu(0.1)"]),
        ("leaky_relu()", ["'' in 'leaky_relu()' is not a number"]),
        ("leaky_relu(2)", ["leaky_relu's slope", "less than or equal to 1"]),
        ("elu(-1)", ["elu's alpha", "greater than or equal to 0"]),
        ("leaky_relu(0.1", ["is not an activation", "leaky_relu(SLOPE)"]),
        ("leaky_rleu(0.1)", ["unknown activation 'leaky_rleu'", "did you mean 'leaky_relu'"]),
    ],
)
def test_a_bad_number_is_one_located_error(act: str, fragments: list[str], tmp_path: Path) -> None:
    path = _spec(tmp_path, f"archspec: 1\nname: m\ninput: {{channels: 3, size: [8, 8]}}\nnetwork:\n  - conv 8 3x3 act={act}\n")
    with pytest.raises(SpecError) as info:
        archspec.check(path)
    err = info.value
    assert (err.line, err.column, err.code) == (5, 16, "bad-op-args"), err.format()  # at the act= token
    for fragment in fragments:
        assert fragment in err.message, err.format()


def test_a_bad_number_in_the_long_form_points_at_its_value(tmp_path: Path) -> None:
    path = _spec(
        tmp_path, "archspec: 1\nname: m\ninput: {channels: 3, size: [8, 8]}\nnetwork:\n  - {op: conv, out: 8, act: relu(1)}\n"
    )
    with pytest.raises(SpecError) as info:
        archspec.check(path)
    assert info.value.line == 5 and "relu takes no number" in info.value.message, info.value.format()
