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
from typing import Any


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


def _construct(source: str, kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """The model, and whether it is on the ``meta`` device. A timm or torchvision model is constructed
    there first: the import reads its structure, not its initial weights, and the check loads the
    built spec's weights into it (drawing a ResNet-50's takes its constructor about 0.3 s). A model
    whose constructor computes with tensor values, or that holds buffers outside its state_dict (which
    a load would not fill), is constructed on the CPU."""
    from archspec.errors import SpecError
    from archspec.importer.sources import load_model

    if source.partition(":")[0] in ("timm", "torchvision"):
        try:
            model = load_model(source, kwargs, device="meta")
        except SpecError:  # no such model, an argument it does not take: the same on the CPU
            raise
        except Exception:  # noqa: BLE001, S110 - a constructor that reads a tensor's value: built for real below
            pass
        else:
            if not any(getattr(m, "_non_persistent_buffers_set", None) for m in model.modules()):
                return model, True
    return load_model(source, kwargs), False


def run(args: argparse.Namespace) -> int:
    from archspec.importer import input_size_of, to_spec, verify
    from archspec.importer.sources import load_model, parse_args

    name = args.name or args.source.rpartition(":")[2]
    model, meta = _construct(args.source, parse_args(args.args))
    size = input_size_of(model, tuple(args.input_size) if args.input_size else None)
    result = to_spec(model, name=name, source=args.source, input_size=size)
    if meta and result.values_read:  # a value of its tensors is written: from a model constructed for real
        model, meta = load_model(args.source, parse_args(args.args)), False
        result = to_spec(model, name=name, source=args.source, input_size=size)
    if not args.no_check:
        verify(model, result.text, size, aux=result.aux, weights_from_spec=meta)
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
