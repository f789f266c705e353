"""Training a variant briefly with the package's trainer (:func:`archspec.train.fit`), reporting its
validation error after every epoch to Optuna, whose pruner stops poor variants early.

The trainer returns only when it is done or stopped at a step, so a variant trains one epoch per call:
``stop_at`` one step past the epoch's end (the epoch's validation has run by then) with a checkpoint,
and the next call resumes from it. The trainer's resumed runs are bit-identical to uninterrupted ones,
so a variant's error is what ``archspec train SPEC --set ... --epochs E`` gives.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archspec.errors import SpecError
from archspec.sweep.space import LoadedSpace, Train


def trainer_for(space: LoadedSpace) -> Callable[..., Any] | None:
    """The function that trains one variant and returns its error, or None when the space trains nothing."""
    settings = space.model.train
    if settings is None:
        return None
    try:
        import archspec.train  # noqa: F401
    except ImportError as e:  # pragma: no cover - torch is a core dependency
        raise SpecError(f"training needs torch: {e}", space.loc("train", key=True), code="schema") from None

    settings = settings.model_copy(
        update={"data": _folder(space, "data", settings.data), "val": _folder(space, "val", settings.val)}
    )

    def train(space: LoadedSpace, overrides: dict[str, Any], trial: Any, record: dict[str, Any]) -> float:
        return train_variant(space, settings, overrides, trial, record)

    return train


def _folder(space: LoadedSpace, key: str, value: str | None) -> str | None:
    """``digits``/``synthetic`` as they are; a folder relative to the space file, which must exist."""
    if value is None or value in ("digits", "synthetic"):
        return value
    base = space.source.path.parent if space.source.path else Path.cwd()
    folder = (base / value).resolve()
    if not folder.is_dir():
        raise SpecError(
            f"no such folder: {value}",
            space.loc("train", key),
            code="io",
            hint=f"'digits', or an ImageFolder root (one folder per class), relative to {base}",
        )
    return str(folder)


def steps_per_epoch(space: LoadedSpace, settings: Train, overrides: dict[str, Any]) -> int:
    from archspec.api import check
    from archspec.train.data import dataset

    report = check(space.spec, overrides)
    data = dataset(settings.data, 256, settings.seed, "none", report.input_channels, report.input_size, 10)
    return max(1, len(data) // settings.batch_size)


def train_variant(space: LoadedSpace, settings: Train, overrides: dict[str, Any], trial: Any, record: dict[str, Any]) -> float:
    """Train for ``settings.epochs``, one epoch per call; after each, report 1 - top-1 and let the pruner
    decide. The error and the epochs done go into ``record`` (the trial's row) as they come."""
    import optuna

    from archspec.sweep.study import ATTR
    from archspec.train import fit

    per_epoch = steps_per_epoch(space, settings, overrides)
    epochs = settings.epochs
    error = 1.0
    with tempfile.TemporaryDirectory(prefix="archspec-sweep-") as tmp:
        checkpoint = Path(tmp) / "training.pt"
        for epoch in range(1, epochs + 1):
            with contextlib.redirect_stderr(io.StringIO()):  # the trainer's per-epoch lines: the table has them
                result = fit(
                    space.spec,
                    overrides,
                    data=settings.data,
                    val=settings.val,
                    epochs=epochs,
                    batch_size=settings.batch_size,
                    lr=settings.lr,
                    seed=settings.seed,
                    device=settings.device,
                    augment=settings.augment,
                    checkpoint=checkpoint,
                    resume=True,
                    stop_at=epoch * per_epoch + 1 if epoch < epochs else 0,
                )
            done = [h for h in result.history if h.get("epoch") == epoch and "val_top1" in h]
            if not done:
                raise SpecError(
                    "the training data has no validation part: name one",
                    space.loc("train", key=True),
                    code="schema",
                    hint="train: {data: DIR, val: DIR}",
                )
            error = 1.0 - float(done[-1]["val_top1"])
            record["metrics"]["error"] = round(error, 6)
            record["epochs"] = epoch
            trial.set_user_attr(ATTR, record)
            trial.report(error, epoch)
            if epoch < epochs and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}: error {error:.4f}")
    return error
