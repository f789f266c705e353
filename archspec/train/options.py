"""The trainer's options: one argparse parser for ``archspec train`` and examples/train.py, and the
same options as keywords for :func:`archspec.train.fit`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

AMP_CHOICES = ("bf16", "fp16")


class UsageError(Exception):
    """A mistake in the options or their files: one line for the user, exit status 2, no traceback."""


def add_arguments(p: argparse.ArgumentParser, spec: bool = True) -> None:
    if spec:
        p.add_argument("spec", help="a spec YAML file, or zoo:NAME (archspec list)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set input.size=[64,64] (repeatable)",
    )
    p.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' (random images), 'digits' (scikit-learn's 8×8 digits, resized; every fifth held out "
        "for validation), or an ImageFolder root (one folder per class)",
    )
    p.add_argument("--val", help="an ImageFolder root (or 'digits') to report top-1/top-5 on after every epoch")
    p.add_argument(
        "--num-classes",
        type=int,
        metavar="N",
        help="the classifier's outputs (every aux head's too); default: as many as the data has classes",
    )
    p.add_argument(
        "--augment",
        choices=("imagenet", "none"),
        default="imagenet",
        help="training images of a folder: random resized crop and flip (imagenet), or only resized (none)",
    )
    p.add_argument("--synthetic-size", type=int, default=256, help="images in the synthetic data set")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        help="train for this many optimizer steps in all, however many epochs that takes (0: use --epochs)",
    )
    p.add_argument(
        "--stop-at",
        type=int,
        default=0,
        metavar="STEP",
        help="checkpoint and stop once this many steps are done (a job's time slice; go on with --resume)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--workers", type=int, default=2, help="data loader processes per training process")
    p.add_argument("--checkpoint", type=Path, help="where to save (and, with --resume, load) the training state")
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps (0: per epoch only)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint when it exists")
    p.add_argument(
        "--log-file", dest="log", type=Path, help="append JSON lines here: step, loss, lr, images/s; val top-1/top-5 per epoch"
    )
    p.add_argument("--log-every", type=int, default=10, help="steps between training records in --log-file")
    p.add_argument(
        "--weights-from",
        metavar="SOURCE",
        help="start from another network's weights (archspec.transfer: blocks paired as diff pairs them): a saved "
        "state_dict (.pt or .safetensors), or timm:NAME / torchvision:NAME (pretrained)",
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="start from the weights the network's reference publishes (timm's or torchvision's, by their loaders); "
        "a classifier resized for the data starts afresh",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--amp", choices=AMP_CHOICES, help="mixed precision: bf16, or fp16 with a gradient scaler (GPU)")
    p.add_argument("--channels-last", action="store_true", help="weights and images in channels_last memory format")
    p.add_argument("--compile", action="store_true", help="train through torch.compile")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parser(prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of a command line (``archspec train``'s, less ``train``)."""
    return parser().parse_args(argv)


def options(spec: Any, overrides: Mapping[str, Any] | Sequence[str] | None = None, **kwargs: Any) -> argparse.Namespace:
    """The options :func:`fit` takes as keywords, as a namespace the trainer reads; every default is
    the command line's. An unknown keyword is a TypeError naming it."""
    p = parser()
    args = p.parse_args(["-"])
    known = set(vars(args)) - {"spec", "overrides"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"fit() got unknown options {unknown}; it takes {sorted(known)}")
    for key, value in kwargs.items():
        setattr(args, key, Path(value) if key in ("checkpoint", "log") and value is not None else value)
    args.spec = spec
    if isinstance(overrides, Mapping):
        args.overrides = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    else:
        args.overrides = list(overrides or [])
    args.data, args.val = str(args.data), None if args.val is None else str(args.val)
    return args
