"""Sample variants of a spec from a design space, reject what breaks a constraint, measure the rest.

`archspec sweep SPACE` samples the space's parameters with Optuna, rejects statically (never built)
every variant that breaks a constraint or does not check, and measures the others: the costs
`check` computes, the latency of the optimised model, and, when the space says `train:`, the error
after a short training (poor variants pruned early). The study lives in a journal file in --out (or
any database URL Optuna accepts, --storage), so an interrupted sweep resumes where it stopped and
`--worker` processes on other machines join it. --out DIR receives results.csv, results.json,
specs/trial-N.yaml (each accepted variant as a standalone spec), EDF and Pareto plots and index.html.
`--compare A B` plots the EDFs of two sweeps' results side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from archspec.commands.args import whole_number


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", nargs="?", type=Path, help="a space YAML file (docs/sweep.md)")
    p.add_argument("--trials", type=whole_number(0), metavar="N", help="measured variants wanted (default: the space's trials:)")
    p.add_argument("--static", action="store_true", help="measure only what check computes (no torch, no building)")
    p.add_argument("--storage", metavar="URL", help="a journal file or a database URL (sqlite:///x.db, postgresql://...)")
    p.add_argument("--worker", action="store_true", help="join the study and run trials; write no results")
    p.add_argument("--out", type=Path, metavar="DIR", help="results folder (default: NAME.sweep)")
    p.add_argument("--jobs", type=whole_number(0), default=1, metavar="N", help="worker processes on this machine (default 1)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="plot the EDFs of two results folders")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def run(args: argparse.Namespace) -> int:
    if args.compare:
        from archspec.sweep.compare import compare

        print(compare(args.compare[0], args.compare[1], args.out or Path(".")))
        return 0
    if args.space is None:
        print("archspec sweep: error: give a SPACE file, or --compare A B", file=sys.stderr)
        return 2
    try:
        import optuna  # noqa: F401
    except ImportError:
        print("archspec sweep: error: sweeps need Optuna: pip install 'archspec[sweep]'", file=sys.stderr)
        return 2
    from archspec.sweep import load_space, sweep

    space = load_space(args.space)
    out = args.out or Path(f"{space.name}.sweep")
    counts = sweep(
        space,
        trials=args.trials,
        static=args.static,
        storage=args.storage,
        out=out,
        report=not args.worker,
        jobs=max(1, args.jobs),
    )
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    if not args.worker:
        print(f"wrote {out / 'results.csv'}, {out / 'index.html'} and the variants' specs in {out / 'specs'}")
    return 0
