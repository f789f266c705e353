"""Write a spec's network as a standalone PyTorch module (a .py file that needs only torch).

The file defines one nn.Module class named after the spec (inception_v4 → InceptionV4) with
the spec's state_dict keys and a straight-line forward; copy it into any project. With
--weights, the file's state_dict is first checked to load strictly into that class.
"""

from __future__ import annotations

import argparse
import sys

from archspec.commands.args import common, overrides_of


def add_parser(p: argparse.ArgumentParser) -> None:
    common(p)
    p.add_argument("-o", "--output", metavar="FILE", help="the .py file to write (default: print it)")
    p.add_argument("--weights", metavar="FILE", help="a saved state_dict to check against the class (strict)")


def run(args: argparse.Namespace) -> int:
    from archspec import public

    if args.output and args.output != "-":
        from archspec.fileio import refuse_overwriting_inputs

        refuse_overwriting_inputs(args.output, args.spec, args.weights)
    source = public.compile(args.spec, overrides_of(args), weights=args.weights, max_params=args.max_params)
    if not args.output or args.output == "-":
        sys.stdout.write(source)
        return 0
    from archspec.fileio import write_atomic

    write_atomic(args.output, source)
    print(f"wrote {args.output}: {source.count(chr(10)):,} lines of Python that need only torch", file=sys.stderr)
    return 0
