"""Small functions the generated code calls at run time (kept tiny: they run on every forward)."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx


@torch.fx.wrap
def check_input(x: Any, channels: int, min_h: int, min_w: int, max_h: int | None = None,
                max_w: int | None = None) -> Any:
    """Refuse inputs the network cannot process, with a clear message instead of a deep torch error.

    ``max_h``/``max_w`` are given only when a flatten fixes the size of a map that grows with the input.
    """
    if (x.dim() != 4 or x.shape[1] != channels or x.shape[2] < min_h or x.shape[3] < min_w
            or (max_h is not None and x.shape[2] > max_h) or (max_w is not None and x.shape[3] > max_w)):
        upper = f" and H <= {max_h}, W <= {max_w}" if max_h is not None else ""
        raise ValueError(
            f"expected input of shape (N, {channels}, H, W) with H >= {min_h} and W >= {min_w}{upper}, "
            f"got {tuple(x.shape)}"
        )
    return x
