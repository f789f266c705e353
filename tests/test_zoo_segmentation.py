"""Zoo networks with several outputs or a segmentation head equal their references (issue 30):
ResNet-50-FPN (specs/resnet50_fpn.yaml, torchvision's `resnet_fpn_backbone("resnet50")`: its
ordered dict of maps '0'…'3', 'pool'), DeepLabv3-ResNet-50 (specs/deeplabv3_resnet50.yaml,
torchvision's `deeplabv3_resnet50`: ASPP as a concat of branches, the backbone dilated instead of
strided) and LR-ASPP-MobileNetV3-Large (specs/lraspp_mobilenet_v3_large.yaml, torchvision's
`lraspp_mobilenet_v3_large`: a gate and a skip from the 1/8 features).

Truth is the reference's own module with random weights and perturbed (Frozen)BatchNorm: its
state_dict loads into ours strictly; every output is equal (same names, same order) at the
minimum input size and at an odd size; parameters equal the reference's, MACs fvcore's count of
its convolutions. The references are built with `weights_backbone=None` (no download; it changes
only their initial weights)."""

from __future__ import annotations

import pytest
import torch

import archspec
from tests.paths import SPECS
from tests.references import DENSE_REFERENCES, perturb_bn

tv = pytest.importorskip("torchvision")


REFERENCES = DENSE_REFERENCES
OUTPUTS = {"resnet50_fpn": ["0", "1", "2", "3", "pool"], "deeplabv3_resnet50": ["out"], "lraspp_mobilenet_v3_large": ["out"]}


def _perturb_frozen(model: torch.nn.Module, seed: int) -> None:
    """FrozenBatchNorm2d's statistics and affine (buffers) away from the identity."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            n = m.weight.shape[0]
            m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(30)
    reference = REFERENCES[name]().eval()
    perturb_bn(reference, 30)
    _perturb_frozen(reference, 30)
    model = archspec.build(SPECS / f"{name}.yaml").eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return model, reference


def _assert_same(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert list(got) == list(want)
    for k in want:
        scale = want[k].abs().max().item()
        assert scale > 1e-3, f"{k}: outputs too close to zero to compare ({scale})"
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5 * scale, msg=k)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("lraspp_mobilenet_v3_large"),
        *(pytest.param(n, marks=pytest.mark.slow) for n in ("resnet50_fpn", "deeplabv3_resnet50")),
    ],
)
def test_equals_reference(name: str) -> None:
    model, reference = _pair(name)
    report = archspec.check(SPECS / f"{name}.yaml")
    assert list(report.main) == OUTPUTS[name]
    assert report.params == sum(p.numel() for p in reference.parameters())
    assert report.min_input_size == (1, 1)  # the reference runs there too
    for h, w in ((1, 1), (45, 38)):
        _assert_same(model, reference, torch.randn(1, 3, h, w))
    h, w = 45, 38
    with torch.no_grad():
        want = reference(torch.randn(1, 3, h, w))
    assert {k: tuple(v.shape[1:]) for k, v in want.items()} == {k: report.outputs[k].at(h, w) for k in report.main}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_macs_are_fvcores_convolutions(name: str) -> None:
    fvcore = pytest.importorskip("fvcore.nn")
    size = (64, 80)
    report = archspec.check(SPECS / f"{name}.yaml", {"input.size": list(size)})
    reference = REFERENCES[name]().eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        by_op = (
            fvcore.FlopCountAnalysis(reference, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False).by_operator()
        )
    assert report.macs == by_op["conv"], dict(by_op)  # archspec counts no MACs for interpolation (fvcore: 1-4 an output)


def test_fpn_is_what_its_paper_draws() -> None:
    """Lin et al., Fig. 3: 256 channels at every level, strides 4 to 64; the outputs' feature_info says so."""
    model = archspec.build(SPECS / "resnet50_fpn.yaml", {"input.size": [64, 64]})
    info = model.feature_info
    assert info.names() == ["0", "1", "2", "3", "pool"]
    assert info.channels() == [256] * 5
    assert info.reduction() == [4, 8, 16, 32, 64]
    assert info.module_name() == [*(f"fpn.layer_blocks.{i}" for i in range(4)), "fpn.pool"]
    frozen = [m for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"]
    assert len(frozen) == 53 and not any(p.requires_grad for m in frozen for p in m.parameters())


@pytest.mark.slow
def test_fpn_trains_what_torchvision_trains(tmp_path) -> None:
    """`resnet_fpn_backbone`'s trainable_layers=3 leaves conv1 and layer1 untrained (requires_grad False):
    the spec's `frozen:` gives each parameter the reference's flag, in the built model and in the
    standalone file; one backward in training mode gives the reference's gradients, None where frozen."""
    import importlib.util

    from archspec.codegen.text import standalone_class_name

    model, reference = _pair("resnet50_fpn")
    flags = {k: p.requires_grad for k, p in reference.named_parameters()}
    assert sum(not f for f in flags.values()) == 11  # conv1 and layer1's ten convs (their BatchNorms have no parameters)
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    path = tmp_path / "fpn.py"
    path.write_text(archspec.compile(SPECS / "resnet50_fpn.yaml"))
    spec = importlib.util.spec_from_file_location("generated_fpn", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = getattr(module, standalone_class_name("resnet50_fpn"))()
    assert {k: p.requires_grad for k, p in generated.named_parameters()} == flags
    x = torch.randn(1, 3, 32, 32)  # (frozen BatchNorm: no batch statistics, one image is enough)
    for net in (model.train(), reference.train()):
        sum(v.square().mean() for v in net(x).values()).backward()
    for name, p in reference.named_parameters():
        mine = model.get_parameter(name).grad
        if p.grad is None:
            assert mine is None and not flags[name], name
        else:
            assert mine is not None and flags[name], name
            torch.testing.assert_close(mine, p.grad, rtol=1e-4, atol=1e-5 * p.grad.abs().max().item(), msg=name)
