"""Print the JSON Schema of the spec language (for editors), or write it to a file.

Point an editor at it with a first line ``# yaml-language-server: $schema=../docs/archspec.schema.json``
(the zoo's specs do). ``--blocks`` gives the schema of a shared block library (``use:`` files).
"""

from __future__ import annotations

import argparse


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blocks", action="store_true", help="the schema of a block library instead of a spec")
    p.add_argument("-o", "--output", metavar="FILE", help="write the schema to FILE instead of printing it")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def run(args: argparse.Namespace) -> int:
    from archspec.schema import schema_text

    text = schema_text("blocks" if args.blocks else "spec")
    if args.output:
        from archspec.fileio import write_atomic

        # the schema is often written next to the specs: never over one of them
        _refuse_spec(args.output)
        write_atomic(args.output, text)
    else:
        print(text, end="")
    return 0


def _refuse_spec(output: str) -> None:
    """A YAML file that exists is a spec or a block library: the JSON schema must not replace it."""
    from pathlib import Path

    from archspec.errors import Loc, SpecError, printable

    path = Path(output)
    if path.suffix.lower() in (".yaml", ".yml") and path.exists():
        raise SpecError(
            f"{printable(output)} exists and is a YAML file (a spec?); the schema would replace it",
            Loc(printable(output), 0, 0),
            code="io",
            hint="write the schema to a .json file, e.g. docs/archspec.schema.json",
        )
