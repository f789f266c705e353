"""archspec import's writer (issue 26 §2): imported YAML that reads like the zoo's.

Truth is independent of the writer: each reference's own modules (torchvision's StochasticDepth
rates), the zoo's hand-written specs through `archspec diff` (the same network, no more blocks, at
most 1.2× the lines), and for the padding rule the definition of TensorFlow's `same` at stride 1.
Strict loads and logits of these imports are checked in tests/test_import.py's round trips.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import yaml
from references import REFERENCES

import archspec
from archspec.importer import input_size_of, to_spec
from archspec.importer.pipeline import same_padding
from archspec.importer.trace import Prim


def _rates(model: torch.nn.Module) -> dict[str, float]:
    """Every drop-path module's rate, by its path (torchvision's StochasticDepth, archspec's drop_path)."""
    return {name: float(m.p) for name, m in model.named_modules() if type(m).__name__ in ("StochasticDepth", "DropPath")}


def _tv(name: str) -> Any:
    import torchvision

    return getattr(torchvision.models, name)(weights=None)


@pytest.mark.parametrize(
    "name, rule, counted",
    [
        ("efficientnet_b0", "drop_path ${0.2 * block_index / block_count}", False),  # 0.2 · i / 16
        ("convnext_tiny", "drop_path ${0.1 * block_index / (block_count - 1)}", False),  # 0.1 · i / 17
        # Fused-MBConv and MBConv counted together: 0.2 · i / 40
        pytest.param("efficientnet_v2_s", "drop_path ${0.2 * block_index / block_count}", True, marks=pytest.mark.slow),
    ],
)
def test_drop_path_rates_are_written_as_the_schedule_and_build_the_reference_s_rates(name: str, rule: str, counted: bool) -> None:
    ref = _tv(name)
    text = to_spec(ref, name=name, input_size=(64, 64)).text
    assert rule in text, text
    assert "stochastic_depth_p" not in text  # no rate per instance
    assert ("counter: depth" in text) == counted
    ours = archspec.build(text)
    # torchvision keeps a StochasticDepth in an MBConv without a residual sum (use_res_connect false),
    # where it is never called: no module of the spec. Every other is, at the reference's rate.
    blocks = {name: m for name, m in ref.named_modules() if hasattr(m, "use_res_connect")}
    theirs = {path: p for path, p in _rates(ref).items() if getattr(blocks.get(path.rpartition(".")[0]), "use_res_connect", True)}
    mine = _rates(ours)
    assert sorted(mine) == sorted(theirs)
    assert len({round(p, 9) for p in mine.values()}) > 5  # the rates grow with depth
    for path, p in mine.items():
        assert p == pytest.approx(theirs[path], abs=1e-12), path


def _conv(padding: Any, stride: int = 1, kernel: int = 3, dilation: int = 1) -> Prim:
    pair = {"kernel": (kernel, kernel), "stride": (stride, stride), "dilation": (dilation, dilation)}
    return Prim(0, "conv2d", {"out": 8, "padding": padding, **pair})


def test_a_static_same_padding_is_written_same_only_in_a_network_that_pads_same() -> None:
    """TensorFlow's `same` at stride 1 pads an odd span d·(k−1)+1 by half of d·(k−1) on each side: those
    convs are `same` where another conv of the network pads `same` at run time (timm's tf_ ports)."""
    tf = [_conv("same", stride=2), _conv((1, 1)), _conv((2, 2), kernel=5), _conv((2, 2), dilation=2), _conv((0, 0), kernel=1)]
    other = [_conv((1, 1), stride=2), _conv((1, 1), kernel=5), _conv((1, 1))]
    same_padding(tf)
    same_padding([*other])
    assert [p.params["padding"] for p in tf] == ["same", "same", "same", "same", (0, 0)]
    assert [p.params["padding"] for p in other] == [(1, 1), (1, 1), (1, 1)]  # torchvision's ResNet keeps `3x3 p1`
    mixed = [_conv("same", stride=2), _conv((1, 1), kernel=5), _conv((1, 1), stride=2)]
    same_padding(mixed)
    assert [p.params["padding"] for p in mixed] == ["same", (1, 1), (1, 1)]  # not `same`: other pixels, other stride


# zoo spec → (reference, input size) for the rows of docs/import_coverage.md mended in session 8
ROWS = {
    "shufflenet_v2_x1_0": None,  # a channel slice [c, 2c): one parameter, ${2 * out}
    "tf_efficientnet_b0": None,  # `same` as the zoo writes it; a body with and without its sum written once
    "facenet_inception_resnet_v1": (160, 160),  # dropout between the pool and x.view(x.shape[0], -1)
    "resnetv2_50x1_bit": None,  # one bottleneck arranged two ways (`if: $projection`), stages of 3, 4, 6, 3 (`* $n`)
    "cspresnet50": None,  # stages of 3, 3, 5, 2 bottlenecks: one block, the length a parameter
}


@pytest.mark.parametrize("stem", sorted(ROWS))
def test_imports_meet_the_zoo_targets(stem: str) -> None:
    """No more blocks than the zoo's hand-written spec, at most 1.2× its lines, and `archspec diff`
    finds the same network (issue 26 §2)."""
    from archspec.importer.coverage import compare_with_zoo, hand_written_lines

    model = REFERENCES[stem]()
    result = to_spec(model, name=stem, input_size=input_size_of(model, ROWS[stem]))
    zoo_blocks, verdict = compare_with_zoo(result.text, stem)
    assert result.blocks <= zoo_blocks, (result.blocks, zoo_blocks)
    assert result.lines <= 1.2 * hand_written_lines(stem), (result.lines, hand_written_lines(stem))
    assert verdict.startswith("same network"), verdict
    doc = yaml.safe_load(result.text)
    if stem == "shufflenet_v2_x1_0":
        assert "${2 * out}" in result.text
        assert len(doc["blocks"]) == 2, doc  # its two units hold other modules (branch1): two blocks, as the zoo's
        assert all("channel_slice_stop" not in str(b.get("params")) for b in doc["blocks"].values())
    if stem in ("resnetv2_50x1_bit", "cspresnet50"):
        assert "* $n" in result.text, result.text
    if stem == "tf_efficientnet_b0":
        assert "&layers" in result.text and "*layers" in result.text
        assert " p1 " not in result.text and " p2 " not in result.text  # every padded conv is `same`


class _Unit(torch.nn.Module):  # a class the network holds twice: a block
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.bn(self.conv(x)))


class _Pooling(torch.nn.Module):  # a class held once, inside another held once: both in place
    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool, self.conv = torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(self.conv(self.pool(x)), size=x.shape[-2:], mode="bilinear")


class _Head(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.branches = torch.nn.ModuleList([torch.nn.Conv2d(c, c, 1), _Pooling(c)])
        self.project = torch.nn.Conv2d(2 * c, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], 1))


def test_a_block_used_once_is_written_in_place_under_its_module_name() -> None:
    """issue 26 §2: a module class the network holds once (DeepLabV3's ASPP and its pooling branch) is
    written where it runs, as the zoo writes it, not as a block; a class held twice stays a block.
    import_module checks the spec against the module (strict state_dict, same outputs)."""
    from archspec.importer import import_module

    torch.manual_seed(0)
    net = _Net().eval()
    doc = yaml.safe_load(import_module(net, input_size=(12, 12)))
    assert list(doc["blocks"]) == ["unit"], doc
    head = doc["network"][-1]["head"]
    pooling = [{"pool": "adaptive_avgpool 1x1"}, {"conv": "conv2d 8 1x1"}, "interpolate size_of=units bilinear"]
    assert head[0]["branches"]["concat"][1] == {"1": pooling}, head
    assert head[1] == {"project": "conv2d 5 1x1"}, head


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.units = torch.nn.Sequential(_Unit(8), _Unit(8))
        self.head = _Head(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.units(self.stem(x)))


class _PixelMlp(torch.nn.Module):
    """timm's ConvNeXt block body: channels moved last, timm's LayerNorm (an nn.LayerNorm whose forward
    calls F.layer_norm with its own tensors), an MLP with a no-op dropout, channels moved back."""

    def __init__(self, c: int) -> None:
        from timm.layers.norm import LayerNorm

        super().__init__()
        self.norm = LayerNorm(c)
        self.fc1, self.drop, self.fc2 = torch.nn.Linear(c, 2 * c), torch.nn.Dropout(0.0), torch.nn.Linear(2 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x.permute(0, 2, 3, 1))
        return self.fc2(self.drop(torch.nn.functional.gelu(self.fc1(x)))).permute(0, 3, 1, 2)


def test_timm_s_layer_norm_and_a_no_op_dropout_between_permutes_are_read() -> None:
    """timm.layers.norm.LayerNorm is read as layer_norm (it is an nn.LayerNorm), and a Dropout(0.0) between
    the permutes keeps the channels last: import_module checks the spec against the module (strict
    state_dict, same outputs)."""
    pytest.importorskip("timm")
    from archspec.importer import import_module

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), _PixelMlp(8)).eval()
    with torch.no_grad():
        net[1].norm.weight.normal_()  # not the identity's γ = 1
    text = import_module(net, input_size=(9, 9))
    assert "layer_norm eps=1e-06" in text and "per_pixel" in text, text


class _PreAct(torch.nn.Module):
    """A pre-activation bottleneck as BiT writes it: normalised and activated first; with a projection
    the shortcut reads that pre-activated input (the sum closes after `norm1`), without one the block's
    own input (the sum closes over everything): one class, its modules arranged in two ways."""

    def __init__(self, cin: int, mid: int, out: int, stride: int) -> None:
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(2, cin)
        self.conv1, self.norm2 = torch.nn.Conv2d(cin, mid, 1, bias=False), torch.nn.GroupNorm(2, mid)
        self.conv2, self.norm3 = torch.nn.Conv2d(mid, mid, 3, stride, 1, bias=False), torch.nn.GroupNorm(2, mid)
        self.conv3 = torch.nn.Conv2d(mid, out, 1, bias=False)
        self.downsample = torch.nn.Conv2d(cin, out, 1, stride, bias=False) if stride != 1 or cin != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.norm1(x))
        shortcut = self.downsample(pre) if self.downsample is not None else x
        y = self.conv2(torch.relu(self.norm2(self.conv1(pre))))
        return self.conv3(torch.relu(self.norm3(y))) + shortcut


class _Stage(torch.nn.Module):
    def __init__(self, cin: int, mid: int, depth: int, stride: int) -> None:
        super().__init__()
        layers = [_PreAct(cin if i == 0 else 4 * mid, mid, 4 * mid, stride if i == 0 else 1) for i in range(depth)]
        self.blocks = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def test_a_class_arranged_two_ways_is_one_block_and_a_stage_s_length_a_parameter() -> None:
    """issue 26 §2 (BiT's row): the two arrangements of one class — the same modules, a projection
    shortcut apart — are one block, `{if: $projection, then: ..., else: ...}`; stages that differ in
    how many equal blocks they repeat are one block whose count is a parameter (`* $n`), as the zoo
    writes BiT. import_module checks the spec against the module (strict state_dict, same outputs)."""
    from archspec.importer import import_module

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.Sequential(_Stage(8, 4, 2, 1), _Stage(16, 8, 3, 2), _Stage(32, 8, 2, 2)),
    ).eval()
    doc = yaml.safe_load(import_module(net, input_size=(16, 16)))
    assert list(doc["blocks"]) == ["pre_act", "stage"], doc
    unit = doc["blocks"]["pre_act"]
    assert unit["params"]["projection"] is False and unit["chain"][0]["if"] == "$projection", unit
    then, other = unit["chain"][0]["then"], unit["chain"][0]["else"]
    assert then[0] == {"norm1": "group_norm 2"} and "shortcut" in then[2]["residual"], unit  # pre-activated, then the sum
    assert other["residual"]["body"][0] == {"norm1": "group_norm 2"} and "shortcut" not in other["residual"], unit
    stage = doc["blocks"]["stage"]
    assert stage["chain"][0]["blocks"][1].endswith(" * $n"), stage  # the run after the projecting block
    assert [s.split()[0] for s in doc["network"][1]["1"]] == ["stage"] * 3 and "n=2" in doc["network"][1]["1"][1], doc


def test_timm_s_convnext_gamma_is_a_flat_layer_scale_in_a_block_named_as_one_word() -> None:
    """timm's ConvNeXt multiplies by ``self.gamma.reshape(1, -1, 1, 1)``, a vector of C: imported as
    `gamma: layer_scale flat`, so timm's state_dict (γ redrawn, far from its start) loads strictly and
    gives timm's outputs (import_module checks both). The family's name is one word in the block's
    name: `ConvNeXtBlock` is `convnext_block`."""
    pytest.importorskip("timm")
    from references import timm_redrawn

    from archspec.importer import import_module

    model, _ = timm_redrawn("convnext_atto")
    doc = yaml.safe_load(import_module(model, input_size=(64, 64)))
    assert list(doc["blocks"]) == ["convnext_block", "convnext_stage"], list(doc["blocks"])
    assert {"gamma": "layer_scale flat"} in doc["blocks"]["convnext_block"]["residual"]["body"], doc["blocks"]


@pytest.mark.parametrize(
    "cls, name",
    [
        ("ConvNeXtBlock", "convnext_block"),  # a family's name, its pun on "Net" included, is one word
        ("ResNetStage", "resnet_stage"),
        ("ResNeStBottleneck", "resnest_bottleneck"),
        ("GhostNet", "ghostnet"),
        ("SKNet", "sknet"),
        ("MobileNetV3", "mobilenet_v3"),
        ("Network", "network"),  # a word that starts with "Net" is no family's name
        ("InvertedResidual", "inverted_residual"),
        ("InceptionA", "inception_a"),
        ("MBConv", "mbconv"),  # an acronym, one word with the word it starts, as the zoo writes it
    ],
)
def test_a_block_is_named_after_its_class_in_the_words_a_person_writes(cls: str, name: str) -> None:
    from archspec.importer.emit import _snake

    assert _snake(cls) == name


class _Residual(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.f(x))


class _AnyStage(torch.nn.Sequential):  # RegNet's stage: its blocks named `block{k}-{i}`
    def __init__(self, k: int, depth: int, c: int) -> None:
        super().__init__()
        for i in range(depth):
            self.add_module(f"block{k}-{i}", _Residual(c))


def test_a_stage_of_one_block_is_written_as_the_list_of_that_block() -> None:
    """RegNet's first stage holds one block: written like the other stages, the list of its block's
    instance under the block's own name (`block1: [block1-0: residual ...]`), not the block's body in
    the stage's place with the block's name on each branch. import_module checks the spec against
    the module (strict state_dict, same outputs)."""
    from archspec.importer import import_module

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), _AnyStage(1, 1, 8), _AnyStage(2, 2, 8)).eval()
    doc = yaml.safe_load(import_module(net, input_size=(12, 12)))
    assert list(doc["blocks"]) == ["residual"], doc
    assert doc["network"][1] == {"1": [{"block1-0": "residual"}]}, doc
    assert doc["network"][2] == {"2": {"block": "residual", "repeat": 2, "names": "block2-{i}"}}, doc


class _ChannelAttn(torch.nn.Module):
    """CBAM's channel attention (timm's ChannelAttn): one MLP over the average- and the max-pooled map."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Conv2d(c, c // 2, 1), torch.nn.Conv2d(c // 2, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(torch.relu(self.fc1(torch.nn.functional.adaptive_avg_pool2d(x, 1))))
        top = self.fc2(torch.relu(self.fc1(torch.nn.functional.adaptive_max_pool2d(x, 1))))
        return x * torch.sigmoid(avg + top)


class _Again(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.conv = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
        self.blocks = torch.nn.Sequential(_ChannelAttn(8), _ChannelAttn(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv(torch.relu(self.conv(self.stem(x)))))  # conv applied twice


def test_a_module_called_twice_is_its_first_call_then_a_share() -> None:
    """A module with weights called again is `{share: NAME}` of its first call (docs/language.md,
    "Shared weights"), named inside the block instance that holds both (CBAM's MLP: `share: fc1`):
    the weights held once, so the module's state_dict loads strictly and the outputs agree
    (import_module checks both)."""
    from archspec.importer import import_module

    torch.manual_seed(0)
    doc = yaml.safe_load(import_module(_Again().eval(), input_size=(12, 12)))
    assert doc["network"][1:4] == [{"conv": "conv2d 8 3x3 p1"}, "relu", {"share": "conv"}], doc["network"]
    residual = doc["blocks"]["channel_attn"]["gate"][0]["residual"]
    assert residual["shortcut"] == ["adaptive_maxpool 1x1", {"share": "fc1"}, "relu", {"share": "fc2"}], residual
