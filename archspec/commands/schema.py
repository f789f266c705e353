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

        write_atomic(args.output, text)
    else:
        print(text, end="")
    return 0
