"""Small functions the generated code calls at run time (kept tiny: they run on every forward).

They are written in the subset of Python that TorchScript compiles (typed tensors, plain string
building), so a compiled model can be scripted, exported and traced like hand-written code.
"""

from __future__ import annotations

import torch
import torch.fx


@torch.fx.wrap
def check_input(x: torch.Tensor, channels: int, min_h: int, min_w: int) -> torch.Tensor:
    """Refuse inputs the network cannot process, with a clear message instead of a deep torch error."""
    if x.dim() != 4 or x.shape[1] != channels or x.shape[2] < min_h or x.shape[3] < min_w:
        raise ValueError(
            "expected input of shape (N, " + str(channels) + ", H, W) with H >= " + str(min_h) + " and W >= "
            + str(min_w) + ", got " + str(list(x.shape))
        )
    return x
