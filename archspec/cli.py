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
from typing import Any

from archspec.commands.args import common, overrides_of, spec_path  # noqa: F401 - re-exported for callers
from archspec.errors import SpecError, printable

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
    "train": "train",
    "sweep": "sweep",
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archspec", description="Convolutional network architectures as data.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"archspec.commands.{module}")
        summary = mod.__doc__.strip().splitlines()[0] if mod.__doc__ else None
        # argparse %-formats help strings (for %(default)s); a literal % in a docstring must be doubled
        p = sub.add_parser(name, help=summary.replace("%", "%%") if summary else None, description=mod.__doc__)
        mod.add_parser(p)
        p.set_defaults(_run=mod.run)
    return parser


def _version() -> str:
    from archspec.version import __version__

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
    args, extras = parser.parse_known_args(argv)
    # an optional positional written after options (diff A --set-b k=v B): argparse stops matching
    # positionals at the first option, so a command names the ones that may come late
    for name, convert in getattr(args, "_late_positionals", ()):
        if extras and getattr(args, name) is None and not extras[0].startswith("-"):
            setattr(args, name, convert(extras.pop(0)))
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    debug = getattr(args, "debug", False)
    stdout = sys.stdout
    sys.stdout = _Printable(stdout)
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
        print(
            f"internal error: {type(e).__name__}: {printable(str(e))} — this is a bug in archspec; rerun with "
            "--debug for the traceback and report it",
            file=sys.stderr,
        )
        return 1
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
