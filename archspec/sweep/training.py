"""Training a variant briefly with the package's trainer, reporting its validation error each epoch to
Optuna so that its pruner stops poor variants early."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archspec.errors import SpecError
from archspec.sweep.space import LoadedSpace


def trainer_for(space: LoadedSpace) -> Callable[..., Any] | None:
    """The function that trains one variant and returns its error, or None when the space trains nothing."""
    if space.model.train is None:
        return None
    raise SpecError(
        "training variants in a sweep needs the package's trainer, which this version lacks",
        space.loc("train", key=True),
        code="schema",
        hint="remove train: (the sweep then measures the static costs and the latency), or use --static",
    )
