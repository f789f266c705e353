"""Train any archspec network: synthetic data or an ImageFolder, one process or many (DDP).

    python examples/train.py specs/inception_v4.yaml --data synthetic --steps 100
    python examples/train.py specs/googlenet.yaml --data /data/imagenet/train --epochs 90 \\
        --checkpoint runs/googlenet.pt --resume
    torchrun --nproc_per_node 4 examples/train.py specs/inception_v4.yaml --data /data/imagenet/train

Under torchrun each process trains a DistributedDataParallel replica (NCCL on GPUs, gloo on CPU)
on its shard of the data. Auxiliary heads are trained with the weights the spec gives them
(GoogLeNet: 0.3 each); their outputs come back in training mode only. The checkpoint is written
atomically (a crash never leaves a half-written file) and --resume continues from it: weights,
optimizer, scheduler, step and epoch.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

import archspec
from archspec.fileio import write_atomic
from archspec.overrides import parse_assignment

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", help="a spec YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec value, e.g. --set input.size=[64,64] (repeatable)")
    p.add_argument("--data", default="synthetic", help="'synthetic', or an ImageFolder root (one folder per class)")
    p.add_argument("--synthetic-size", type=int, default=256, help="images in the synthetic data set")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=0,
                   help="train for this many optimizer steps in all, however many epochs that takes (0: use --epochs)")
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--workers", type=int, default=2, help="data loader processes per training process")
    p.add_argument("--checkpoint", type=Path, help="where to save (and, with --resume, load) the training state")
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps (0: per epoch only)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint when it exists")
    p.add_argument("--weights-from", metavar="SOURCE",
                   help="start from another network's weights (archspec.transfer: blocks paired as diff pairs "
                        "them): a saved state_dict, or timm:NAME / torchvision:NAME (pretrained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


# ---- processes ---------------------------------------------------------------------------------
class Context:
    """Where this process stands: rank, world size, device; DDP is set up when torchrun started us."""

    def __init__(self, device: str) -> None:
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        want_cuda = device.startswith("cuda") or (not device and torch.cuda.is_available())
        local = int(os.environ.get("LOCAL_RANK", "0")) if self.distributed else 0
        if want_cuda:
            torch.cuda.set_device(local)  # before NCCL starts, so each process talks through its own GPU
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device("cpu")
        if self.distributed:
            dist.init_process_group(backend="nccl" if want_cuda else "gloo")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        else:
            self.rank, self.world = 0, 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], device=self.device, dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world

    def sync_buffers(self, model: nn.Module) -> None:
        """BatchNorm statistics as on rank 0 everywhere (DDP syncs them only at the start of a forward)."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def close(self) -> None:
        if self.distributed:
            dist.destroy_process_group()


# ---- data --------------------------------------------------------------------------------------
class Synthetic(Dataset):
    """Random images with random labels, the same on every process (image i is seeded by i)."""

    def __init__(self, size: int, channels: int, hw: tuple[int, int], classes: int, seed: int) -> None:
        self.size, self.channels, self.hw, self.classes, self.seed = size, channels, hw, classes, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        image = torch.randn(self.channels, *self.hw, generator=g)
        return image, int(torch.randint(self.classes, (1,), generator=g))


def dataset(args: argparse.Namespace, channels: int, hw: tuple[int, int], classes: int) -> Dataset:
    if args.data == "synthetic":
        return Synthetic(args.synthetic_size, channels, hw, classes, args.seed)
    from torchvision import datasets, transforms

    transform = transforms.Compose([
        transforms.RandomResizedCrop(hw), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    data = datasets.ImageFolder(args.data, transform=transform)
    if len(data.classes) > classes:
        raise SystemExit(f"{args.data} has {len(data.classes)} classes but the network predicts {classes}; "
                         f"set the last layer's size, e.g. --set network.fc='linear {len(data.classes)}'")
    return data


class Shard(Sampler[int]):
    """This process's share of a seeded shuffle of the data, from a given batch on (to resume mid-epoch).

    Every process draws the same permutation for an epoch and takes every world-th image of it, so
    the shares are disjoint and of equal size (the remainder is dropped).
    """

    def __init__(self, size: int, rank: int, world: int, seed: int, batch_size: int) -> None:
        self.size, self.rank, self.world, self.seed, self.batch_size = size, rank, world, seed, batch_size
        self.per_process = size // world
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        mine = order[self.rank::self.world][: self.per_process]
        return iter(mine[self.start:])

    def __len__(self) -> int:
        return self.per_process - self.start


# ---- the loss ----------------------------------------------------------------------------------
def loss_of(output: Any, target: torch.Tensor, aux_weights: dict[str, float]) -> tuple[torch.Tensor, float]:
    """Cross-entropy of the logits plus each auxiliary head's, weighted as the spec says."""
    if not isinstance(output, dict):
        loss = F.cross_entropy(output, target)
        return loss, loss.item()
    main = F.cross_entropy(output["logits"], target)
    loss = main
    for name, weight in aux_weights.items():
        loss = loss + weight * F.cross_entropy(output[name], target)
    return loss, main.item()


# ---- checkpoints -------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    state: dict[str, int], args: argparse.Namespace) -> None:
    """Serialise in memory, then write atomically: the old checkpoint survives any crash mid-write."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), **state,
                "spec": str(args.spec), "overrides": list(args.overrides)}, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    device: torch.device) -> dict[str, int]:
    data = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(data["model"], strict=True)
    optimizer.load_state_dict(data["optimizer"])
    scheduler.load_state_dict(data["scheduler"])
    return {"step": int(data["step"]), "epoch": int(data["epoch"]), "batch": int(data["batch"])}


# ---- progress ----------------------------------------------------------------------------------
def progress(items: Any, total: int, enabled: bool, desc: str) -> Iterator[Any]:
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        start = time.time()
        for i, item in enumerate(items, 1):
            yield item
            if i % 10 == 0 or i == total:
                print(f"{desc}: {i}/{total} ({time.time() - start:.0f}s)", file=sys.stderr)
        return
    yield from tqdm(items, total=total, desc=desc, dynamic_ncols=True)


# ---- training ----------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> tuple[nn.Module, float]:
    """Train; returns the (unwrapped) model and the last mean training loss of the main output."""
    ctx = Context(args.device)
    try:
        return _train(args, ctx)
    finally:
        ctx.close()


def _train(args: argparse.Namespace, ctx: Context) -> tuple[nn.Module, float]:
    torch.manual_seed(args.seed)  # the same initial weights on every process
    overrides = dict(parse_assignment(a) for a in args.overrides)
    model = archspec.build(args.spec, overrides)
    report = model.archspec_report
    if args.weights_from and not (args.resume and args.checkpoint and args.checkpoint.exists()):
        from archspec.transfer import transfer, weights_source

        carried = transfer(weights_source(args.weights_from), model)  # the same on every process
        if ctx.main:
            print(carried.table(), file=sys.stderr)
    aux_weights: dict[str, float] = dict(getattr(model, "aux_weights", {}))
    model.to(ctx.device)
    data = dataset(args, report.input_channels, report.input_size, report.output_shape[-1])
    sampler = Shard(len(data), ctx.rank, ctx.world, args.seed, args.batch_size)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers, drop_last=True,
                        pin_memory=ctx.device.type == "cuda")
    per_epoch = sampler.per_process // args.batch_size
    if per_epoch == 0:
        raise SystemExit(f"not one full batch of {args.batch_size}: {sampler.per_process} images per process")
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    total_steps = args.steps or args.epochs * per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    state = {"step": 0, "epoch": 0, "batch": 0}  # batch: batches done in the current epoch
    if args.resume and args.checkpoint and args.checkpoint.exists():
        state = load_checkpoint(args.checkpoint, model, optimizer, scheduler, ctx.device)
        if ctx.main:
            print(f"resumed from {args.checkpoint} at step {state['step']} (epoch {state['epoch'] + 1}, batch "
                  f"{state['batch']})", file=sys.stderr)
    net: nn.Module = model
    if ctx.distributed:
        devices = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=devices)
    last_loss = float("nan")

    def checkpoint() -> None:
        if args.checkpoint and ctx.main:
            save_checkpoint(args.checkpoint, model, optimizer, scheduler, state, args)
        ctx.barrier()

    while state["step"] < total_steps and (args.steps or state["epoch"] < args.epochs):
        sampler.set_epoch(state["epoch"], state["batch"])
        net.train()
        desc = f"epoch {state['epoch'] + 1}" + ("" if args.steps else f"/{args.epochs}")
        for images, target in progress(loader, len(loader), ctx.main and not args.no_progress, desc):
            images = images.to(ctx.device, non_blocking=True)
            target = target.to(ctx.device, non_blocking=True)
            loss, main_loss = loss_of(net(images), target, aux_weights)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {loss.item()} at step {state['step']}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            state["batch"] += 1
            last_loss = ctx.mean(main_loss)
            if args.save_every and state["step"] % args.save_every == 0:
                checkpoint()
            if state["step"] >= total_steps:
                break
        else:
            state["epoch"] += 1
            state["batch"] = 0
        if ctx.main:
            print(f"step {state['step']}: loss {last_loss:.4f}", file=sys.stderr)
        checkpoint()
    ctx.sync_buffers(model)
    return model, last_loss


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except archspec.SpecError as e:
        print(e.format(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
