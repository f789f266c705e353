"""Small functions the generated code calls at run time (kept tiny: they run on every forward)."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx


@torch.fx.wrap
def check_input(x: Any, channels: int, min_h: int, min_w: int) -> Any:
    """Refuse inputs the network cannot process, with a clear message instead of a deep torch error."""
    if x.dim() != 4 or x.shape[1] != channels or x.shape[2] < min_h or x.shape[3] < min_w:
        raise ValueError(
            f"expected input of shape (N, {channels}, H, W) with H >= {min_h} and W >= {min_w}, "
            f"got {tuple(x.shape)}"
        )
    return x
