"""`archspec import` wall time against the floor it cannot go under, side by side in one run.

    flock /tmp/archspec-bench.lock python bench/import_bench.py torchvision:resnet50 [--base DIR] [-n 3]

Each column is a fresh process, the runs interleaved (floor, import, import again, base, ...) so
that load drifting over the run falls on every column alike:

- floor: Python importing torch and the model's library and constructing the model: what any
  import of that model costs before archspec does anything;
- import: ``archspec import SOURCE -o FILE`` (trace, write, build, strict load, outputs checked);
- A/A: the same command again, for the noise between two runs of one thing;
- base (with ``--base DIR``): the command with ``DIR`` (a checkout of another commit) first on
  PYTHONPATH, e.g. ``git archive COMMIT archspec | tar -x -C DIR``.

Prints the median wall and CPU (user + system) seconds of each and the ratios, with the CPU and the load before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _floor_code(source: str) -> str:
    library, _, name = source.partition(":")
    if library == "timm":
        return f"import torch, timm; timm.create_model({name!r})"
    return f"import torch, torchvision; torchvision.models.get_model({name!r})"


def _run(argv: list[str], path: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # run in the checkout itself: `python -c` puts the working directory before PYTHONPATH
    subprocess.run(argv, env=env, cwd=path, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", default="torchvision:resnet50")
    p.add_argument("--base", type=Path, help="a checkout of another commit, run as the base column")
    p.add_argument("-n", type=int, default=3, help="runs of each column (median)")
    args = p.parse_args()
    out = Path(tempfile.mkdtemp()) / "imported.yaml"
    command = [
        sys.executable,
        "-c",
        "import sys; from archspec.cli import main; sys.exit(main())",
        "import",
        args.source,
        "-o",
        str(out),
    ]
    columns: dict[str, tuple[list[str], Path]] = {
        "floor": ([sys.executable, "-c", _floor_code(args.source)], ROOT),
        "import": (command, ROOT),
        "A/A": (command, ROOT),
    }
    if args.base is not None:
        columns["base"] = (command, args.base.resolve())
    print(f"CPU: {_cpu()}, {os.cpu_count()} logical; load before: {os.getloadavg()[0]:.2f}")
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in columns}
    for _ in range(args.n):
        for key, (argv, path) in columns.items():
            times[key].append(_run(argv, path))
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(f"{'column':8} {'wall s':>7} {'ratio':>6} {'CPU s':>7} {'ratio':>6}   wall of each run")
    for key, v in times.items():
        runs = " ".join(f"{t[0]:.2f}" for t in v)
        ratios = f"{wall[key] / wall['import']:6.2f} {cpu[key]:7.2f} {cpu[key] / cpu['import']:6.2f}"
        print(f"{key:8} {wall[key]:7.2f} {ratios}   {runs}")

    def own(key: str) -> str:
        return f"wall {wall[key] - wall['floor']:.2f} s, CPU {cpu[key] - cpu['floor']:.2f} s"

    print("archspec's own time (import - floor): " + own("import") + ("; base: " + own("base") if "base" in wall else ""))


if __name__ == "__main__":
    main()
