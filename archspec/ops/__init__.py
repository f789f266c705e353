"""Op families; importing this package fills the registry."""

from archspec.ops import (  # noqa: F401
    act,
    affine,
    attention_pool,
    branch_select,
    branch_sum,
    channel_conv,
    channels,
    conv,
    l2_norm,
    linear,
    merge,
    norm,
    pool,
    prelu,
    resize,
    space_to_depth,
    weighted_sum,
)
from archspec.ops.registry import REGISTRY, Op, OpParams, OpShapeError, register

__all__ = ["REGISTRY", "Op", "OpParams", "OpShapeError", "register"]
