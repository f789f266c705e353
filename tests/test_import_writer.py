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
        assert all("channel_slice_stop" not in str(b.get("params")) for b in doc["blocks"].values())
    if stem == "tf_efficientnet_b0":
        assert "&layers" in result.text and "*layers" in result.text
        assert " p1 " not in result.text and " p2 " not in result.text  # every padded conv is `same`
