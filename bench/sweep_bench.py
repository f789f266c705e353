"""Speed of `archspec sweep` (issue 31 §5), in one run: the static path and two workers against one.

    python bench/sweep_bench.py [--static-trials 1000] [--latency-trials 16] [--skip-static]

Prints Markdown: the machine and its load, then

- **static**: a ResNet-50 space (stage depths, widths, bottleneck ratio, groups; a MACs budget)
  sampled, checked and tabulated (results.csv, results.json, one standalone spec per accepted variant)
  by `sweep(..., static=True)` in one process: wall time for 1,000 accepted variants (target ≤ 60 s on
  2 cores), split into the study (sample + check) and the results;
- **workers**: a latency-only sweep of a small space over examples/spaces/digits_resnet.yaml, each trial
  building, optimising and timing one variant with one torch thread, run by one worker process (twice:
  the A/A column, the noise) and by two worker processes sharing a journal store, alternated; the ratio
  is one worker's wall time over two workers' (target ≥ 1.7× on 2 cores), printed beside the machine's own
  ceiling: a pure-Python loop in one process and in two.

The machine's load average is printed before and after: other processes move these numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

R50_SPACE = f"""\
space: 1
spec: {ROOT / "archspec" / "zoo" / "resnet50.yaml"}
name: resnet50
sampler: random
seed: 0
params:
  d2: {{int: [2, 6]}}
  d3: {{int: [2, 10]}}
  w: [32, 48, 64, 80, 96]
  b: [2, 4]
  g: [1, 2, 4]
set:
  network.layer2.1.repeat: ${{d2 - 1}}
  network.layer3.1.repeat: ${{d3 - 1}}
  network.layer1.0.width: ${{w * 4 // b}}
  network.layer1.1.width: ${{w * 4 // b}}
  network.layer1.0.groups: ${{g}}
  network.layer1.1.groups: ${{g}}
constraints: [macs <= 6e9]
"""

LATENCY_SPACE = f"""\
space: 1
spec: {ROOT / "examples" / "spaces" / "digits_resnet.yaml"}
name: latency
sampler: random
seed: 0
params:
  w1: [16, 24, 32, 48]
  w2: [32, 48, 64, 96]
  d1: {{int: [2, 4]}}
set:
  network.stage1.0.out: ${{w1}}
  network.stage1.1.out: ${{w1}}
  network.stage1.1.repeat: ${{d1 - 1}}
  network.stage2.0.out: ${{w2}}
  network.stage2.1.out: ${{w2}}
latency: {{batch: 64, repeats: 20, warmup: 2, threads: 1}}
"""


def machine() -> list[str]:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores; Python {platform.python_version()}",
        f"- load average before: {os.getloadavg()[0]:.2f} (1 min)",
    ]


def static(trials: int, jobs: int) -> list[str]:
    from archspec.sweep import load_space, sweep, write_results
    from archspec.sweep.study import Options, counts, open_study

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.yaml"
        path.write_text(R50_SPACE)
        out = Path(tmp) / "out"
        start = time.perf_counter()
        space = load_space(path)
        sweep(space, trials=trials, static=True, out=out, report=False, jobs=jobs)
        sampled = time.perf_counter()
        study, _ = open_study(space, Options(trials=trials, static=True, out=out))
        write_results(space, study, out)
        done = time.perf_counter()
        c = counts(study)
        rows = len((out / "results.csv").read_text().splitlines()) - 1
        specs = len(list((out / "specs").glob("*.yaml")))
    return [
        "| worker processes | accepted | rejected | rows | standalone specs | sample + check | results | total (target ≤ 60 s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {jobs} | {c['accepted']} | {c['rejected']} | {rows} | {specs} | {sampled - start:.1f} s | {done - sampled:.1f} s "
        f"| **{done - start:.1f} s** |",
    ]


def _workers(n: int, trials: int, folder: Path) -> float:
    path = folder / "space.yaml"
    path.write_text(LATENCY_SPACE)
    storage = folder / f"study-{n}-{time.monotonic_ns()}.journal"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "archspec.cli", "sweep", str(path), "--trials", str(trials), "--worker"]
    command += ["--storage", str(storage), "--out", str(folder / "out")]
    start = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(n)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("a worker failed")
    return time.perf_counter() - start


SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(20_000_000):\n    x += i\n"


def _spin(n: int) -> float:
    """Wall time of ``n`` processes each running the same pure-Python loop: no I/O, no shared data."""
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
    for p in procs:
        p.wait()
    return time.perf_counter() - start


def workers(trials: int, rounds: int) -> list[str]:
    """The sweep's two-worker ratio beside the machine's own: the same CPU-bound loop in one process and in
    two. On a virtual machine whose two cores share a physical core (or a busy host) two processes never
    run twice as fast, whatever they do; the last column says how much of that ceiling the sweep reaches."""
    one, again, two, spin1, spin2 = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):  # interleaved: 1, 2, 1 (A/A), ...
            spin1.append(_spin(1))
            spin2.append(_spin(2))
            one.append(_workers(1, trials, Path(tmp)))
            two.append(_workers(2, trials, Path(tmp)))
            again.append(_workers(1, trials, Path(tmp)))
    a, a2, b = statistics.median(one), statistics.median(again), statistics.median(two)
    ceiling = 2 * statistics.median(spin1) / statistics.median(spin2)  # two loops' work in the time taken
    return [
        "| trials | one worker | one worker again (A/A) | two workers | A/A ratio | one / two (target ≥ 1.7×) "
        "| the machine's two-process ceiling | share of the ceiling |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {trials} | {a:.1f} s | {a2:.1f} s | {b:.1f} s | {a / a2:.2f}× | **{a / b:.2f}×** | {ceiling:.2f}× "
        f"| {a / b / ceiling:.0%} |",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--static-trials", type=int, default=1000)
    p.add_argument("--latency-trials", type=int, default=64, help="enough that a worker's start-up (~2 s) is small")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="worker processes of the static sweep")
    p.add_argument("--skip-static", action="store_true")
    p.add_argument("--skip-workers", action="store_true")
    args = p.parse_args()
    lines = ["### Machine", "", *machine(), ""]
    if not args.skip_static:
        lines += [f"### Static path: {args.static_trials} ResNet-50 variants", "", *static(args.static_trials, args.jobs), ""]
    if not args.skip_workers:
        lines += ["### Two workers against one, latency only", "", *workers(args.latency_trials, args.rounds), ""]
    lines.append(f"- load average after: {os.getloadavg()[0]:.2f} (1 min)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
