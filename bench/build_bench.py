"""`archspec.build` against each zoo network's reference constructor, side by side in one process.

For every zoo spec with a reference (tests/references.py, the constructors the tests compare
against: classification networks, the dense ones returning maps, and the efficientnet_b0 spec's
variants b1–b4, built with ``variant``): rounds interleave build(spec), the reference constructor, and the reference again (the
A/A column: the noise band any ratio must beat); each figure is the median of the per-round
ratios. Run from the repository root: ``python bench/build_bench.py --rounds 7``.

``--uncached``: every build analyses its spec afresh (archspec/memo.py's report store emptied before
each): what a rebuild costs without that store, the expansion and shapes included.

``--cold``: the first build in a fresh process instead (imports done, nothing built yet: what a
script pays once), each round two fresh processes, one building the spec and one calling the
reference constructor, in alternating order; the ratio is the median of the per-round ratios.

``--process``: a whole first run of a script, seen from outside (interpreter start, imports, the
build): ``python -c "import archspec; archspec.build(spec)"`` against a process that imports only the
reference's library and calls its constructor (``import torchvision; torchvision.models.X()``), and
a second such process for the A/A column; each round runs the three in a rotating order.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: the archspec to time may be another checkout's


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


_COLD = """
import sys, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
import importlib
for lib in ("timm", "torchvision.models", "pretrainedmodels.models.bninception", "facenet_pytorch"):
    try:  # the references' libraries, imported in both processes (archspec's lazy imports stay in its first build)
        importlib.import_module(lib)
    except ImportError:
        pass
import archspec
sys.path.append(sys.argv[3])
from bench.build_bench import networks
name, side = sys.argv[1], sys.argv[2]
path, overrides, reference = networks()[name]
make = (lambda: archspec.build(path, overrides)) if side == "ours" else reference
import gc
gc.collect()  # the imports' garbage collected before, in both: else a full collection (0.2 s) lands in either's timing
start = time.perf_counter()
make()
print(time.perf_counter() - start)
"""


def _fresh_env() -> dict[str, str]:
    """The environment of a fresh process: this checkout's archspec, its bytecode written and read as an
    installed package's is (pip compiles on install, as torch's and torchvision's were): with
    PYTHONDONTWRITEBYTECODE set, every fresh process compiled archspec's modules from their source
    (21 ms in ShuffleNetV2's first build alone) while the references' came compiled."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*sys.path[1:], str(ROOT)]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _cold(name: str, side: str) -> float:
    """The first build (``ours``) or construction (``ref``) of ``name`` in a fresh process, in seconds."""
    env = _fresh_env()
    command = [sys.executable, "-c", _COLD, name, side, str(ROOT)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.split()[-1])


_PROCESS_OURS = """
import sys, warnings
warnings.filterwarnings("ignore")
import archspec
archspec.build(sys.argv[1], eval(sys.argv[2]))  # noqa: S307 (the bench's own repr of the overrides)
"""

_PROCESS_REF = """
import sys, warnings
warnings.filterwarnings("ignore")
sys.path.append(sys.argv[2])
from tests.references import DENSE_REFERENCES, REFERENCES, VARIANT_REFERENCES
name = sys.argv[1]
make = {**REFERENCES, **DENSE_REFERENCES}.get(name) or VARIANT_REFERENCES[name][2]
make()
"""


def _process(code: str, *args: str) -> float:
    """Wall time of a fresh interpreter running ``code``, from start to exit, in seconds."""
    env = _fresh_env()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], capture_output=True, check=True, env=env)
    return time.perf_counter() - start


def process(names: list[str], rounds: int) -> None:
    found = networks()
    print("| network | `python -c 'import archspec; archspec.build(spec)'` | reference import + constructor | ratio | A/A |")
    print("|---|---|---|---|---|")
    for name in names:
        path, overrides, _ = found[name]
        sides: dict[str, Callable[[], float]] = {
            "ours": functools.partial(_process, _PROCESS_OURS, str(path), repr(overrides)),
            "ref": functools.partial(_process, _PROCESS_REF, name, str(ROOT)),
            "ref2": functools.partial(_process, _PROCESS_REF, name, str(ROOT)),
        }
        times: dict[str, list[float]] = {k: [] for k in sides}
        sides["ours"](), sides["ref"]()  # untimed: bytecode written, files in the page cache
        order = list(sides)
        for i in range(rounds):
            for key in order[i % 3 :] + order[: i % 3]:
                times[key].append(sides[key]())
        ratio = statistics.median(o / r for o, r in zip(times["ours"], times["ref"], strict=True))
        aa = statistics.median(a / b for a, b in zip(times["ref2"], times["ref"], strict=True))
        ours, ref = statistics.median(times["ours"]), statistics.median(times["ref"])
        print(f"| {name} | {ours:.2f} s | {ref:.2f} s | {ratio:.2f}× | {aa:.2f}× |", flush=True)


def networks() -> dict[str, tuple[Path, dict[str, Any] | None, Callable[[], Any]]]:
    """Every zoo network with a reference: name → (spec path, overrides, the reference's constructor)."""
    import archspec
    from tests.references import DENSE_REFERENCES, REFERENCES, VARIANT_REFERENCES

    zoo = Path(archspec.__file__).parent / "zoo"
    found: dict[str, tuple[Path, dict[str, Any] | None, Callable[[], Any]]] = {}
    for name, make in sorted({**REFERENCES, **DENSE_REFERENCES}.items()):
        if (zoo / f"{name}.yaml").is_file():
            found[name] = (zoo / f"{name}.yaml", None, make)
    for name, (spec, overrides, make) in sorted(VARIANT_REFERENCES.items()):
        found[name] = (zoo / f"{spec}.yaml", overrides, make)
    return found


def _uncached(path: Path, overrides: dict[str, Any] | None) -> Callable[[], Any]:
    """``archspec.build(path, overrides)`` with no report kept from an earlier build (archspec/memo.py)."""
    import archspec
    from archspec import memo

    def build() -> Any:
        memo.clear()
        return archspec.build(path, overrides)

    return build


def cold(names: list[str], rounds: int) -> None:
    print("| network | first `archspec.build` in a process | first reference constructor | build / reference |")
    print("|---|---|---|---|")
    for name in names:
        ours: list[float] = []
        ref: list[float] = []
        _cold(name, "ours"), _cold(name, "ref")  # untimed: bytecode written, files in the page cache
        for i in range(rounds):
            for side in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):
                (ours if side == "ours" else ref).append(_cold(name, side))
        ratio = statistics.median(o / r for o, r in zip(ours, ref, strict=True))
        first, constructor = statistics.median(ours) * 1e3, statistics.median(ref) * 1e3
        print(f"| {name} | {first:.0f} ms | {constructor:.0f} ms | {ratio:.2f}× |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--networks", help="comma-separated spec names (default: every zoo spec with a reference)")
    parser.add_argument("--cold", action="store_true", help="the first build in a fresh process (one process per build)")
    parser.add_argument("--uncached", action="store_true", help="every build analyses its spec afresh (no kept report)")
    parser.add_argument("--process", action="store_true", help="a whole script's first run: interpreter, imports, build")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    import archspec

    torch.set_num_threads(1)
    found = networks()
    names = args.networks.split(",") if args.networks else list(found)
    kept = "" if not args.uncached else ", reports not kept"
    print(f"# {_cpu()}, {len(names)} networks, {args.rounds} rounds{kept}, archspec from {Path(archspec.__file__).parent}")
    if args.cold:
        cold(names, args.rounds)
        return 0
    if args.process:
        process(names, args.rounds)
        return 0
    print("| network | `archspec.build` | reference constructor | build / reference | A/A |")
    print("|---|---|---|---|---|")
    for name in names:
        path, overrides, make = found[name]
        ours_build = _uncached(path, overrides) if args.uncached else (lambda p=path, o=overrides: archspec.build(p, o))
        ours_build(), make()  # warm: imports, caches
        times: dict[str, list[float]] = {"ours": [], "ref": [], "ref2": []}
        for _ in range(args.rounds):
            for key, fn in (("ours", ours_build), ("ref", make), ("ref2", make)):
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
