"""Small functions the generated code calls at run time (kept tiny: they run on every forward)."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx


@torch.fx.wrap
def check_input(x: Any, channels: int, min_h: int, min_w: int, max_h: int | None = None,
                max_w: int | None = None, conditions: tuple[tuple[int, int, int, int, int], ...] = ()) -> Any:
    """Refuse inputs the network cannot process, with a clear message instead of a deep torch error.

    ``max_h``/``max_w`` are given only when a flatten fixes the size of a map that grows with the input;
    ``conditions`` (axis, a1, m1, a2, m2) only when merged branches agree at some sizes only: there
    floor((X + a1)/m1) must equal floor((X + a2)/m2) (m == 0: the constant a).
    """
    bad = x.dim() != 4 or x.shape[1] != channels or x.shape[2] < min_h or x.shape[3] < min_w
    bad = bad or (max_h is not None and x.shape[2] > max_h) or (max_w is not None and x.shape[3] > max_w)
    for axis, a1, m1, a2, m2 in conditions:
        if not bad:
            s = int(x.shape[2 + axis])
            bad = (a1 if m1 == 0 else (s + a1) // m1) != (a2 if m2 == 0 else (s + a2) // m2)
    if bad:
        upper = f", H <= {max_h} and W <= {max_w}" if max_h is not None or max_w is not None else ""
        some = " (and only sizes at which merged branches agree; see archspec check)" if conditions else ""
        raise ValueError(
            f"expected input of shape (N, {channels}, H, W) with H >= {min_h} and W >= {min_w}{upper}{some}, "
            f"got {tuple(x.shape)}"
        )
    return x
