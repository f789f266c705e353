"""Where an optimized network's forward spends its time, per op kind (torch.profiler).

    python bench/profile_ops.py [--networks a,b] [--batch 8] [--calls 5] [--top 12] [--options k=v,...] [--compiled]

For each network: ``archspec.optimize`` of the zoo spec, a few warm-up calls, then ``--calls``
forwards under ``torch.profiler``; prints one Markdown table per network of the ops with the most
self CPU time (what the op itself ran, not its callees), as a share of the forward. ``--options``
passes keyword switches to ``optimize`` (``fuse_act=0,channels_last=0``) to see what a pass moves.
Shares, not times, are what to compare between runs on a shared machine. Each table's title also
gives the minor page faults per forward (``getrusage``: maps the C allocator handed back and the
kernel zeroes again). ``--compiled`` adds the same table for ``torch.compile`` of the reference
network with the same weights (bench/bench.py's pair), to set what inductor runs beside it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.references import perturb_bn, perturb_layer_norm  # noqa: E402


def profile(name: str, batch: int, calls: int, top: int, options: dict[str, bool], compiled: bool = False) -> list[str]:
    import torch

    import archspec

    model = archspec.build(ROOT / "specs" / f"{name}.yaml").eval()
    perturb_bn(model)
    perturb_layer_norm(model)
    opt = archspec.optimize(model, **options)  # type: ignore[arg-type]
    h, w = model.archspec_report.input_size
    x = torch.randn(batch, 3, h, w)
    rows = _table(f"{name} (batch {batch})", opt, x, calls, top)
    if compiled:
        import importlib.util

        found = importlib.util.spec_from_file_location("archspec_bench", ROOT / "bench" / "bench.py")
        assert found is not None and found.loader is not None
        bench = sys.modules["archspec_bench"] = importlib.util.module_from_spec(found)
        found.loader.exec_module(bench)  # the references and weights bench.py times against
        net = next(n for n in bench.NETWORKS if n.name == name)
        _, ref = bench.pair(net, ROOT / "specs" / net.spec)
        rows += _table(f"{name}: torch.compile of {net.reference} (batch {batch})", torch.compile(ref), x, calls, top)
    return rows


def _table(title: str, fn: Any, x: Any, calls: int, top: int) -> list[str]:
    import resource

    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        for _ in range(2):
            fn(x)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(calls):
            fn(x)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                fn(x)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    rows = [
        f"#### {title}: forward {total / calls / 1000:.1f} ms under the profiler, {faults / calls:.0f} page faults a forward",
        "",
    ]
    rows += ["| op | calls per forward | self time per forward | share |", "|---|---|---|---|"]
    for e in events[:top]:
        rows.append(
            f"| `{e.key}` | {e.count // calls} | {e.self_cpu_time_total / calls / 1000:.2f} ms | "
            f"{100 * e.self_cpu_time_total / total:.1f} % |"
        )
    return rows + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--networks",
        default="mobilenet_v3_large,efficientnet_b0,convnext_tiny,shufflenet_v2_x1_0,seresnet50,densenet121,resnext50_32x4d",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--options", default="", help="optimize switches, e.g. fuse_act=0,channels_last=0")
    parser.add_argument("--compiled", action="store_true", help="also profile torch.compile of the reference")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    options = {k: v not in ("0", "false", "False") for k, v in (o.split("=") for o in args.options.split(",") if o)}
    for name in args.networks.split(","):
        print("\n".join(profile(name, args.batch, args.calls, args.top, options, args.compiled)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
