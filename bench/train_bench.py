"""Training figures of the compiled models against their hand-written references (issue 17).

    python bench/train_bench.py [--runs 5] [--batch 4] [--threads N] [--networks a,b] [--figures step,saved,compile]

Prints Markdown: the machine (as bench/bench.py prints it), then one table per figure.

- ``step``: one training step — forward in training mode, cross-entropy of every output (aux heads
  weighted 0.3 as in the GoogLeNet paper), backward, SGD with momentum — of the compiled model and
  of its reference, with the same weights and the same batch, timed in interleaved rounds (A B C,
  C B A, ...) with an A/A column: a second copy of the reference timed in the same rounds, which
  shows how far the ratio moves when both sides run identical code. Ratios are medians of the
  per-round ratios, times medians of the rounds. ResNet-50, Inception-v4, GoogLeNet with aux heads.
- ``saved``: bytes autograd keeps for backward in one training-mode forward, recorded with
  ``torch.autograd.graph.saved_tensors_hooks`` (each storage counted once however many tensors view
  it), for every zoo network with a reference; parameters (the same in both) are listed apart.
- ``compile``: ``torch.compile(model, fullgraph=True)`` of the compiled model, one training step:
  graph breaks (none allowed: fullgraph raises on the first) and the largest gradient difference
  to eager.

Everything runs on ``cuda`` when torch sees a GPU, else on the CPU. float32 throughout.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench import interleaved, machine, med, ms, ratio  # noqa: E402
from tests.references import DENSE_REFERENCES  # noqa: E402
from tests.references import REFERENCES as CLASSIFIERS  # noqa: E402

REFERENCES = {**CLASSIFIERS, **DENSE_REFERENCES}  # every zoo network with a reference

STEP_NETWORKS = ["resnet50", "inception_v4", "googlenet"]
# the networks the language grew to (issue 28); their step figure is asked for with --networks
MODERN_NETWORKS = [
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "densenet121",
    "shufflenet_v2_x1_0",
    "seresnet50",
    "resnext50_32x4d",
]
AUX_WEIGHT = 0.3


# ---- helpers shared with tests/test_training_bench.py -------------------------------------------------
def outputs_of(output: Any) -> list[Any]:
    """Every output tensor of a training-mode forward, main output first: a tensor, archspec's dict
    (``logits`` first), torchvision's named tuples (GoogLeNetOutputs, InceptionOutputs), or a dict of
    maps (FPN's levels, a segmentation head's ``out``: in the order both sides give them)."""
    if isinstance(output, dict):
        if "logits" not in output:
            return list(output.values())
        return [output["logits"], *(v for k, v in output.items() if k != "logits")]
    if isinstance(output, tuple):
        return [t for t in output if t is not None]
    return [output]


def training_loss(output: Any, target: Any) -> Any:
    import torch.nn.functional as F

    main, *aux = outputs_of(output)
    if main.dim() > 2:  # maps (FPN, segmentation): the mean of their squares stands in for a dense loss
        return sum(m.square().mean() for m in (main, *aux))
    loss = F.cross_entropy(main, target)
    for a in aux:
        loss = loss + AUX_WEIGHT * F.cross_entropy(a, target)
    return loss


def saved_bytes(model: Any, x: Any) -> tuple[int, int]:
    """(activation bytes, parameter bytes) that autograd saves for backward in one training forward.

    Each storage is counted once, at its full size, however many saved tensors view it; a storage
    that belongs to a parameter counts as parameter bytes."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    act = sum(n for ptr, n in storages.items() if ptr not in params)
    par = sum(n for ptr, n in storages.items() if ptr in params)
    return act, par


def same_weights(name: str, spec: Path, device: Any) -> tuple[Any, Any]:
    """Our model and the reference with our weights, both in training mode on ``device``."""
    import torch

    import archspec

    torch.manual_seed(0)
    model = archspec.build(spec)
    ref = REFERENCES[name]()
    ref.load_state_dict(model.state_dict(), strict=True)
    return model.to(device).train(), ref.to(device).train()


def input_of(model: Any, batch: int, device: Any) -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    h, w = model.archspec_report.input_size
    classes = model.archspec_report.output_shape[-1]
    x = torch.randn(batch, 3, h, w, generator=g).to(device)
    return x, torch.randint(classes, (batch,), generator=g).to(device)


# ---- figures ----------------------------------------------------------------------------------------
def step_fn(model: Any, x: Any, target: Any, sync: Callable[[], None]) -> Callable[[], None]:
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        training_loss(model(x), target).backward()
        opt.step()
        sync()

    return step


def step_rows(specs: Path, names: list[str], runs: int, batch: int, device: Any) -> Iterator[str]:
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    yield (
        "| network | batch | reference step | compiled step | ratio | noise: a second reference vs the first | "
        "max abs Δ loss (first step) |"
    )
    yield "|---|---|---|---|---|---|---|"
    for name in names:
        model, ref = same_weights(name, specs / f"{name}.yaml", device)
        twin = copy.deepcopy(ref)
        x, target = input_of(model, batch, device)
        # the first step's loss with the same weights and batch: dropout masks aside, the same network
        torch.manual_seed(1)
        a = training_loss(model(x), target).item()
        torch.manual_seed(1)
        b = training_loss(ref(x), target).item()
        fns = {
            "ours": step_fn(model, x, target, sync),
            "ref": step_fn(ref, x, target, sync),
            "twin": step_fn(twin, x, target, sync),
        }
        for fn in fns.values():  # warm-up: allocator, oneDNN primitives, momentum buffers
            fn()
        t = interleaved(fns, runs)
        h, w = x.shape[-2:]
        yield (
            f"| {name} | {batch}×3×{h}×{w} | {ms(med(t['ref']))} | {ms(med(t['ours']))} | "
            f"{ratio(t, 'ours', 'ref'):.3f}× | {ratio(t, 'twin', 'ref'):.3f}× | {abs(a - b):.1e} |"
        )
        del model, ref, twin, fns


def saved_rows(specs: Path, names: list[str], batch: int, device: Any) -> Iterator[str]:
    yield "| network | input | reference: activations saved | compiled: activations saved | ratio | parameters saved (both) |"
    yield "|---|---|---|---|---|---|"
    for name in names:
        model, ref = same_weights(name, specs / f"{name}.yaml", device)
        x, _ = input_of(model, batch, device)
        ours, ours_p = saved_bytes(model, x)
        theirs, theirs_p = saved_bytes(ref, x)
        params = f"{ours_p / 2**20:.1f} MiB" + ("" if ours_p == theirs_p else f" vs {theirs_p / 2**20:.1f} MiB")
        h, w = x.shape[-2:]
        yield (
            f"| {name} | {batch}×3×{h}×{w} | {theirs / 2**20:.1f} MiB | {ours / 2**20:.1f} MiB | "
            f"{ours / theirs:.3f}× | {params} |"
        )


def compile_rows(specs: Path, names: list[str], batch: int, device: Any) -> Iterator[str]:
    import torch

    import archspec

    yield "| network | input | graph breaks | compile + first step | max abs Δ gradient vs eager | largest gradient |"
    yield "|---|---|---|---|---|---|"
    for name in names:
        torch.manual_seed(0)
        model = archspec.build(specs / f"{name}.yaml").to(device).train()
        for m in model.modules():  # dropout off: the two runs must draw nothing random to be comparable
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        x, target = input_of(model, batch, device)
        twin = copy.deepcopy(model)
        training_loss(model(x), target).backward()
        torch._dynamo.reset()
        explain = torch._dynamo.explain(twin)(x)
        compiled = torch.compile(twin, fullgraph=True)
        start = time.perf_counter()
        training_loss(compiled(x), target).backward()
        if device.type == "cuda":  # kernels run asynchronously: the step is done when the device is
            torch.cuda.synchronize()
        took = time.perf_counter() - start
        grads = dict(model.named_parameters())
        diff = max((p.grad - grads[k].grad).abs().max().item() for k, p in twin.named_parameters())
        top = max(p.grad.abs().max().item() for p in model.parameters())
        h, w = x.shape[-2:]
        yield (f"| {name} | {batch}×3×{h}×{w} | {explain.graph_break_count} | {took:.0f} s | {diff:.1e} | {top:.1e} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds of the step figure (≥ 5 for the record)")
    parser.add_argument("--batch", type=int, default=4, help="batch of the step and compile figures")
    parser.add_argument("--saved-batch", type=int, default=2, help="batch of the saved-bytes figure")
    parser.add_argument("--specs", type=Path, default=ROOT / "specs")
    parser.add_argument(
        "--networks",
        help="comma-separated names (default: the step figure's three; every zoo network with a reference for the saved figure)",
    )
    parser.add_argument("--compile-networks", default="googlenet", help="networks of the compile figure")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--figures", default="step,saved,compile", help="comma-separated subset of: step, saved, compile")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    present = [n for n in REFERENCES if (args.specs / f"{n}.yaml").is_file()]
    chosen = args.networks.split(",") if args.networks else None
    figures = set(args.figures.split(","))
    out = [
        "## Machine",
        "",
        *machine(),
        f"- device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}",
        f"- step: batch {args.batch}, {args.runs} interleaved rounds; saved: batch {args.saved_batch}",
        "",
    ]
    print("\n".join(out), flush=True)
    sections = [
        (
            "step",
            "One training step, compiled vs reference (target ≤ 1.02×)",
            lambda: step_rows(args.specs, chosen or [n for n in STEP_NETWORKS if n in present], args.runs, args.batch, device),
        ),
        (
            "saved",
            "Bytes saved for backward, one training forward (target ≤ the reference's)",
            lambda: saved_rows(args.specs, chosen or present, args.saved_batch, device),
        ),
        (
            "compile",
            "torch.compile(fullgraph=True) of the compiled model, one training step",
            lambda: compile_rows(args.specs, args.compile_networks.split(","), args.batch, device),
        ),
    ]
    for key, title, rows in sections:
        if key in figures:
            print(f"### {title}\n", flush=True)
            for row in rows():
                print(row, flush=True)
            print(flush=True)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
