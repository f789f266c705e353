"""Train an archspec network: ``archspec train`` on the command line, :func:`fit` from Python.

    import archspec.train
    result = archspec.train.fit("zoo:resnet18", data="digits", epochs=3, overrides={"input.size": [32, 32]})
    result.metrics   # {"step": …, "epoch": 3, "loss": …, "lr": …, "val_top1": …, "val_top5": …, …}
    result.model     # the trained torch.nn.Module (eval() it before inference)

``fit(spec, overrides=None, **options) -> Fit``

- ``spec``: a spec file's path, ``zoo:NAME``, YAML text or a mapping (a variant made in Python).
- ``overrides``: ``{"input.size": [32, 32]}`` or ``["input.size=[32,32]"]`` (``--set``).
- ``options``: the command line's, as keywords (dashes as underscores; every default is the
  command line's): ``data`` ("synthetic", "digits" or an ImageFolder root), ``val``,
  ``num_classes``, ``epochs``, ``steps``, ``stop_at``, ``batch_size``, ``lr``, ``momentum``,
  ``weight_decay``, ``workers``, ``checkpoint``, ``save_every``, ``resume``, ``log`` (the
  ``--log-file``), ``log_every``, ``weights_from``, ``pretrained``, ``seed``, ``device``, ``amp``,
  ``channels_last``, ``compile``, ``no_progress``, ``augment``, ``synthetic_size``. An unknown
  keyword is a TypeError.
- returns a :class:`Fit`: ``model`` (unwrapped from DDP), ``metrics`` (the last epoch's record: step,
  epoch, mean training loss, lr, and val_top1/val_top5/val_loss/val_images when there is
  validation data; ``digits`` brings its own held-out fifth), ``history`` (every epoch's record)
  and ``loss`` (the last step's). A mistake in the options or files raises :class:`UsageError`
  (one line, what the command line prints), a mistake in the spec :class:`archspec.SpecError`.

Data: ``synthetic`` (random images, labels below the network's classes); ``digits`` (scikit-learn's
1,797 8×8 handwritten digits, shipped with it, resized to the spec's input size, every fifth held
out for validation); or a folder of one sub-folder of images per class (torchvision's ImageFolder).
Without ``num_classes``, a real data set sizes the classifier (and the aux heads') to its classes.

Processes: started by ``torchrun``, each process trains a DistributedDataParallel replica on its
shard of the data (NCCL on GPUs, gloo on CPU); auxiliary heads are trained with the loss weights the
spec gives them. ``amp`` bf16 or fp16 (a gradient scaler), ``channels_last`` and ``compile``
(torch.compile) as named.

Checkpoints are written atomically and hold everything a run depends on (weights, optimizer,
scheduler, gradient scaler, step and epoch, every process's random state; each image's augmentation
is seeded by (seed, epoch, image)): a run stopped at any step (``stop_at``, or a crash after a
checkpoint) and resumed ends bit-identical to one that never stopped. Resuming with another spec,
``--set``, number of classes, world size, batch size, seed or training-set size is refused, the
difference named; so is a file that is not such a checkpoint, checked part by part before use.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from archspec.train.options import UsageError, add_arguments, options, parse_args


@dataclass
class Fit:
    """What :func:`fit` returns."""

    model: Any
    loss: float
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def train(args: Any) -> Fit:
    """Train with parsed options (``parse_args`` or ``options``)."""
    from archspec.train.loop import Run
    from archspec.train.process import Context

    ctx = Context(args.device)
    try:
        from archspec.train.setup import check_options

        check_options(args, ctx)
        run = Run(args, ctx)
        try:
            model = run.loop()
        finally:
            run.bar.close()
        metrics = dict(run.history[-1]) if run.history else {"step": run.state["step"], "loss": run.last_loss}
        return Fit(model, run.last_loss, metrics, list(run.history))
    finally:
        ctx.close()


def fit(spec: Any, overrides: Mapping[str, Any] | Sequence[str] | None = None, **kwargs: Any) -> Fit:
    """Train ``spec`` (see the module's documentation for the options); returns a :class:`Fit`."""
    kwargs.setdefault("no_progress", True)
    kwargs.setdefault("workers", 0)
    return train(options(spec, overrides, **kwargs))


def run_command(args: Any) -> int:
    """Train and report a mistake as one line (on the first process only); the exit status."""
    from archspec.errors import SpecError

    try:
        train(args)
    except (UsageError, SpecError) as e:
        if os.environ.get("RANK", "0") == "0":
            print(e.format() if isinstance(e, SpecError) else f"error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``archspec train`` without the ``archspec``: examples/train.py's entry."""
    return run_command(parse_args(argv))


__all__ = ["Fit", "UsageError", "add_arguments", "fit", "main", "options", "parse_args", "train"]
