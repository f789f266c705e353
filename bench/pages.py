"""The interactive page of every zoo network: its size, its views, and how long `render` takes.

    python bench/pages.py [--specs specs] [--runs 3]

Prints Markdown (docs/views.md holds a run): per network the page's size in kB, its number of views,
and the seconds one `render NET.html` takes — wall clock, and CPU (this process and its `dot`
processes together), the median of ``--runs``. On 2 idle cores the wall time is at most the CPU
time (the `dot` processes run beside the Python work); on a busy machine the wall time grows and the
CPU time does not, so both are shown, with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default="specs")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from archspec.api import analyze
    from archspec.view import page, unpacked

    cpu_name = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    print(f"CPU: {cpu_name}, {os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}\n")
    print("| network | page (kB) | views | render wall (s) | render CPU (s) |")
    print("|---|---:|---:|---:|---:|")
    for spec in sorted(Path(args.specs).glob("*.yaml")):
        walls, cpus = [], []
        for _ in range(args.runs):
            t, c = time.perf_counter(), _cpu()
            report = analyze(spec)  # as `archspec render NET.html` does, less reading the command line
            graph = report.graph
            text = page(graph, report)
            walls.append(time.perf_counter() - t)
            cpus.append(_cpu() - c)
        data = text.split('data-encoding="gzip+base64">', 1)[1].split("</script>", 1)[0]
        views = len(unpacked(data)["views"])
        size = len(text.encode("utf-8", "backslashreplace")) / 1000
        print(f"| {spec.stem} | {size:,.0f} | {views} | {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} |")
        sys.stdout.flush()
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
