"""Train a network: synthetic data, scikit-learn's digits, or an ImageFolder; one process or many (torchrun).

    archspec train zoo:resnet18 --data digits --set input.size=[32,32] --epochs 3
    torchrun --nproc_per_node 4 -m archspec.cli train zoo:inception_v4 --data /data/imagenet/train --val /data/imagenet/val

Checkpoints resume bit-identically at any step (--checkpoint, --stop-at, --resume). The same is
archspec.train.fit(spec, **options) in Python.
"""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    from archspec.train.options import add_arguments

    add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from archspec.train import run_command

    return run_command(args)
