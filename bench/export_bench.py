"""`archspec export` against torch.onnx.export of the reference model, side by side (issue 26).

    python bench/export_bench.py [--models inception_v4,resnet50] [--one-file] [--no-whole]

For each model: torch.onnx.export of the reference (timm's inception_v4, torchvision's resnet50) with
the options archspec uses (the dynamo exporter, no optimizer pass, a dynamic batch, height and width),
then `archspec export zoo:NAME -o NAME.onnx`, then the reference again (the A/A column: how much two
runs of the same thing differ). The reference writes its weights as torch.onnx.export does by
default, to a second file beside the model (`--one-file`: into the model, as archspec does).

Each export runs in a fresh process that imports the same libraries (torch, timm, torchvision, onnx,
onnxscript, archspec) and builds its model before the clock starts, so that only the export's own
work is compared; its time is the export call alone (wall clock, and the process's CPU time, which a
loaded machine disturbs less), its memory the peak resident set of the process minus the resident
set just before the export. Prints Markdown.

A second table compares what a user waits for and what the machine must hold, whole processes
as each is run: `archspec export zoo:NAME -o NAME.onnx -q` (the CLI: its imports, building the
network from the spec, the export) against a script that imports torch and the reference's library
only, makes the model and calls torch.onnx.export as above; wall time and the process's peak
resident set (from wait4), the reference run before and after archspec's (the A/A column).
"""

from __future__ import annotations

import argparse
import json
import os
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
    """One export in this process: seconds (wall and CPU) and peak MB above the resident set before it."""
    import onnx  # noqa: F401 - the same libraries loaded in every process, before the clock
    import onnx_ir  # noqa: F401
    import onnxscript  # noqa: F401
    import timm
    import torch
    import torchvision

    from archspec.api import build
    from archspec.export import export

    torch.manual_seed(0)
    library, ref, size = REFERENCES[name]
    if tool == "archspec":
        model = build(f"zoo:{name}")
    elif library == "timm":
        model = timm.create_model(ref, pretrained=False).eval()
    else:
        model = torchvision.models.get_model(ref, weights=None).eval()
    x = torch.randn(2, 3, size, size)
    dims = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    before = _rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    if tool == "archspec":
        export(model, out)
    else:
        with torch.no_grad():
            torch.onnx.export(
                model,
                (x,),
                out,
                dynamo=True,
                optimize=False,
                dynamic_shapes=({**dims},),
                verbose=False,
                external_data=tool == "torch",  # "torch-one-file": the weights inside the model, as archspec writes them
            )
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": seconds, "cpu": cpu, "mb": max(0.0, peak - before)}


def run(tool: str, name: str, folder: Path) -> dict[str, float]:
    out = folder / f"{tool}_{name}.onnx"
    proc = subprocess.run([sys.executable, __file__, "--one", tool, name, str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} {name} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


WHOLE_REFERENCE = """
import sys, torch
library, name, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if library == "timm":
    import timm
    model = timm.create_model(name, pretrained=False).eval()
else:
    import torchvision
    model = torchvision.models.get_model(name, weights=None).eval()
dims = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
with torch.no_grad():
    torch.onnx.export(model, (torch.randn(2, 3, size, size),), out, dynamo=True, optimize=False,
                      dynamic_shapes=(dims,), verbose=False)
"""


def whole(tool: str, name: str, folder: Path) -> dict[str, float]:
    """One whole process as a user runs it: wall seconds and its peak resident set in MB."""
    out = str(folder / f"whole_{tool}_{name}.onnx")
    library, ref, size = REFERENCES[name]
    if tool == "archspec":
        command = [sys.executable, "-c", "import sys; from archspec.cli import main; sys.exit(main(sys.argv[1:]))"]
        command += ["export", f"zoo:{name}", "-o", out, "-q"]
    else:
        command = [sys.executable, "-c", WHOLE_REFERENCE, library, ref, str(size), out]
    t = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    errors = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{tool} {name} (whole process) failed:\n{errors[-3000:]}")
    return {"seconds": seconds, "mb": usage.ru_maxrss / 1024}


def whole_table(names: list[str], folder: Path) -> None:
    print(
        "\n| model | torch script s | archspec CLI s | time ratio | A/A time "
        "| torch peak MB | archspec peak MB | memory ratio | A/A memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        ref1, ours, ref2 = whole("torch", name, folder), whole("archspec", name, folder), whole("torch", name, folder)
        ref = {k: (ref1[k] + ref2[k]) / 2 for k in ref1}
        print(
            f"| {name} | {ref['seconds']:.1f} | {ours['seconds']:.1f} | {ours['seconds'] / ref['seconds']:.2f} "
            f"| {ref2['seconds'] / ref1['seconds']:.2f} | {ref['mb']:.0f} | {ours['mb']:.0f} "
            f"| {ours['mb'] / ref['mb']:.2f} | {ref2['mb'] / ref1['mb']:.2f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="inception_v4,resnet50")
    p.add_argument("--one-file", action="store_true", help="the reference writes its weights into the model file")
    p.add_argument("--no-whole", action="store_true", help="leave out the second table (whole processes)")
    p.add_argument("--one", nargs=3, metavar=("TOOL", "NAME", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(*args.one)))
        return 0
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    reference = "torch-one-file" if args.one_file else "torch"
    print(f"CPU: {cpu}, {platform.python_version()}; load average {_load()} before")
    print(f"reference: torch.onnx.export, weights {'in the model file' if args.one_file else 'in a second file'}\n")
    print(
        "| model | torch s (CPU s) | archspec s (CPU s) | time ratio (CPU) | A/A time (CPU) "
        "| torch MB | archspec MB | memory ratio | A/A memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            ref1 = run(reference, name, Path(tmp))
            ours = run("archspec", name, Path(tmp))
            ref2 = run(reference, name, Path(tmp))
            ref: dict[str, Any] = {k: (ref1[k] + ref2[k]) / 2 for k in ref1}
            print(
                f"| {name} | {ref['seconds']:.1f} ({ref['cpu']:.1f}) | {ours['seconds']:.1f} ({ours['cpu']:.1f}) "
                f"| {ours['seconds'] / ref['seconds']:.2f} ({ours['cpu'] / ref['cpu']:.2f}) "
                f"| {ref2['seconds'] / ref1['seconds']:.2f} ({ref2['cpu'] / ref1['cpu']:.2f}) "
                f"| {ref['mb']:.0f} | {ours['mb']:.0f} "
                f"| {ours['mb'] / max(ref['mb'], 1):.2f} | {ref2['mb'] / max(ref1['mb'], 1):.2f} |",
                flush=True,
            )
        if not args.no_whole:
            whole_table(args.models.split(","), Path(tmp))
    print(f"\nload average {_load()} after")
    return 0


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
