"""Export a spec's network for other runtimes: ONNX, torch.export (.pt2), TorchScript (.ts); or its weights.

The format follows the output file's suffix. The model is exported in inference mode (main
output only) for any batch and, in ONNX and .pt2, for the input sizes the network accepts (an
axis torch.export cannot keep is fixed at the spec's size, with a printed note). --weights loads a
saved state_dict (or a training checkpoint) strictly first; --optimize exports the graph after
archspec's inference rewrites. A .safetensors file holds the weights alone (with the network's name
and spec digest in its header); --weights and --weights-from read .safetensors files too.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from archspec.commands.args import common, overrides_of


def add_parser(p: argparse.ArgumentParser) -> None:
    common(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        required=True,
        help="the file to write: model.onnx, model.pt2, model.ts or model.safetensors (the weights). "
        "ONNX and .pt2 take any batch and "
        "the image sizes the network accepts (see archspec check); where torch.export cannot "
        "keep them, an axis is fixed at the spec's size and a note says why",
    )
    p.add_argument(
        "--weights", metavar="FILE", help="a saved state_dict (.pt or .safetensors) to load (strictly) before exporting"
    )
    p.add_argument(
        "--max-activations",
        type=int,
        default=None,
        metavar="N",
        help="refuse to export when the example run computes more activation values (default 2**30)",
    )
    p.add_argument(
        "--weights-from",
        metavar="SOURCE",
        help="carry weights from another network into this variant (archspec.transfer): a saved "
        "state_dict, or timm:NAME / torchvision:NAME (that library's pretrained weights)",
    )
    p.add_argument("--optimize", action="store_true", help="export the optimized inference graph (BN folding and other rewrites)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors (no progress, notes or 'wrote FILE')")


def run(args: argparse.Namespace) -> int:
    from archspec.export import format_of

    suffix = format_of(args.output)  # before anything is built: a name that names no format is a mistake
    missing = [m for m in ("onnx", "onnxscript") if suffix == ".onnx" and importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"archspec export: ONNX export needs the {' and '.join(missing)} package(s): pip install {' '.join(missing)}",
            file=sys.stderr,
        )
        return 2

    from archspec import public
    from archspec.fileio import refuse_overwriting_inputs
    from archspec.report import MAX_ACTIVATIONS

    refuse_overwriting_inputs(args.output, args.spec, args.weights)
    shapes = public.export(
        args.spec,
        args.output,
        overrides_of(args),
        weights=args.weights,
        weights_from=args.weights_from,
        optimize=args.optimize,
        max_params=args.max_params,
        max_activations=args.max_activations or MAX_ACTIVATIONS,
        progress=_silent if args.quiet else _progress,
        log=_silent if args.quiet else _log,
    )
    if args.quiet:
        return 0
    for note in shapes.notes if shapes is not None else ():
        print(f"archspec export: note: {note}", file=sys.stderr)
    takes = "" if shapes is None else f" (input sizes: any batch, {shapes.describe()})"
    print(f"wrote {args.output}{takes}", file=sys.stderr)
    return 0


def _log(text: str) -> None:
    print(text, file=sys.stderr)


def _progress(phase: str) -> None:
    print(f"archspec export: {phase} …", file=sys.stderr, flush=True)


def _silent(phase: str) -> None:
    pass
