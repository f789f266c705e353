"""Export a spec's network for other runtimes: ONNX (.onnx), torch.export (.pt2), TorchScript (.ts).

The format follows the output file's suffix. The model is exported in inference mode (main
output only) with a dynamic batch size. --weights loads a saved state_dict (or a training
checkpoint) strictly first; --optimize exports the graph after archspec's inference rewrites.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from archspec.commands.args import common, overrides_of


def add_parser(p: argparse.ArgumentParser) -> None:
    common(p)
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="the file to write: model.onnx, model.pt2 or model.ts")
    p.add_argument("--weights", metavar="FILE", help="a saved state_dict to load (strictly) before exporting")
    p.add_argument("--max-activations", type=int, default=None, metavar="N",
                   help="refuse to export when the example run computes more activation values (default 2**30)")
    p.add_argument("--weights-from", metavar="SOURCE",
                   help="carry weights from another network into this variant (archspec.transfer): a saved "
                        "state_dict, or timm:NAME / torchvision:NAME (that library's pretrained weights)")
    p.add_argument("--optimize", action="store_true",
                   help="export the optimized inference graph (BN folding and other rewrites)")


def run(args: argparse.Namespace) -> int:
    from archspec.export import to_onnx, writer_of

    writer = writer_of(args.output)  # before anything is built: a name that names no format is a mistake
    missing = [m for m in ("onnx", "onnxscript") if writer is to_onnx and importlib.util.find_spec(m) is None]
    if missing:
        print(f"archspec export: ONNX export needs the {' and '.join(missing)} package(s): "
              f"pip install {' '.join(missing)}", file=sys.stderr)
        return 2

    from archspec.api import build
    from archspec.export import export, load_weights
    from archspec.fileio import refuse_overwriting_inputs

    refuse_overwriting_inputs(args.output, args.spec, args.weights)

    model = build(args.spec, overrides_of(args), max_params=args.max_params)
    from archspec.export import MAX_ACTIVATIONS, check_activations

    check_activations(model, args.max_activations or MAX_ACTIVATIONS)  # before any weights are loaded
    report = model.archspec_report
    if args.weights:
        load_weights(model, args.weights)  # before any rewrite: the file has the spec's keys
    if args.weights_from:
        from archspec.transfer import transfer, weights_source

        print(transfer(weights_source(args.weights_from), model).table(), file=sys.stderr)
    if args.optimize:
        from archspec.optimize import optimize

        # the portable rewrites only: the fused conv+ReLU is a oneDNN (CPU) kernel that ONNX and
        # TorchScript cannot express, and memory layout is the runtime's business
        optimized = optimize(model, fuse_act=False, channels_last=False)
        optimized.archspec_report = report
        model = optimized
    from archspec.export import MAX_ACTIVATIONS

    export(model, args.output, args.max_activations or MAX_ACTIVATIONS)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
