"""archspec's speed figures (issue 7) against the hand-written references, in one run.

    python bench/bench.py [--runs 5] [--batch 4] [--specs specs] [--no-compile] [--networks a,b]

Prints Markdown: the machine, then one table per figure. Every ratio compares two things timed
side by side in this process, interleaved round by round (A B, B A, A B, ...), and is the median of
the per-round ratios; times are medians of the rounds. In the forward figures a round runs each
model at least 0.5 s (the same number of calls for all, their mean recorded). Networks whose spec file is missing, or
whose reference library is not installed, are listed as skipped. CPU, eval mode, float32,
batch 4 unless a row says otherwise. Run it on a quiet machine: other processes move the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.references import DENSE_REFERENCES, REFERENCES, VARIANT_REFERENCES, perturb_bn  # noqa: E402


@dataclass
class Network:
    name: str
    spec: str  # file name under the specs folder
    reference: str  # what the user would write instead
    make: Callable[[], Any]
    optimize_target: bool = False  # one of the networks the optimize figures are required for
    overrides: dict[str, Any] | None = None  # a variant of the spec (``--variant``), None for the spec as written


def _network(name: str, reference: str, optimize_target: bool = False) -> Network:
    # the references the tests compare against (tests/references.py), so both use the same constructors
    make = REFERENCES[name] if name in REFERENCES else DENSE_REFERENCES[name]
    return Network(name, f"{name}.yaml", reference, make, optimize_target)


def _variant(name: str, reference: str) -> Network:
    """A member of a zoo spec's family (its ``variants:``), against the reference's constructor of that member."""
    spec, overrides, make = VARIANT_REFERENCES[name]
    return Network(name, f"{spec}.yaml", reference, make, True, overrides)


NETWORKS = [
    _network("inception_v4", 'timm.create_model("inception_v4")', True),
    _network("inception_resnet_v2", 'timm.create_model("inception_resnet_v2")', True),
    _network("googlenet", "torchvision googlenet(aux_logits=True)", True),
    _network("inception_v3", "torchvision inception_v3(aux_logits=True)"),
    _network("bn_inception", "pretrainedmodels BNInception"),
    _network("facenet_inception_resnet_v1", "facenet_pytorch InceptionResnetV1"),
    *[_network(f"resnet{d}", f"torchvision resnet{d}") for d in (18, 34, 50, 101, 152)],
    # the networks the language grew to (issue 28): every one an optimize target
    _network("mobilenet_v3_large", "torchvision mobilenet_v3_large", True),
    _network("efficientnet_b0", "torchvision efficientnet_b0", True),
    _network("convnext_tiny", "torchvision convnext_tiny", True),
    _network("densenet121", "torchvision densenet121", True),
    _network("shufflenet_v2_x1_0", "torchvision shufflenet_v2_x1_0", True),
    _network("seresnet50", 'timm.create_model("seresnet50")', True),
    _network("resnext50_32x4d", "torchvision resnext50_32x4d", True),
    # timm's, imported by the importer (issue 26) and kept in the zoo
    _network("tf_efficientnet_b0", 'timm.create_model("tf_efficientnet_b0")'),
    _network("cspresnet50", 'timm.create_model("cspresnet50")'),
    _network("resnetv2_50x1_bit", 'timm.create_model("resnetv2_50x1_bit")'),
    _network("res2net50_26w_4s", 'timm.create_model("res2net50_26w_4s")'),
    # the members of zoo families: EfficientNet's b1 … b4, DenseNet's 161, 169, 201, ShuffleNetV2's widths, ConvNeXt's sizes
    *[_variant(f"efficientnet_b{i}", f"torchvision efficientnet_b{i}") for i in (1, 2, 3, 4)],
    *[_variant(f"densenet{d}", f"torchvision densenet{d}") for d in (161, 169, 201)],
    *[_variant(f"shufflenet_v2_{w}", f"torchvision shufflenet_v2_{w}") for w in ("x0_5", "x1_5", "x2_0")],
    *[_variant(f"convnext_{size}", f"torchvision convnext_{size}") for size in ("small", "base", "large")],
    # several outputs, or a segmentation head's "out": compared map by map
    _network("resnet50_fpn", 'torchvision resnet_fpn_backbone("resnet50")'),
    _network("deeplabv3_resnet50", "torchvision deeplabv3_resnet50"),
    _network("lraspp_mobilenet_v3_large", "torchvision lraspp_mobilenet_v3_large"),
]


# ---- timing ---------------------------------------------------------------------------------------
def interleaved(fns: dict[str, Callable[[], Any]], runs: int, min_time: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn, ``runs`` rounds.

    Odd rounds go in reverse order (A B C, C B A, ...), so that a machine slowly speeding up or
    slowing down (other tenants, clocks) favours no function. With ``min_time``, a round calls
    every function the same number of times in a row, enough for the slowest to run that long,
    and records the mean: short forwards are otherwise at the mercy of a single hiccup."""
    names = list(fns)
    calls = 1
    if min_time > 0:
        slowest = 0.0
        for name in names:
            t = time.perf_counter()
            fns[name]()
            slowest = max(slowest, time.perf_counter() - t)
        calls = max(1, math.ceil(min_time / max(slowest, 1e-9)))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(runs):
        for name in names if i % 2 == 0 else reversed(names):
            fn = fns[name]
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - t) / calls)
    return times


ROUND_S = 0.5  # forward figures: each function runs at least this long per round (several calls if short)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of time(a) / time(b)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


# ---- the machine ----------------------------------------------------------------------------------
def machine() -> list[str]:
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"torch {torch.__version__}"]
    for mod in ("timm", "torchvision"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    bf16 = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
        f"ISA used by torch: {torch.backends.cpu.get_cpu_capability()}, oneDNN bf16: {'yes' if bf16 else 'no'}",
        f"- {', '.join(versions)}, Python {platform.python_version()}",
        f"- load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
    ]


# ---- figures --------------------------------------------------------------------------------------
# `archspec check FILE` as a whole process, reporting its own peak RSS (VmHWM; getrusage would also count
# the memory of this process, which the child shares between fork and exec).
_CLI = (
    "import sys\n"
    "from archspec.cli import main\n"
    "rc = main(['check', *sys.argv[1:]])\n"
    "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr)\n"
    "sys.exit(rc)"
)


def check_rows(nets: list[tuple[Network, Path]], runs: int) -> Iterator[str]:
    import archspec

    yield "| spec | `archspec.check` (warm, median) | `archspec check` whole process | peak RSS |"
    yield "|---|---|---|---|"
    for net, path in nets:
        archspec.check(path, overrides=net.overrides)
        # a call takes tens of milliseconds: many samples, so that the median is not a few noisy ones
        t = interleaved({"check": lambda p=path, o=net.overrides: archspec.check(p, overrides=o)}, 5 * max(runs, 5))["check"]
        variant = ["--variant", net.overrides["variant"]] if net.overrides else []
        proc, rss = [], []
        for _ in range(max(runs, 5)):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _CLI, str(path), *variant],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            proc.append(time.perf_counter() - start)
            rss.append(int(done.stderr.split("VmHWM:")[1].split()[0]) / 1024)
        yield (f"| {net.name} | {med(t) * 1000:.1f} ms | {med(proc):.2f} s | {max(rss):.0f} MB |")


def build_rows(nets: list[tuple[Network, Path]], runs: int) -> Iterator[str]:
    import archspec

    yield "| network | `archspec.build` | reference constructor | ratio |"
    yield "|---|---|---|---|"
    for net, path in nets:
        archspec.build(path, overrides=net.overrides)
        net.make()
        t = interleaved({"ours": lambda p=path, o=net.overrides: archspec.build(p, overrides=o), "ref": net.make}, runs)
        yield (f"| {net.name} | {ms(med(t['ours']))} | {ms(med(t['ref']))} ({net.reference}) | {ratio(t, 'ours', 'ref'):.2f}× |")


def pair(net: Network, path: Path) -> tuple[Any, Any]:
    """Our model and the reference, with the same weights (and non-trivial BatchNorm and LayerNorm terms)."""
    import torch

    import archspec
    from tests.references import perturb_frozen_bn, perturb_group_norm, perturb_layer_norm

    model = archspec.build(path, overrides=net.overrides).eval()
    perturb_bn(model)
    perturb_frozen_bn(model)
    perturb_group_norm(model)
    perturb_layer_norm(model)
    ref = net.make().eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    torch.set_grad_enabled(False)
    return model, ref


def maps(y: Any) -> list[Any]:
    """A forward's output as its list of maps: a dict's (several outputs, or a segmentation head's "out")
    in the order the dict gives them, or the one tensor."""
    if isinstance(y, dict):
        return list(y.values())
    return [y]


def relative_diff(got: Any, want: Any) -> float:
    """The largest over the maps of max |Δ| / max |reference| (the same maps, in the same order)."""
    if isinstance(want, dict) and (not isinstance(got, dict) or list(got) != list(want)):
        raise ValueError(f"the outputs' names differ: {list(got) if isinstance(got, dict) else 'one map'} / {list(want)}")
    return max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(maps(got), maps(want), strict=True))


def forward_rows(nets: list[tuple[Network, Path]], runs: int, batch: int) -> Iterator[str]:
    import torch

    yield (
        "| network | input | reference | compiled (plain) | ratio | noise: a second reference vs the first | max abs Δ logits |"
    )
    yield "|---|---|---|---|---|---|---|"
    for net, path in nets:
        try:
            model, ref = pair(net, path)
        except Exception as e:  # noqa: BLE001 — a table row, not a crash
            yield (f"| {net.name} | | | | skipped: {type(e).__name__}: {str(e)[:80]} | | |")
            continue
        # an A/A comparison: the same reference twice, timed like the pair; it shows how far the
        # ratio moves on this machine when the two sides run identical code
        twin = net.make().eval()
        twin.load_state_dict(ref.state_dict())
        h, w = model.archspec_report.input_size
        x = torch.randn(batch, 3, h, w)
        diff = max((a - b).abs().max().item() for a, b in zip(maps(model(x)), maps(ref(x)), strict=True))
        t = interleaved({"ours": partial(model, x), "ref": partial(ref, x), "twin": partial(twin, x)}, runs, ROUND_S)
        yield (
            f"| {net.name} | {batch}×3×{h}×{w} | {ms(med(t['ref']))} | {ms(med(t['ours']))} | "
            f"{ratio(t, 'ours', 'ref'):.3f}× | {ratio(t, 'twin', 'ref'):.3f}× | {diff:.1e} |"
        )


def optimize_rows(
    nets: list[tuple[Network, Path]], runs: int, batch: int, compile_ref: bool, bf16: bool = True, compose: bool = False
) -> Iterator[str]:
    import torch

    import archspec

    yield (
        "| network | reference eager | reference channels_last | reference torch.compile (first call) | "
        "`optimize` | speed-up vs eager / channels_last / compile | noise: a second `optimize` vs the first | "
        "max rel. Δ logits | `optimize(compile=True)` (compile) | "
        "`optimize(dtype=bf16)` | bf16 speed-up vs fp32 eager | bf16 rel. L2 error |"
    )
    yield "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for net, path in nets:
        try:
            model, ref = pair(net, path)
        except Exception as e:  # noqa: BLE001
            yield (f"| {net.name} | skipped: {type(e).__name__}: {str(e)[:80]} |" + " |" * 10)
            continue
        h, w = model.archspec_report.input_size
        x = torch.randn(batch, 3, h, w)
        opt = archspec.optimize(model)
        ref_cl = net.make().eval().to(memory_format=torch.channels_last)
        ref_cl.load_state_dict(ref.state_dict())
        # the A/A pair: a second optimize of the same model, timed in the same rounds
        fns = {
            "ref": partial(ref, x),
            "ref_cl": partial(ref_cl, x),
            "opt": partial(opt, x),
            "opt_twin": partial(archspec.optimize(model), x),
        }
        compile_s = None
        if compile_ref:
            raw = net.make().eval()
            raw.load_state_dict(ref.state_dict())
            ref_c = torch.compile(raw)
            start = time.perf_counter()
            ref_c(x)
            compile_s = time.perf_counter() - start
            fns["ref_c"] = partial(ref_c, x)
        composed = "—"
        if compose:
            fast = archspec.optimize(model, compile=True)
            fast(x)  # the batch of this table may differ from the one compiled on
            fns["opt_c"] = partial(fast, x)
        want = ref(x)
        diff = relative_diff(opt(x), want)
        for fn in fns.values():
            fn()
        t = interleaved(fns, runs, ROUND_S)
        speedups = [1 / ratio(t, "opt", "ref"), 1 / ratio(t, "opt", "ref_cl")]
        comp = "—"
        if compile_s is not None:
            speedups.append(1 / ratio(t, "opt", "ref_c"))
            comp = f"{ms(med(t['ref_c']))} ({compile_s:.0f} s)"
        if compose:
            composed = f"{ms(med(t['opt_c']))} ({fast.archspec_compile_s:.0f} s)"
        cells16 = ["—", "—", "—"]
        if bf16:  # in rounds of its own: where it is slow, it would leave long gaps between the others
            opt16 = archspec.optimize(model, dtype=torch.bfloat16)
            got16, want32 = torch.cat([m.flatten() for m in maps(opt16(x))]), torch.cat([m.flatten() for m in maps(want)])
            rel = ((got16 - want32).norm() / want32.norm()).item()
            t16 = interleaved({"ref": partial(ref, x), "opt16": partial(opt16, x)}, runs)
            cells16 = [ms(med(t16["opt16"])), f"{1 / ratio(t16, 'opt16', 'ref'):.2f}×", f"{rel:.1e}"]
        yield (
            f"| {net.name} | {ms(med(t['ref']))} | {ms(med(t['ref_cl']))} | {comp} | {ms(med(t['opt']))} | "
            f"{' / '.join(f'{s:.2f}×' for s in speedups)} | {ratio(t, 'opt_twin', 'opt'):.2f}× | {diff:.1e} | {composed} | "
            + " | ".join(cells16)
            + " |"
        )


def ablation_rows(nets: list[tuple[Network, Path]], runs: int, batch: int) -> Iterator[str]:
    """Which passes pay: the optimize stage with one pass switched off at a time, against all passes."""
    import torch

    import archspec

    # "all passes (A/A)" is a second copy of the same optimized model: the noise any other column must beat.
    variants = {
        "all passes (A/A)": {},
        "no channels_last": {"channels_last": False},
        "no fuse_parallel_convs": {"fuse_parallel": False},
        "no fuse_conv_add": {"fuse_add": False},
        "no fuse_conv_act": {"fuse_act": False},
    }
    yield "| network | all passes | " + " | ".join(variants) + " |"
    yield "|---|---|" + "---|" * len(variants)
    for net, path in nets:
        model = archspec.build(path, overrides=net.overrides).eval()
        perturb_bn(model)
        torch.set_grad_enabled(False)
        h, w = model.archspec_report.input_size
        x = torch.randn(batch, 3, h, w)
        fns = {"all": partial(archspec.optimize(model), x)}
        fns |= {name: partial(archspec.optimize(model, **options), x) for name, options in variants.items()}
        for fn in fns.values():
            fn()
        t = interleaved(fns, runs, ROUND_S)
        cells = [f"{ms(med(t[name]))} ({ratio(t, name, 'all'):.2f}×)" for name in variants]
        yield f"| {net.name} | {ms(med(t['all']))} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds per figure (medians; at least 5 for the record)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--specs", type=Path, default=ROOT / "specs", help="folder holding the zoo specs")
    parser.add_argument("--networks", help="comma-separated names to run (default: all present)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile of the references (slow)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 columns of the optimize figure")
    parser.add_argument("--compose", action="store_true", help="also time optimize(model, compile=True) (slow)")
    parser.add_argument(
        "--figures",
        default="check,build,forward,optimize,ablation",
        help="comma-separated subset of: check, build, forward, optimize, ablation",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch

    import archspec

    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = set(args.networks.split(",")) if args.networks else None
    present, skipped = [], []
    for net in NETWORKS:
        if wanted is not None and net.name not in wanted:
            continue
        path = args.specs / net.spec
        (present if path.is_file() else skipped).append((net, path))
    broken = []
    for net, path in list(present):
        try:
            archspec.check(path)
        except archspec.SpecError as e:  # a spec written for a newer archspec than this checkout
            present.remove((net, path))
            broken.append(f"{net.name} ({e.format().splitlines()[0][:120]})")

    out = ["## Machine", "", *machine(), f"- batch {args.batch}, {args.runs} interleaved rounds per figure", ""]
    if skipped:
        out += [f"Skipped (no spec file): {', '.join(n.name for n, _ in skipped)}", ""]
    if broken:
        out += ["Skipped (spec does not check):", *[f"- {b}" for b in broken], ""]
    print("\n".join(out), flush=True)
    targets = [(n, p) for n, p in present if n.optimize_target or wanted is not None]
    sections = [
        (
            "check",
            "`check`: warm call (target < 50 ms for inception_resnet_v2) and the CLI as a whole process (target < 1 s, < 200 MB)",
            lambda: check_rows(present, args.runs),
        ),
        ("build", "`build` vs the reference constructor (target ≤ 1.0×)", lambda: build_rows(present, args.runs)),
        (
            "forward",
            "Forward, plain compiled model vs reference (target ≤ 1.02×)",
            lambda: forward_rows(present, args.runs, args.batch),
        ),
        (
            "optimize",
            "`optimize` (targets: ≥ 1.3× vs eager, ≥ 1.0× vs channels_last and torch.compile; bf16 ≥ 2.2× with rel. L2 ≤ 1e-2)",
            lambda: optimize_rows(targets, args.runs, args.batch, not args.no_compile, not args.no_bf16, args.compose),
        ),
        (
            "ablation",
            "Which passes pay: `optimize` with one pass off (time, and its ratio to all passes on)",
            lambda: ablation_rows(targets if wanted is None else present, args.runs, args.batch),
        ),
    ]
    figures = set(args.figures.split(","))
    for key, title, rows in sections:
        if key not in figures:
            continue
        print(f"### {title}\n", flush=True)
        for row in rows():  # each row as soon as it is measured
            print(row, flush=True)
        print(flush=True)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
