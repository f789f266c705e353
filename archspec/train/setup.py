"""Before the first step: the options checked, the spec found and sized for the data, the model built."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archspec.errors import SpecError
from archspec.train.checkpoint import writable_folder
from archspec.train.data import DIGITS, SYNTHETIC, classes_of, dataset
from archspec.train.options import UsageError
from archspec.train.process import Context


def check_options(args: argparse.Namespace, ctx: Context) -> None:
    if args.amp == "fp16" and ctx.device.type != "cuda":
        raise UsageError("--amp fp16 needs a GPU (float16 training uses a gradient scaler); on CPU use --amp bf16")
    if args.stop_at and not args.checkpoint:
        raise UsageError("--stop-at needs --checkpoint (where to save the state to resume from)")
    if args.batch_size < 1 or args.steps < 0 or args.epochs < 1 or args.stop_at < 0 or args.synthetic_size < 1:
        raise UsageError("--batch-size, --epochs and --synthetic-size must be at least 1, --steps and --stop-at at least 0")
    if args.save_every < 0 or args.log_every < 1 or args.workers < 0:
        raise UsageError("--save-every and --workers must be at least 0, --log-every at least 1")
    if args.val == DIGITS and args.data != DIGITS:
        raise UsageError("--val digits goes with --data digits (the held-out fifth of the same images)")
    spec = args.spec
    if isinstance(spec, (str, Path)) and not str(spec).startswith("zoo:") and "\n" not in str(spec):
        if not Path(spec).is_file():
            raise UsageError(f"{spec}: no such spec file")
    error = None
    if ctx.main:
        for path, what in ((args.checkpoint, "the checkpoint"), (args.log, "the log file")):
            if path is not None and error is None:
                error = writable_folder(path, what)
    ctx.agree(error)


def spec_name(spec: Any, report: Any) -> str:
    """How a checkpoint names the spec: its path or zoo name, or the network's name for text."""
    if isinstance(spec, (str, Path)) and "\n" not in str(spec):
        return str(spec)
    return str(report.name)


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    from archspec.language.overrides import parse_assignment

    return dict(parse_assignment(a) for a in args.overrides)


def sized(args: argparse.Namespace, overrides: Mapping[str, Any], ctx: Context) -> tuple[dict[str, Any], Any, Any]:
    """The overrides with the classifier sized for the data, the training set, and the report.

    ``--num-classes`` sets every classifier; without it a real data set's class count does (said on
    stderr when that changes the spec's), and synthetic labels follow the network.
    """
    from archspec.api import check
    from archspec.heads import check_classes, head_overrides

    report = check(args.spec, overrides)
    hw, channels, classes = report.input_size, report.input_channels, int(report.output_shape[-1])
    data = dataset(args.data, args.synthetic_size, args.seed, args.augment, channels, hw, classes)
    wanted = args.num_classes
    if wanted is not None:
        try:
            check_classes(wanted, "--num-classes")
        except SpecError as e:
            raise UsageError(e.message) from None
        if wanted < 1:
            raise UsageError("--num-classes must be at least 1 to train")
    found = classes_of(data)
    if wanted is None and found is not None and found != classes:
        wanted = found
        if ctx.main:
            print(
                f"the data has {found} classes: the classifier predicts {found}, not {classes} (--num-classes)", file=sys.stderr
            )
    merged = dict(overrides)
    if wanted is not None and wanted != classes:
        merged = head_overrides(args.spec, overrides, wanted)
        report = check(args.spec, merged)
        if args.data == SYNTHETIC:
            data = dataset(args.data, args.synthetic_size, args.seed, args.augment, channels, hw, wanted)
    predicted = int(report.output_shape[-1])
    if found is not None and found > predicted:
        raise UsageError(
            f"{args.data} has {found} classes but the network predicts {predicted}; "
            f"set the classifier's size with --num-classes {found}"
        )
    return merged, data, report
