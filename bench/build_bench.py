"""`archspec.build` against each zoo network's reference constructor, side by side in one process.

For every zoo spec with a reference (tests/references.py, the constructors the tests compare
against): rounds interleave build(spec), the reference constructor, and the reference again (the
A/A column: the noise band any ratio must beat); each figure is the median of the per-round
ratios. Run from the repository root: ``python bench/build_bench.py --rounds 7``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: the archspec to time may be another checkout's


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--networks", help="comma-separated spec names (default: every zoo spec with a reference)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    import archspec
    from tests.references import REFERENCES

    torch.set_num_threads(1)
    zoo = Path(archspec.__file__).parent / "zoo"
    names = args.networks.split(",") if args.networks else sorted(n for n in REFERENCES if (zoo / f"{n}.yaml").is_file())
    print(f"# {_cpu()}, {len(names)} networks, {args.rounds} rounds, archspec from {Path(archspec.__file__).parent}")
    print("| network | `archspec.build` | reference constructor | build / reference | A/A |")
    print("|---|---|---|---|---|")
    for name in names:
        path, make = zoo / f"{name}.yaml", REFERENCES[name]
        archspec.build(path), make()  # warm: imports, caches
        times: dict[str, list[float]] = {"ours": [], "ref": [], "ref2": []}
        for _ in range(args.rounds):
            for key, fn in (("ours", lambda p=path: archspec.build(p)), ("ref", make), ("ref2", make)):
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        ratio = statistics.median(o / r for o, r in zip(times["ours"], times["ref"], strict=True))
        aa = statistics.median(a / b for a, b in zip(times["ref2"], times["ref"], strict=True))
        ours, ref = statistics.median(times["ours"]) * 1e3, statistics.median(times["ref"]) * 1e3
        print(f"| {name} | {ours:.0f} ms | {ref:.0f} ms | {ratio:.2f}× | {aa:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
