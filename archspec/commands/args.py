"""The arguments every command shares (a spec, --set, --max-params, --debug), kept apart from cli.py
so that the command modules, which cli.py loads, never import cli.py back."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archspec.shapes import MAX_PARAMS


def common(parser: argparse.ArgumentParser, spec: bool = True) -> None:
    if spec:
        parser.add_argument("spec", type=spec_path, help="path to a spec YAML file, or zoo:NAME (archspec list)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set input.size=[331,331] (repeatable)",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME",
        help="a member of the spec's family (its variants:), e.g. --variant b1; the same as --set variant=NAME",
    )
    parser.add_argument("--max-params", type=int, default=MAX_PARAMS, help="refuse networks with more parameters")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def whole_number(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``least`` (``--depth``, ``--batch``, ``--jobs``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more")
        return value

    return parse


def spec_path(text: str) -> Path | str:
    """On the command line a spec argument is always a path, never YAML text (a missing nope.txt is
    "no such file", not a one-word spec), or ``zoo:NAME``, a network of archspec's zoo."""
    from archspec.library import is_zoo

    return text if is_zoo(text) else Path(text)


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    from archspec.language.overrides import parse_assignment

    result: dict[str, Any] = {}
    for a in args.overrides:
        key, value = parse_assignment(a)
        result[key] = value
    if getattr(args, "variant", None) is not None:
        result["variant"] = args.variant
    return result
