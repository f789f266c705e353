"""`outputs:` — a spec returning several named values (docs/language.md, "Several outputs"): the
compiled model, its standalone file, its optimized and exported forms return them in order under the
names written, equal to torchvision's IntermediateLayerGetter over the same weights; ``feature_info``
says what timm's does; wrong names are located errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from references import perturb_bn

import archspec
from archspec.api import report_of
from archspec.cli import main
from archspec.errors import SpecError

LAYERS = ["layer1", "layer2", "layer3", "layer4"]


TINY = """archspec: 1
name: tiny_maps
input: {channels: 3, size: 32}
network:
  stem: conv 8 3x3 s2 p1
  layer1: conv 16 3x3 s2 p1
  layer2: [conv 16 3x3 s2 p1, conv 24 1x1]
  head: [global_avgpool, flatten, linear 10]
outputs: {'0': layer1, '1': layer2, pool: head}
"""


def _by_hand(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TINY written with torch functions: the truth for its outputs."""

    def conv(v: torch.Tensor, at: str, stride: int, padding: int) -> torch.Tensor:
        v = torch.nn.functional.conv2d(v, sd[f"{at}.conv.weight"], stride=stride, padding=padding)
        bn = [sd[f"{at}.bn.{k}"] for k in ("running_mean", "running_var", "weight", "bias")]
        return torch.relu(torch.nn.functional.batch_norm(v, *bn, training=False, eps=1e-5))

    a = conv(conv(x, "stem", 2, 1), "layer1", 2, 1)
    b = conv(conv(a, "layer2.0", 2, 1), "layer2.1", 1, 0)
    logits = torch.nn.functional.linear(b.mean((2, 3)), sd["head.2.weight"], sd["head.2.bias"])
    return {"0": a, "1": b, "pool": logits}


def _assert_same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert list(got) == list(expected)  # the names, in the order written
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=0, atol=atol)


def test_resnet18_maps_equal_torchvisions_intermediate_layer_getter() -> None:
    """A list of paths names each output by its path; equal to IntermediateLayerGetter over the same
    weights (loaded strictly from it), at two sizes incl. the minimum."""
    import torchvision
    from torchvision.models._utils import IntermediateLayerGetter

    reference = torchvision.models.resnet18(weights=None)
    perturb_bn(reference)
    getter = IntermediateLayerGetter(reference, {k: k for k in LAYERS}).eval()
    model = archspec.build("zoo:resnet18", {"outputs": LAYERS}).eval()  # as --set outputs=[...] would
    # what no output reads (avgpool, fc) is not part of the network, as the getter drops it
    model.load_state_dict(getter.state_dict(), strict=True)
    report = report_of(model)
    assert report.params == sum(p.numel() for p in getter.parameters())
    assert [r.path for r in report.rows][-1] == "layer4.1"  # the last row: no avgpool, no fc
    assert report.min_input_size == (1, 1)
    with torch.no_grad():
        for size in (1, 45):
            x = torch.randn(2, 3, size, size)
            _assert_same(model(x), getter(x))
    import timm

    timms = timm.create_model("resnet18", features_only=True, out_indices=(1, 2, 3, 4)).feature_info
    assert model.feature_info.channels() == timms.channels() == [64, 128, 256, 512]
    assert model.feature_info.reduction() == timms.reduction() == [4, 8, 16, 32]
    assert model.feature_info.module_name() == LAYERS == model.feature_info.names()


def test_named_outputs_equal_torch_functions_in_every_form(tmp_path: Path) -> None:
    """A mapping names the outputs; the built, optimized and standalone models all return them in order."""
    model = archspec.build(TINY)
    perturb_bn(model)
    model.eval()
    sd = model.state_dict()
    x = torch.randn(3, 3, 21, 19)
    source = archspec.compile(TINY)
    assert "def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:" in source
    assert "return {'0': " in source.replace('"', "'")
    namespace: dict[str, object] = {}
    exec(compile(source, "tiny_maps.py", "exec"), namespace)
    standalone = namespace["TinyMaps"]().eval()  # type: ignore[operator]
    standalone.load_state_dict(sd, strict=True)
    with torch.no_grad():
        expected = _by_hand(x, sd)
        _assert_same(model(x), expected)
        _assert_same(standalone(x), expected)
        _assert_same(archspec.optimize(model)(x), expected, atol=1e-4)
    info = model.feature_info
    assert [(d["name"], d["module"], d["num_chs"], d["reduction"]) for d in info.get_dicts()] == [
        ("0", "layer1", 16, 4),
        ("1", "layer2", 24, 8),
        ("pool", "head", 10, 1),
    ]
    report = archspec.check(TINY)
    assert report.main == ("0", "1", "pool")
    assert report.outputs["1"].at(32, 32) == (24, 4, 4)
    assert report.output_shape == (16, 8, 8)  # the first output


def test_onnx_export_has_every_output(tmp_path: Path) -> None:
    import onnxruntime

    model = archspec.build(TINY).eval()
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "tiny.onnx"
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    assert main(["export", str(spec), "-o", str(out), "--weights", str(weights)]) == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["0", "1", "pool"]
    x = torch.randn(2, 3, 27, 30)
    got = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    for value, k in zip(got, expected, strict=True):
        torch.testing.assert_close(torch.from_numpy(np.asarray(value)), expected[k], rtol=0, atol=1e-4)


def test_aux_heads_come_after_the_outputs_in_training_mode() -> None:
    spec = TINY + "aux:\n  aux1: {tap: layer1, head: [global_avgpool, flatten, linear 5]}\n"
    model = archspec.build(spec)
    x = torch.randn(2, 3, 32, 32)
    assert list(model.train()(x)) == ["0", "1", "pool", "aux1"]
    assert list(model.eval()(x)) == ["0", "1", "pool"]
    source = archspec.compile(spec)
    namespace: dict[str, object] = {}
    exec(compile(source, "tiny_maps.py", "exec"), namespace)
    standalone = namespace["TinyMaps"]()  # type: ignore[operator]
    standalone.load_state_dict(model.state_dict(), strict=True)
    assert list(standalone.train()(x)) == ["0", "1", "pool", "aux1"]
    assert list(standalone.eval()(x)) == ["0", "1", "pool"]


def test_check_summary_and_render_show_the_outputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    assert main(["check", str(spec)]) == 0
    assert "outputs 0 16×8×8, 1 24×4×4, pool 10," in capsys.readouterr().out
    dot = archspec.render(TINY).source
    for name in ("0", "1", "pool"):
        assert re.search(rf'"@out\.output {name}" \[label="output {name}"', dot), name
    # the activations alive at once in inference: the input, and the outputs kept to the end
    memory = archspec.summary(TINY).memory
    assert memory.inference_peak >= 4 * (16 * 8 * 8 + 24 * 4 * 4 + 10)


@pytest.mark.parametrize(
    "outputs, message, column",
    [
        ("[layer1, layr2]", "outputs: 'layr2' names no node of the network", 19),
        ("[layer1, layer1]", "outputs: 'layer1' is named twice", 19),
        ("[]", "outputs: names no value", 10),
        ("{'a b': layer1}", "'a b' is not a valid output name", 11),
        ("{x: layer9}", "outputs: 'layer9' names no node of the network", 14),
        ("3", "expected a list of module paths, or a mapping from output names to module paths", 10),
    ],
)
def test_wrong_outputs_are_located_errors(
    outputs: str, message: str, column: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TINY.replace("outputs: {'0': layer1, '1': layer2, pool: head}", f"outputs: {outputs}")
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:9:{column}: error: {message}" in err, err
    assert "Traceback" not in err


def test_an_aux_head_cannot_take_an_outputs_name() -> None:
    spec = TINY + "aux:\n  pool: {tap: layer1, head: [global_avgpool, flatten, linear 5]}\n"
    with pytest.raises(SpecError, match="aux head 'pool' has the name of an output") as e:
        archspec.check(spec)
    assert e.value.loc.line == 11
