"""`archspec export` against torch.onnx.export of the reference model, side by side (issue 26).

    python bench/export_bench.py [--models inception_v4,resnet50] [--out DIR]

For each model: torch.onnx.export of the reference (timm's inception_v4, torchvision's resnet50) with
the options archspec uses (the dynamo exporter, no optimizer pass, a dynamic batch, height and width),
then `archspec export zoo:NAME -o NAME.onnx`, then the reference again (the A/A column: how much two
runs of the same thing differ). Each export runs in a fresh process; its time is the export call
alone (the model built and the libraries imported before the clock starts), its memory the peak
resident set of the process minus the resident set just before the export. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REFERENCES = {"inception_v4": ("timm", "inception_v4", 299), "resnet50": ("torchvision", "resnet50", 224)}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def one(tool: str, name: str, out: str) -> dict[str, float]:
    """One export in this process: (seconds, peak MB above the resident set before it)."""
    import torch

    torch.manual_seed(0)
    if tool == "archspec":
        from archspec.api import build
        from archspec.export import export

        model = build(f"zoo:{name}")
        before = _rss_mb()
        t = time.perf_counter()
        export(model, out)
    else:
        library, ref, size = REFERENCES[name]
        if library == "timm":
            import timm

            model = timm.create_model(ref, pretrained=False).eval()
        else:
            import torchvision

            model = torchvision.models.get_model(ref, weights=None).eval()
        x = torch.randn(2, 3, size, size)
        dims = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
        before = _rss_mb()
        t = time.perf_counter()
        with torch.no_grad():
            torch.onnx.export(model, (x,), out, dynamo=True, optimize=False, dynamic_shapes=({**dims},), verbose=False)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": seconds, "mb": max(0.0, peak - before)}


def run(tool: str, name: str, folder: Path) -> dict[str, float]:
    out = folder / f"{tool}_{name}.onnx"
    proc = subprocess.run([sys.executable, __file__, "--one", tool, name, str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} {name} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="inception_v4,resnet50")
    p.add_argument("--one", nargs=3, metavar=("TOOL", "NAME", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(*args.one)))
        return 0
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {platform.python_version()}; one fresh process per export\n")
    print(
        "| model | torch.onnx.export s | archspec export s | time ratio | A/A time "
        "| torch MB | archspec MB | memory ratio | A/A memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            ref1 = run("torch", name, Path(tmp))
            ours = run("archspec", name, Path(tmp))
            ref2 = run("torch", name, Path(tmp))
            ref: dict[str, Any] = {k: (ref1[k] + ref2[k]) / 2 for k in ref1}
            print(
                f"| {name} | {ref['seconds']:.1f} | {ours['seconds']:.1f} | {ours['seconds'] / ref['seconds']:.2f} "
                f"| {ref2['seconds'] / ref1['seconds']:.2f} | {ref['mb']:.0f} | {ours['mb']:.0f} "
                f"| {ours['mb'] / max(ref['mb'], 1):.2f} | {ref2['mb'] / max(ref1['mb'], 1):.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
