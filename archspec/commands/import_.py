"""Import a PyTorch model as a spec: timm:NAME, torchvision:NAME or path/to/model.py:ClassName.

The model is traced with torch.fx; its branch graph (chains, concats, residual sums, gates, dense
layers, and the training-only aux heads of a second trace in training mode) is written with
blocks for repeated structure and the model's own module names, so its state_dict loads into the
built spec with strict=True. Before writing, the spec is built, loaded with the model's weights
and checked to give the model's outputs (aux heads: in training mode). What a spec cannot express
is an error naming the fx node, the module and the source line.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="timm:NAME, torchvision:NAME or path/to/model.py:ClassName")
    p.add_argument("-o", "--output", metavar="FILE", help="the spec to write (default: print it)")
    p.add_argument("--args", metavar="JSON", help="constructor keyword arguments, e.g. '{\"aux_logits\": false}'")
    p.add_argument("--name", help="the spec's name (default: the model's)")
    p.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), help="the spec's input size (default: the model's, else 224 224)"
    )
    p.add_argument("--no-check", action="store_true", help="skip building the spec and comparing its outputs with the model's")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def run(args: argparse.Namespace) -> int:
    from archspec.importer import input_size_of, to_spec, verify
    from archspec.importer.sources import load_model, parse_args

    model = load_model(args.source, parse_args(args.args))
    name = args.name or args.source.rpartition(":")[2]
    size = input_size_of(model, tuple(args.input_size) if args.input_size else None)
    result = to_spec(model, name=name, source=args.source, input_size=size)
    if not args.no_check:
        verify(model, result.text, size, aux=result.aux)
    if not args.output or args.output == "-":
        sys.stdout.write(result.text)
    else:
        from archspec.fileio import write_atomic

        write_atomic(args.output, result.text)
        aux = f", aux heads {', '.join(result.aux)}" if result.aux else ""
        print(
            f"wrote {args.output}: {result.name}, {result.lines} lines, {result.blocks} blocks, "
            f"{result.params:,} parameters{aux}{'' if args.no_check else ', outputs checked'}",
            file=sys.stderr,
        )
    return 0
