"""Multiply-accumulates of a reference torch module, counted by forward hooks (independent of archspec)."""

from __future__ import annotations

import torch


def reference_macs(module: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Run ``module`` on ``x``; return its output and the MACs of its Conv2d and Linear layers per image."""
    total = 0

    def conv(m: torch.nn.Conv2d, _: object, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m: torch.nn.Linear, _: object, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features  # on (N, H, W, C), as ConvNeXt's MLP: once per pixel

    hooks = [m.register_forward_hook(conv) for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks += [m.register_forward_hook(linear) for m in module.modules() if isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            out = module(x)
    finally:
        for h in hooks:
            h.remove()
    return out, total // x.shape[0]
