"""Field types shared by op parameter models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

MAX_CHANNELS = 1 << 16
MAX_KERNEL = 1024


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
