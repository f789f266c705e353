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
    from archspec.api import analyze
    from archspec.codegen import generate

    if args.output and args.output != "-":
        from archspec.fileio import refuse_overwriting_inputs

        refuse_overwriting_inputs(args.output, args.spec, args.weights)
    report = analyze(args.spec, overrides_of(args), max_params=args.max_params)
    graph = report.graph
    if args.weights:
        from archspec.compile import compile_graph
        from archspec.export import load_weights

        load_weights(compile_graph(graph), args.weights)
    source = generate(graph, str(args.spec))
    if not args.output or args.output == "-":
        sys.stdout.write(source)
        return 0
    from archspec.fileio import write_atomic

    write_atomic(args.output, source)
    print(f"wrote {args.output}: class {_class_name(report.name)} ({report.params:,} parameters)", file=sys.stderr)
    return 0


def _class_name(name: str) -> str:
    from archspec.codegen import standalone_class_name

    return standalone_class_name(name)
