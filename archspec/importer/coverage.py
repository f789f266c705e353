"""Which models `archspec import` takes: the coverage table of docs/import.md.

    python -m archspec.importer.coverage            # prints the Markdown table
    python -m archspec.importer.coverage -o docs/import_coverage.md

Every torchvision classification model and a sample of timm CNN families is constructed on the
``meta`` device (no memory, no weights) and imported; a model that imports is then built for real
and *verified* — its state_dict loaded strictly into the built spec and the outputs compared on a
random input — when it has at most ``--verify-max-params`` parameters (bigger ones are marked
"spec written, not verified" so the table never claims more than was checked). A refused model
shows the first line of its error.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
from pathlib import Path
from typing import Any

ZOO = Path(__file__).resolve().parent.parent / "zoo"

TIMM_SAMPLE = [
    "inception_v3",
    "inception_v4",
    "inception_resnet_v2",
    "resnet50",
    "resnext50_32x4d",
    "seresnet50",
    "densenet121",
    "vgg16_bn",
    "mobilenetv2_100",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "regnety_016",
    "convnext_tiny",
    "xception41",
    "vit_small_patch16_224",
    "tf_efficientnet_b0",
    "cspresnet50",
    "resnetv2_50x1_bit",
    # networks written by hand from the docs alone (tests/specs_outside/, list C): layers that read their own tensors
    "hardcorenas_a",
    "repghostnet_050",
    "mobilenetv4_conv_small",
    "resnet50_gn",
    "poolformer_s12",
    "densenetblur121d",
]


# the zoo's hand-written specs against the import of their references: (library, model, zoo spec)
LINE_SOURCES = [("torchvision", f"resnet{d}", f"resnet{d}") for d in (18, 34, 50, 101, 152)] + [
    ("torchvision", "googlenet", "googlenet"),
    ("torchvision", "inception_v3", "inception_v3"),
    ("timm", "inception_v4", "inception_v4"),
    ("timm", "inception_resnet_v2", "inception_resnet_v2"),
    ("facenet-pytorch", "InceptionResnetV1", "facenet_inception_resnet_v1"),
    ("pretrainedmodels", "BNInception", "bn_inception"),
    ("timm", "seresnet50", "seresnet50"),
    ("torchvision", "resnext50_32x4d", "resnext50_32x4d"),
    ("torchvision", "mobilenet_v3_large", "mobilenet_v3_large"),
    ("torchvision", "densenet121", "densenet121"),
    ("torchvision", "shufflenet_v2_x1_0", "shufflenet_v2_x1_0"),
    ("torchvision", "efficientnet_b0", "efficientnet_b0"),
    ("torchvision", "convnext_tiny", "convnext_tiny"),
    ("timm", "tf_efficientnet_b0", "tf_efficientnet_b0"),
    ("timm", "cspresnet50", "cspresnet50"),
    ("timm", "resnetv2_50x1_bit", "resnetv2_50x1_bit"),
    # the dense (DAG) networks: torchvision's segmentation models and its ResNet-50 FPN backbone
    ("torchvision", "deeplabv3_resnet50", "deeplabv3_resnet50"),
    ("torchvision", "lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large"),
    ("torchvision", "resnet_fpn_backbone", "resnet50_fpn"),
]

# constructor arguments of the lines table's references beyond `weights=None`: no backbone weights to
# download (they change only the initial weights); the FPN backbone on ResNet-50, as the zoo's
CONSTRUCTOR_ARGS: dict[str, dict[str, Any]] = {
    "deeplabv3_resnet50": {"weights_backbone": None},
    "lraspp_mobilenet_v3_large": {"weights_backbone": None},
    "resnet_fpn_backbone": {"backbone_name": "resnet50"},
}


# the size a reference is imported at where the model does not say (no pretrained_cfg): facenet-pytorch
# takes 160×160 face crops (its MTCNN's image_size), as a user would pass with --input-size 160 160
INPUT_SIZES = {"facenet_inception_resnet_v1": (160, 160)}

LINES_HEADING = "## How long the imported specs are\n"
LINES_INTRO = (
    "\nLines of the imported spec (its two comment lines included) against the zoo's hand-written spec for the "
    "same network, with the block files it `use`s (`archspec/zoo/`, comments included); the blocks each "
    "defines (the zoo's: those its network uses); and what `archspec diff` finds between the two: the same "
    "network (ops, module paths, shapes, parameter and MAC counts) with rows whose block or parameter names "
    "differ (or the names of ops without tensors: timm's `act1: relu` for a zoo block's unnamed relu), or the "
    "rows that differ; a row of one `dropout 0` (the identity, which the import reads as no op) on one side only is no "
    "difference, and is named. Targets (issue 26): no more blocks than the zoo's, at most 1.2× its lines, the same "
    "network.\n\n"
)


def measured() -> str:
    """When and on what code the tables were made: the commit (when a git checkout, with `+` when its
    files differ from it) and the time, UTC."""
    import datetime
    import subprocess

    root = Path(__file__).resolve().parent.parent.parent
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--", "archspec")
    except (OSError, subprocess.CalledProcessError):
        return f"Measured {when}.\n"
    return f"Measured {when} on commit {commit}{'+' if dirty else ''}.\n"


def _construct(library: str, name: str, device: str) -> Any:
    import torch

    with torch.device(device):
        if library == "timm":
            import timm

            return timm.create_model(name, pretrained=False)
        if library == "facenet-pytorch":
            from facenet_pytorch import InceptionResnetV1

            return InceptionResnetV1(classify=True, num_classes=1000)
        if library == "pretrainedmodels":
            from pretrainedmodels.models.bninception import BNInception

            return BNInception(num_classes=1000)
        import torchvision

        if name == "resnet_fpn_backbone":
            from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

            return resnet_fpn_backbone(weights=None, **CONSTRUCTOR_ARGS[name])
        return torchvision.models.get_model(name, weights=None, **CONSTRUCTOR_ARGS.get(name, {}))


def hand_written_lines(stem: str) -> int:
    """Lines of a zoo spec and of the block files it uses (and those use)."""
    import yaml

    seen: set[Path] = set()

    def lines(path: Path) -> int:
        if path in seen:
            return 0
        seen.add(path)
        text = path.read_text()
        return text.count("\n") + sum(lines(path.parent / u) for u in yaml.safe_load(text).get("use", []))

    return lines(ZOO / f"{stem}.yaml")


def compare_with_zoo(text: str, stem: str) -> tuple[int, str]:
    """The zoo spec's number of blocks (those its network uses), and what `archspec diff` finds between
    the import and it: the same network (ops, module paths, shapes, counts), names aside, or what differs."""
    from archspec.diff import diff
    from archspec.summary import summarize

    zoo, imported = summarize(ZOO / f"{stem}.yaml"), summarize(text)
    used = {block for _, record in zoo.report.graph.records() for block, _ in record.blocks}
    d = diff(imported, zoo)
    # a row that computes nothing (an inception spec's `head_drop: dropout 0.0`, kept to show where the
    # paper's dropout goes; the import reads nn.Dropout(0.0) as no op) is no difference in the network
    nothing = [r for r in d.rows if r.status in ("added", "removed") and _computes_nothing(r.row)]
    # one row, the same ops at the same paths, written as a block instance on one side and in place on the other
    moved = _written_otherwise(d.rows)
    added, removed = (
        sum(1 for r in d.rows if r.status == s and r not in nothing and r not in moved) for s in ("added", "removed")
    )
    ops = [r for r in d.rows if any(o.status != "renamed" for o in r.ops)]
    if added or removed or ops or d.params_delta or d.macs_delta:
        what = f"{added} rows added, {removed} removed, {len(ops)} with other ops"
        return len(used), f"differs: {what}"
    names = sum(1 for r in d.rows if r.status == "changed") + sum(1 for r in moved if r.status == "added")
    notes = [f"{names} rows named otherwise"] if names else []
    notes += [f"`{r.row.ops[0].text}` at {r.row.path} only in the {'zoo' if r.status == 'added' else 'import'}" for r in nothing]
    return len(used), "same network" + (f" ({'; '.join(notes)})" if notes else "")


def _written_otherwise(rows: list[Any]) -> list[Any]:
    """Rows written otherwise on the two sides, with the same ops (op and short form of each, in order,
    and the path of each op with tensors): a block instance on one side and the same ops in place on
    the other (one row), or a block instance on one side and its parts as rows on the other (a stage
    written as a list of its layers)."""

    def ops(rs: list[Any]) -> list[tuple[str, str, str]]:  # an op without tensors may be named otherwise
        return [(o.path if o.params else "", o.op, o.text) for r in rs for o in r.row.ops]

    out: list[Any] = []
    for status, other in (("removed", "added"), ("added", "removed")):
        for r in rows:
            if r.status != status or r in out:
                continue
            path = r.row.path
            parts = [
                x
                for x in rows
                if x.status == other and x not in out and (x.row.path == path or x.row.path.startswith(path + "."))
            ]
            if parts and ops(parts) == ops([r]) and parts[-1].row.shape == r.row.shape:
                out += [r, *parts]
    return out


def _computes_nothing(row: Any) -> bool:
    """A row of one dropout at rate 0: the identity, in training mode too."""
    return len(row.ops) == 1 and row.ops[0].op == "dropout" and row.ops[0].text.split()[1:] in (["0"], ["0.0"])


def lines_table() -> str:
    """Lines of each import against the zoo's hand-written spec for the same network (unverified: the
    coverage table and tests/test_import.py verify these imports)."""
    from archspec.importer import input_size_of, to_spec

    rows = [
        "| source | imported | hand-written | ratio | blocks | zoo's blocks | `archspec diff` import → zoo |",
        "|---|---|---|---|---|---|---|",
    ]
    from archspec.errors import SpecError

    for library, name, stem in LINE_SOURCES:
        model = _construct(library, name, "cpu")
        hand = hand_written_lines(stem)
        try:
            result = to_spec(model, name=stem, input_size=input_size_of(model, INPUT_SIZES.get(stem)))
        except SpecError as e:
            rows.append(f"| {library} `{name}` | refused | `{stem}.yaml`: {hand} | | | | {e.message.splitlines()[0]} |")
            print(f"lines {library}:{name}: refused", file=sys.stderr)
            continue
        aux = f" (aux heads: {', '.join(result.aux)})" if result.aux else ""
        zoo_blocks, verdict = compare_with_zoo(result.text, stem)
        rows.append(
            f"| {library} `{name}`{aux} | {result.lines} | `{stem}.yaml`: {hand} | {result.lines / hand:.2f} "
            f"| {result.blocks} | {zoo_blocks} | {verdict} |"
        )
        print(f"lines {library}:{name}: {result.lines} / {hand}", file=sys.stderr)
        del model
        gc.collect()
    return "\n".join(rows) + "\n"


def check_one(library: str, name: str, verify_max_params: int) -> tuple[str, str]:
    """(status, detail) for one model."""
    from archspec.errors import SpecError
    from archspec.importer import input_size_of, to_spec, verify

    try:
        try:
            model = _construct(library, name, "meta")
        except (NotImplementedError, RuntimeError):  # an initialiser that reads tensors: build it for real
            model = _construct(library, name, "cpu")
        size = input_size_of(model, None)
        result = to_spec(model, name=name, input_size=size)
    except SpecError as e:
        return "refused", e.message.splitlines()[0]
    except Exception as e:  # noqa: BLE001 - the table reports what happened, whatever it was
        return "refused", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    params = result.params
    detail = f"{result.lines} lines, {result.blocks} blocks, {params / 1e6:.1f} M parameters"
    if params > verify_max_params:
        return "spec written, not verified", detail
    try:
        model = _construct(library, name, "cpu")
        verify(model, result.text, size, aux=result.aux)
    except SpecError as e:
        return "refused", e.message.splitlines()[0]
    finally:
        gc.collect()
    return "imported", detail


def _checked(job: tuple[str, str, int]) -> tuple[str, str, str, str]:
    library, name, verify_max_params = job
    t = time.time()
    status, detail = check_one(library, name, verify_max_params)
    print(f"{library}:{name}: {status} ({time.time() - t:.1f}s) {detail}", file=sys.stderr, flush=True)
    return library, name, status, detail


def _check_all(todo: list[tuple[str, str]], verify_max_params: int, jobs: int) -> list[tuple[str, str, str, str]]:
    """Each model's row, in the order given; with ``jobs`` > 1 in that many worker processes (one model
    per task)."""
    work = [(library, name, verify_max_params) for library, name in todo]
    if jobs <= 1:
        return [_checked(job) for job in work]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_checked, work))


def models(library: str) -> list[str]:
    if library == "timm":
        return TIMM_SAMPLE
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| library | model | result | detail |", "|---|---|---|---|"]
    for library, name, status, detail in rows:
        lines.append(f"| {library} | `{name}` | {status} | {detail.replace('|', '/')} |")
    counts: dict[str, int] = {}
    for _, _, status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return "\n".join(lines) + f"\n\n{len(rows)} models: {summary}.\n"


def update_rows(text: str, rows: list[tuple[str, str, str, str]]) -> str:
    """The coverage table ``text`` with these rows measured again: each replaces the row of its model, or is
    added after the last row of its library; the count under the table is made again, and the paragraph
    above it says which rows were measured when."""
    lines = text.splitlines()
    for library, name, status, detail in rows:
        row = table([(library, name, status, detail)]).splitlines()[2]
        start = f"| {library} | `{name}` |"
        at = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
        if at is None:
            at = max(i for i, line in enumerate(lines) if line.startswith(f"| {library} |")) + 1
            lines.insert(at, row)
        else:
            lines[at] = row
    statuses = [line.split("|")[3].strip() for line in lines if line.startswith(("| torchvision |", "| timm |"))]
    summary = table([("", "", status, "") for status in statuses]).splitlines()[-1]
    at = next(i for i, line in enumerate(lines) if re.match(r"^\d+ models: ", line))
    lines[at] = summary
    at = next(i for i, line in enumerate(lines) if line.startswith("Verified: "))
    when = measured().strip().removeprefix("Measured ")
    names = ", ".join(f"{library} `{name}`" for library, name, _, _ in rows)
    lines[at] = re.sub(r" Rows measured again .*$", "", lines[at]) + f" Rows measured again ({names}): {when}"
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", help="write the Markdown table here (default: print it)")
    p.add_argument(
        "--verify-max-params", type=int, default=150_000_000, help="build and verify imported models up to this many parameters"
    )
    p.add_argument("--only", nargs="*", help="only these model names")
    p.add_argument("--lines-only", action="store_true", help="rewrite only the section on how long the imports are, in --output")
    p.add_argument("-j", "--jobs", type=int, default=1, help="models checked at once, each in its own process")
    p.add_argument(
        "--update", action="store_true", help="with --only and --output: measure those models again and rewrite their rows only"
    )
    args = p.parse_args(argv)
    if args.update:
        if not (args.output and args.only):
            p.error("--update rewrites the rows of --only models in --output")
        from archspec.fileio import write_atomic

        todo = [(lib, name) for lib in ("torchvision", "timm") for name in models(lib) if name in args.only]
        write_atomic(args.output, update_rows(Path(args.output).read_text(), _check_all(todo, args.verify_max_params, args.jobs)))
        return 0
    if args.lines_only:
        if not args.output:
            p.error("--lines-only rewrites a section of --output")
        from archspec.fileio import write_atomic

        before = Path(args.output).read_text().split(LINES_HEADING)[0]
        write_atomic(args.output, before + LINES_HEADING + LINES_INTRO + measured() + "\n" + lines_table())
        return 0
    todo = [(lib, name) for lib in ("torchvision", "timm") for name in models(lib) if not args.only or name in args.only]
    rows = _check_all(todo, args.verify_max_params, args.jobs)
    header = (
        "<!-- generated by `python -m archspec.importer.coverage -o docs/import_coverage.md`; "
        "do not edit by hand -->\n\n# archspec import: coverage\n\n"
        f"Verified: imported, built, the model's state_dict loaded with strict=True and the outputs "
        f"compared on a random input (models up to {args.verify_max_params / 1e6:.0f} M parameters); "
        "aux heads (torchvision's googlenet and inception_v3) also in training mode. " + measured() + "\n"
    )
    text = header + table(rows)
    if not args.only:
        text += "\n" + LINES_HEADING + LINES_INTRO + measured() + "\n" + lines_table()
    if args.output:
        from archspec.fileio import write_atomic

        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
