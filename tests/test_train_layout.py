"""Memory layout of the compiled training forward (issue 28): ConvNeXt runs channels-last where
torchvision's runs channels-last (its one training step was 8 % slower while every block's depthwise conv
ran channels-first), and what that layout must not disturb: GroupNorm's precision, and the export."""

from __future__ import annotations

import torch
import torch.nn as nn

import archspec
from tests.references import REFERENCES, SPECS, no_dropout

CHANNELS_LAST_SUM = """archspec: 1
name: t
input: {channels: 3, size: [16, 16]}
network:
  - stem: conv2d 8 2x2 s2
  - b:
      residual:
        body: [layer_norm, "linear 16 per_pixel", gelu, "linear 8 per_pixel", layer_scale 0.5]
  - conv: conv2d 8 3x3 p1
  - gn: group_norm 2
  - global_avgpool
  - fc: linear 5
"""


def _conv_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, bool]:
    """Whether each conv of ``model`` reads a channels-last map, by module path, in one training forward."""
    seen: dict[str, bool] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda _, args, path=path: seen.__setitem__(path, args[0].is_contiguous(memory_format=torch.channels_last))
        )
        for path, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_convnext_convs_read_the_layout_torchvision_gives_them() -> None:
    """Every conv (stem, depthwise, downsampling) reads its map in the layout torchvision's convnext_tiny
    gives it (channels-last from its LayerNorm2d and blocks' permutes on), and the step's loss and gradients
    are torchvision's."""
    torch.manual_seed(0)
    model = archspec.build(SPECS / "convnext_tiny.yaml").train()
    with torch.device("meta"):  # no initialisation: the weights come from ours
        reference = REFERENCES["convnext_tiny"]().train()
    reference.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, strict=True, assign=True)
    no_dropout(model, reference)
    x = torch.randn(2, 3, 64, 64)
    ours, theirs = _conv_inputs(model, x), _conv_inputs(reference, x)
    assert ours == theirs and sum(theirs.values()) == len(theirs) - 1  # all but the stem's (the image)
    target = torch.tensor([3, 7])
    for m in (model, reference):
        nn.functional.cross_entropy(m(x), target).backward()
    grads = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_group_norm_after_a_channels_last_sum_reads_a_channels_first_copy() -> None:
    """A residual body ending in a per-pixel layer leaves the sum channels-last; torch's GroupNorm kernel on
    a channels-last map sums x and x² in one pass, so its variance cancels when a group's mean is large
    against its spread. The compiled model hands it a channels-first copy: within 1e-3 of the float64
    network's output (1.4e-4 here: float32's rounding of values near 300), where the channels-last kernel
    is off by 1.4e-2."""
    torch.manual_seed(0)
    model = archspec.build(CHANNELS_LAST_SUM).train()
    with torch.no_grad():
        model.conv.bias.fill_(300.0)  # every group's mean near 300, its spread about 1
    x = torch.randn(4, 3, 16, 16)
    got = model(x)
    want = model.double()(x.double())
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-3)
