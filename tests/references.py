"""Reference implementations of zoo specs, for tests that compare against independent truth.

Maps a spec's file stem (``specs/<stem>.yaml``) to a builder of the reference network with
random initialisation; tests copy its weights into ours through ``state_dict`` and compare outputs.
Tests iterate over the specs present in ``specs/`` that have an entry here, so a new zoo spec is
covered by adding one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _timm(name: str) -> Callable[[], Any]:
    def build() -> Any:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


def _torchvision(name: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kwargs)

    return build


def _facenet() -> Any:
    from facenet_pytorch import InceptionResnetV1

    return InceptionResnetV1(classify=True, num_classes=1000)


def _bn_inception() -> Any:
    from pretrainedmodels.models.bninception import BNInception

    return BNInception(num_classes=1000)


REFERENCES: dict[str, Callable[[], Any]] = {
    "inception_v4": _timm("inception_v4"),
    "seresnet50": _timm("seresnet50"),
    "inception_resnet_v2": _timm("inception_resnet_v2"),
    "facenet_inception_resnet_v1": _facenet,
    "bn_inception": _bn_inception,
    "googlenet": _torchvision("googlenet", aux_logits=True, init_weights=True),
    "inception_v3": _torchvision("inception_v3", aux_logits=True, init_weights=True),
    **{f"resnet{d}": _torchvision(f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "resnext50_32x4d": _torchvision("resnext50_32x4d"),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large"),
    "densenet121": _torchvision("densenet121"),
    "shufflenet_v2_x1_0": _torchvision("shufflenet_v2_x1_0"),
    "efficientnet_b0": _torchvision("efficientnet_b0"),
    "convnext_tiny": _torchvision("convnext_tiny"),
    "tf_efficientnet_b0": _timm("tf_efficientnet_b0"),
    "cspresnet50": _timm("cspresnet50"),
    "resnetv2_50x1_bit": _timm("resnetv2_50x1_bit"),
    "res2net50_26w_4s": _timm("res2net50_26w_4s"),
}


def _fpn() -> Any:
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    return resnet_fpn_backbone(backbone_name="resnet50", weights=None)  # trainable_layers=3: conv1 and layer1 frozen


def _deeplab() -> Any:
    from torchvision.models.segmentation import deeplabv3_resnet50

    return deeplabv3_resnet50(weights=None, weights_backbone=None)


def _lraspp() -> Any:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)


# Zoo specs whose reference returns a dict of maps (several outputs, or a segmentation head's "out"). The
# references are built with `weights_backbone=None` (no download; it changes only their initial weights).
DENSE_REFERENCES: dict[str, Callable[[], Any]] = {
    "resnet50_fpn": _fpn,
    "deeplabv3_resnet50": _deeplab,
    "lraspp_mobilenet_v3_large": _lraspp,
}


_WIDTHS = ("x0_5", "x1_5", "x2_0")  # ShuffleNetV2's other widths (torchvision's)
_SIZES = ("small", "base", "large")  # ConvNeXt's other sizes
# the members of zoo families: zoo:efficientnet_b0's `variants:` b1 … b4 (built with overrides={"variant": "b1"},
# ...), zoo:densenet121's, zoo:shufflenet_v2_x1_0's and zoo:convnext_tiny's
VARIANT_REFERENCES: dict[str, tuple[str, dict[str, Any], Callable[[], Any]]] = {
    **{f"efficientnet_b{i}": ("efficientnet_b0", {"variant": f"b{i}"}, _torchvision(f"efficientnet_b{i}")) for i in (1, 2, 3, 4)},
    **{f"densenet{d}": ("densenet121", {"variant": f"densenet{d}"}, _torchvision(f"densenet{d}")) for d in (161, 169, 201)},
    **{f"shufflenet_v2_{w}": ("shufflenet_v2_x1_0", {"variant": w}, _torchvision(f"shufflenet_v2_{w}")) for w in _WIDTHS},
    **{f"convnext_{size}": ("convnext_tiny", {"variant": size}, _torchvision(f"convnext_{size}")) for size in _SIZES},
}


def timm_redrawn(name: str, scale: float = 0.2) -> tuple[Any, dict[str, Any]]:
    """timm's ``name`` in eval mode with every tensor of its state_dict drawn afresh, N(0, scale²) from seed 0
    (no BatchNorm: learned scales that start at zero or one, a GRN's γ and β, a layer scale's γ, stop being
    the identity), and that state_dict."""
    import timm
    import torch

    model = timm.create_model(name).eval()
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) * scale for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model, state


def assert_same_init(ours: Any, reference: Any, label: str, sample: int = 20_000) -> None:
    """``ours`` (a fresh build) starts from the distribution ``reference`` (a fresh construction) starts
    from: the same state_dict keys; for every floating-point tensor a two-sample Kolmogorov–Smirnov test
    (at most ``sample`` values of each, p > 0.01 Bonferroni-corrected over the network's tensors);
    a tensor the reference fills with one value (BatchNorm's γ and β, zero-initialised last γ, running
    statistics, zero biases) must be equal."""
    import torch
    from scipy import stats

    theirs, mine = reference.state_dict(), ours.state_dict()
    assert set(mine) == set(theirs), f"{label}: keys differ: {sorted(set(mine) ^ set(theirs))[:5]}"
    gen = torch.Generator().manual_seed(0)

    def draw(t: Any) -> Any:  # (a permutation of a large tensor costs more than the test: indices with
        flat = t.detach().flatten()  # replacement there, where repeats are rare)
        n = flat.numel()
        if n > 8 * sample:
            flat = flat[torch.randint(n, (sample,), generator=gen)]
        elif n > sample:
            flat = flat[torch.randperm(n, generator=gen)[:sample]]
        return flat.double()

    keys = [k for k in theirs if theirs[k].is_floating_point()]
    alpha = 0.01 / len(keys)
    for key in keys:
        a, b = draw(mine[key]), draw(theirs[key])
        if b.min() == b.max() or a.numel() < 2:  # constants and scalars
            if not torch.equal(mine[key], theirs[key]):
                torch.testing.assert_close(mine[key], theirs[key], msg=f"{label}: {key}")
            continue
        p = stats.ks_2samp(a.numpy(), b.numpy()).pvalue
        assert p > alpha, f"{label}: {key} is not drawn like the reference's (KS p = {p:.2e})"


def perturb_bn(model: Any, seed: int = 1) -> None:
    """Give every BatchNorm statistics and affine terms a trained network could have (the fresh
    ones, mean 0 and var 1, γ 1 and β 0, would hide mistakes in eps and in folding them)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def perturb_frozen_bn(model: Any, seed: int = 1) -> None:
    """Like :func:`perturb_bn`, for FrozenBatchNorm2d (archspec's or torchvision's: their terms are buffers)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ == "FrozenBatchNorm2d":
                n = m.weight.shape[0]
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


def perturb_group_norm(model: Any, seed: int = 1) -> None:
    """Give every GroupNorm affine terms a trained network could have (γ 1, β 0 would hide a mistake in
    which of them is which, or in the groups)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def perturb_layer_norm(model: Any, seed: int = 1) -> None:
    """Give every LayerNorm affine terms and every layer scale values a trained network could have: the
    fresh ones (γ 1, β 0; a layer scale of 1e-6, which makes a ConvNeXt block's branch vanish next to its
    shortcut) would hide mistakes in the branch."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if name.rpartition(".")[2] == "layer_scale":
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)


def assert_same_eval_logits(ref: Any, ours: Any, spec: Path, size: int) -> None:
    """Eval mode on one random image: our logits within 1e-5 of the reference's, and the spec's
    MAC count equal to what hooks on the reference's convs and linears count."""
    import torch

    import archspec
    from tests.reference_macs import reference_macs

    ref.eval(), ours.eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert isinstance(got, torch.Tensor) and got.shape == (1, 1000)
    assert (expected - got).abs().max().item() <= 1e-5
    assert reference_macs(ref, x)[1] == archspec.check(spec).macs


def assert_same_logits(model: Any, reference: Any, spec: Path, shapes: list[tuple[int, ...]]) -> None:
    """Eval mode at each input shape: logits within 1e-5 of the reference's (which must be far from
    zero, so the tolerance means something), and at the spec's size the MACs hooks count on the reference."""
    import torch

    import archspec
    from tests.reference_macs import reference_macs

    report = archspec.check(spec)
    model.eval(), reference.eval()
    for shape in shapes:
        x = torch.randn(shape)
        with torch.no_grad():
            ours = model(x)
        theirs, macs = reference_macs(reference, x)
        if tuple(shape[2:]) == report.input_size:
            assert report.macs == macs
        assert ours.shape == theirs.shape
        assert theirs.std() > 1e-2
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def assert_same_gradients(model: Any, reference: Any, x: Any) -> None:
    """Training mode, dropout off: the gradients of every parameter equal the reference's."""
    model.train(), reference.train()
    no_dropout(model, reference)
    for net in (model, reference):
        net(x).logsumexp(dim=1).mean().backward()
    theirs = dict(reference.named_parameters())
    import torch

    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-4, atol=1e-5, msg=name)


def assert_same_outputs(compiled: Any, generated: Any, x: Any) -> None:
    """The standalone file's module gives exactly the compiled model's outputs, in training mode (same
    random numbers: seeded alike) and in eval mode; with aux heads, the same dict."""
    import torch

    for training in (False, True):
        compiled.train(training)
        generated.train(training)
        torch.manual_seed(1)
        with torch.no_grad():
            a = compiled(x)
        torch.manual_seed(1)
        with torch.no_grad():
            b = generated(x)
        if isinstance(a, dict):
            assert isinstance(b, dict) and list(b) == list(a)
            for k in a:
                torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)
        else:
            torch.testing.assert_close(b, a, rtol=0, atol=0)


def no_dropout(*models: Any) -> None:
    """Dropout and stochastic depth off in every model (p = 0), so training-mode outputs are
    deterministic and comparable; everything else of training mode (batch statistics) stays."""
    import torch

    for model in models:
        for m in model.modules():
            # archspec's DropPath and torchvision's StochasticDepth, by name: neither is imported here
            if isinstance(m, torch.nn.Dropout) or type(m).__name__ in ("DropPath", "StochasticDepth"):
                m.p = 0.0


def zoo_with_references() -> list[str]:
    """Stems of the zoo specs that have a reference builder, in name order."""
    return sorted(stem for stem in REFERENCES if (SPECS / f"{stem}.yaml").exists())
