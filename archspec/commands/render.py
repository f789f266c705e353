"""Draw a spec as a diagram: the network, one block like the paper's figure, or every op.

The output format follows FILE's extension: .svg, .png, .pdf (drawn by Graphviz's `dot`),
.html (one self-contained interactive page: every view, blocks that unfold in place, search,
pan and zoom, each box's numbers) or .dot/.gv (the Graphviz source, which needs no `dot`). Edges carry tensor shapes C×H×W at the
spec's input size, or with --symbolic as formulas of the input's H and W.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from archspec.commands.args import common, overrides_of, whole_number
from archspec.errors import Loc, SpecError

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".html": "html", ".dot": None, ".gv": None}
NO_DOT = (
    "archspec render: Graphviz's `dot` program was not found on PATH; install Graphviz "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), or write a .dot file"
)


def add_parser(p: argparse.ArgumentParser) -> None:
    common(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="where to write the diagram; format by extension: " + ", ".join(FORMATS),
    )
    p.add_argument(
        "--block",
        metavar="NAME",
        help="draw one block like the paper's figure: a block name (its first instance), "
        "or an instance's or stage's path (layer3.0, features.8, layer3) with its own parameters",
    )
    p.add_argument("--expand", action="store_true", help="draw every op, block instances as clusters")
    p.add_argument(
        "--depth",
        type=whole_number(0),
        metavar="N",
        help="with --expand: open blocks nested up to N levels, keep deeper ones closed (implies --expand)",
    )
    p.add_argument(
        "--symbolic",
        action="store_true",
        help="label edges with shape formulas in H and W (each grid size spelt out once, then C×…)",
    )
    p.add_argument(
        "--primitives", action="store_true", help="draw a composite op as its primitives (conv as conv2d, BatchNorm, ReLU boxes)"
    )
    p.add_argument(
        "--all-instances", action="store_true", help="draw every instance of a repeated block instead of one instance marked ×N"
    )


def output_format(path: str) -> str | None:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise SpecError(
            f"cannot tell the diagram format from {path!r}",
            Loc(path, 0, 0),
            code="io",
            hint="end the file name in " + ", ".join(FORMATS),
        )
    return FORMATS[suffix]


def run(args: argparse.Namespace) -> int:
    import graphviz

    from archspec import public
    from archspec.fileio import refuse_overwriting_inputs

    refuse_overwriting_inputs(args.output, args.spec)
    fmt = output_format(args.output)
    if fmt == "html":
        return _page(args)
    dot = public.render(
        args.spec,
        overrides_of(args),
        block=args.block,
        expand=args.expand or args.depth is not None,
        depth=args.depth,
        symbolic=args.symbolic,
        primitives=args.primitives,
        fold=not args.all_instances,
        max_params=args.max_params,
    )
    if fmt is None:
        data = dot.source.encode("utf-8", errors="backslashreplace")
    else:
        try:
            data = dot.pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            print(NO_DOT, file=sys.stderr)
            return 2
    from archspec.fileio import write_atomic

    write_atomic(args.output, data)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _page(args: argparse.Namespace) -> int:
    import graphviz

    from archspec import public
    from archspec.fileio import write_atomic

    chosen = [
        flag
        for flag, on in (
            ("--block", args.block),
            ("--expand", args.expand),
            ("--depth", args.depth is not None),
            ("--symbolic", args.symbolic),
            ("--primitives", args.primitives),
            ("--all-instances", args.all_instances),
        )
        if on
    ]
    if chosen:
        print(
            f"archspec render: {', '.join(chosen)} choose one static drawing; an .html page holds every view "
            "(unfold blocks in it, hover for formulas): drop the option or write .svg/.png/.pdf",
            file=sys.stderr,
        )
        return 2
    try:
        text = public.render_page(args.spec, overrides_of(args), max_params=args.max_params)
    except graphviz.ExecutableNotFound:
        print(NO_DOT, file=sys.stderr)
        return 2
    write_atomic(args.output, text)  # str: a lone surrogate (a file name's undecodable byte) is escaped
    print(f"wrote {args.output}: {Path(args.output).stat().st_size:,} bytes", file=sys.stderr)
    return 0
