"""The ``archspec`` command line.

Exit codes: 0 success, 2 a user error (one or two lines on stderr, starting FILE:LINE:COL:),
1 a bug in archspec (one line; the traceback only with --debug).
Each subcommand lives in ``archspec/commands/<name>.py`` and exposes ``add_parser`` and ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archspec.errors import SpecError, printable
from archspec.shapes import MAX_PARAMS

# name → module in archspec.commands; importing lazily keeps `archspec check` free of torch
COMMANDS = {
    "check": "check",
    "render": "render",
    "summary": "summary",
    "diff": "diff",
    "schema": "schema",
    "compile": "compile",
    "export": "export",
    "list": "list_zoo",
    "import": "import_",
}


def common(parser: argparse.ArgumentParser, spec: bool = True) -> None:
    if spec:
        parser.add_argument("spec", type=spec_path, help="path to a spec YAML file, or zoo:NAME (archspec list)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec value, e.g. --set input.size=[331,331] (repeatable)")
    parser.add_argument("--max-params", type=int, default=MAX_PARAMS, help="refuse networks with more parameters")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def spec_path(text: str) -> Path | str:
    """On the command line a spec argument is always a path, never YAML text (a missing nope.txt is
    "no such file", not a one-word spec), or ``zoo:NAME``, a network of archspec's zoo."""
    from archspec.library import is_zoo

    return text if is_zoo(text) else Path(text)


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    from archspec.overrides import parse_assignment

    result: dict[str, Any] = {}
    for a in args.overrides:
        key, value = parse_assignment(a)
        result[key] = value
    return result


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archspec", description="Convolutional network architectures as data.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"archspec.commands.{module}")
        p = sub.add_parser(name, help=mod.__doc__.strip().splitlines()[0] if mod.__doc__ else None,
                           description=mod.__doc__)
        mod.add_parser(p)
        p.set_defaults(_run=mod.run)
    return parser


def _version() -> str:
    from archspec import __version__

    return f"archspec {__version__}"


class _Printable:
    """stdout that escapes what a terminal would act on: text printed from a spec (labels, names, file
    names) cannot carry ANSI escape sequences or other control characters, nor lone surrogates."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write("\n".join(printable(line) for line in text.split("\n")))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    stdout = sys.stdout
    sys.stdout = _Printable(stdout)  # type: ignore[assignment]
    try:
        return int(args._run(args) or 0)
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a bare traceback
        if debug:
            traceback.print_exc()
        print(f"internal error: {type(e).__name__}: {printable(str(e))} — this is a bug in archspec; rerun with "
              "--debug for the traceback and report it", file=sys.stderr)
        return 1
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
