"""Field types shared by op parameter models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

MAX_CHANNELS = 1 << 16
MAX_KERNEL = 1024
FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max: the dtype a network is built in


def _fits_float32(v: float) -> float:
    if abs(v) > FLOAT32_MAX:
        raise ValueError(f"{v:g} does not fit the float32 tensor it starts (at most {FLOAT32_MAX:.8g} either way)")
    return v


# A float that becomes a value of a tensor (a layer scale's start): it must fit the dtype the tensor is
# built in, or building (and export) fails, or the network computes infinities.
TensorFloat = Annotated[float, AfterValidator(_fits_float32)]


def _to_pair(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("expected an integer or a pair [h, w], not a boolean")
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return (v[0], v[1])
    if isinstance(v, (list, tuple)) and len(v) == 1 and isinstance(v[0], int):
        return (v[0], v[0])
    raise ValueError("expected an integer or a pair [h, w] of integers")


def _positive(v: tuple[int, int]) -> tuple[int, int]:
    if min(v) < 1:
        raise ValueError("must be at least 1")
    if max(v) > MAX_KERNEL:
        raise ValueError(f"must be at most {MAX_KERNEL}")
    return v


def _non_negative(v: tuple[int, int]) -> tuple[int, int]:
    if min(v) < 0:
        raise ValueError("must not be negative")
    if max(v) > MAX_KERNEL:
        raise ValueError(f"must be at most {MAX_KERNEL}")
    return v


_PAIR_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}]}
)

PosPair = Annotated[tuple[int, int], BeforeValidator(_to_pair), AfterValidator(_positive), _PAIR_SCHEMA]
NonNegPair = Annotated[tuple[int, int], BeforeValidator(_to_pair), AfterValidator(_non_negative), _PAIR_SCHEMA]
Channels = Annotated[int, Field(ge=1, le=MAX_CHANNELS, strict=True)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
Eps = Annotated[float, Field(gt=0.0, lt=1.0)]
