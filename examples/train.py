"""Train any archspec network: synthetic data or an ImageFolder, one process or many (DDP).

    python examples/train.py specs/inception_v4.yaml --data synthetic --steps 100
    python examples/train.py specs/googlenet.yaml --data /data/imagenet/train --val /data/imagenet/val \\
        --epochs 90 --checkpoint runs/googlenet.pt --log-file runs/googlenet.jsonl --resume
    torchrun --nproc_per_node 4 examples/train.py specs/inception_v4.yaml --data /data/imagenet/train

Under torchrun each process trains a DistributedDataParallel replica (NCCL on GPUs, gloo on CPU)
on its shard of the data. Auxiliary heads are trained with the weights the spec gives them
(GoogLeNet: 0.3 each); their outputs come back in training mode only.

The checkpoint is written atomically (a crash never leaves a half-written file) and holds everything
a run depends on: weights, optimizer, scheduler, gradient scaler, step and epoch, and every process's
random state (torch CPU and CUDA, Python, NumPy; the sampler's order and each image's augmentation
are derived from --seed, the epoch and the image). A run stopped at any step (--stop-at, or a crash
after a checkpoint) and continued with --resume ends bit-identical to a run that never stopped.
Resuming with another spec, --set, world size, batch size, seed or training-set size is refused, the difference named.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
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
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class UsageError(Exception):
    """A mistake in the command line or its files: one line for the user, exit status 2, no traceback."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", help="a spec YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set input.size=[64,64] (repeatable)",
    )
    p.add_argument("--data", default="synthetic", help="'synthetic', or an ImageFolder root (one folder per class)")
    p.add_argument("--val", type=Path, help="an ImageFolder root to report top-1/top-5 on after every epoch")
    p.add_argument(
        "--augment",
        choices=("imagenet", "none"),
        default="imagenet",
        help="training images: random resized crop and flip (imagenet), or only resized (none)",
    )
    p.add_argument("--synthetic-size", type=int, default=256, help="images in the synthetic data set")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        help="train for this many optimizer steps in all, however many epochs that takes (0: use --epochs)",
    )
    p.add_argument(
        "--stop-at",
        type=int,
        default=0,
        metavar="STEP",
        help="checkpoint and stop once this many steps are done (a job's time slice; go on with --resume)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--workers", type=int, default=2, help="data loader processes per training process")
    p.add_argument("--checkpoint", type=Path, help="where to save (and, with --resume, load) the training state")
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps (0: per epoch only)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint when it exists")
    p.add_argument(
        "--log-file", dest="log", type=Path, help="append JSON lines here: step, loss, lr, images/s; val top-1/top-5 per epoch"
    )
    p.add_argument("--log-every", type=int, default=10, help="steps between training records in --log-file")
    p.add_argument(
        "--weights-from",
        metavar="SOURCE",
        help="start from another network's weights (archspec.transfer: blocks paired as diff pairs "
        "them): a saved state_dict, or timm:NAME / torchvision:NAME (pretrained)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--amp", choices=tuple(AMP_DTYPES), help="mixed precision: bf16, or fp16 with a gradient scaler (GPU)")
    p.add_argument("--channels-last", action="store_true", help="weights and images in channels_last memory format")
    p.add_argument("--compile", action="store_true", help="train through torch.compile")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


# ---- processes ---------------------------------------------------------------------------------
class Context:
    """Where this process stands: rank, world size, device; DDP is set up when torchrun started us."""

    def __init__(self, device: str) -> None:
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        want_cuda = device.startswith("cuda") or (not device and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise UsageError("--device cuda: no GPU is available to torch here")
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

    def sum(self, values: list[float]) -> list[float]:
        if not self.distributed:
            return values
        t = torch.tensor(values, device=self.device, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def mean(self, value: float) -> float:
        return self.sum([value])[0] / self.world

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (on every process)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def agree(self, error: str | None) -> None:
        """Raise the first process's error on every process, so that none waits for the others forever."""
        errors = [e for e in self.gather(error) if e]
        if errors:
            raise UsageError(errors[0])

    def sync_buffers(self, model: nn.Module) -> None:
        """BatchNorm statistics as on rank 0 everywhere (DDP syncs them only at the start of a forward)."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def close(self) -> None:
        if self.distributed:
            dist.destroy_process_group()


# ---- random state ------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random state, in types torch.load(weights_only=True) reads back."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation in one epoch: independent of workers, ranks and resumes."""
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) % 2**63


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


class Seeded(Dataset):
    """Takes (epoch, index) from the sampler and draws the image's random augmentation from a
    generator seeded by (seed, epoch, index); the process's own random state is left as it was."""

    def __init__(self, data: Dataset, seed: int) -> None:
        self.data, self.seed = data, seed

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        python = random.getstate()
        with torch.random.fork_rng(devices=[]):
            s = sample_seed(self.seed, epoch, index)
            torch.manual_seed(s)
            random.seed(s)
            try:
                return self.data[index]
            finally:
                random.setstate(python)


def image_folder(root: Path, hw: tuple[int, int], train: bool, augment: str) -> Any:
    from torchvision import datasets, transforms

    if not root.is_dir():
        raise UsageError(f"{root}: no such folder (expected an ImageFolder root: one sub-folder of images per class)")
    if train and augment == "imagenet":
        steps = [transforms.RandomResizedCrop(hw), transforms.RandomHorizontalFlip()]
    elif augment == "imagenet":  # the usual evaluation crop: the central 87.5 %
        steps = [transforms.Resize(tuple(round(s / 0.875) for s in hw)), transforms.CenterCrop(hw)]
    else:
        steps = [transforms.Resize(hw)]
    transform = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    try:
        return datasets.ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise UsageError(f"{root}: {e}") from None


def dataset(args: argparse.Namespace, channels: int, hw: tuple[int, int], classes: int) -> Dataset:
    if args.data == "synthetic":
        return Synthetic(args.synthetic_size, channels, hw, classes, args.seed)
    data = image_folder(Path(args.data), hw, True, args.augment)
    if len(data.classes) > classes:
        raise UsageError(
            f"{args.data} has {len(data.classes)} classes but the network predicts {classes}; "
            f"set the last layer's size, e.g. --set network.fc='linear {len(data.classes)}'"
        )
    return data


class Shard(Sampler[tuple[int, int]]):
    """This process's share of a seeded shuffle of the data, from a given batch on (to resume mid-epoch).

    Every process draws the same permutation for an epoch and takes every world-th image of it, so
    the shares are disjoint and of equal size (the remainder is dropped). Yields (epoch, index).
    """

    def __init__(self, size: int, rank: int, world: int, seed: int, batch_size: int) -> None:
        self.size, self.rank, self.world, self.seed, self.batch_size = size, rank, world, seed, batch_size
        self.per_process = size // world
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        mine = order[self.rank :: self.world][: self.per_process]
        return iter([(self.epoch, i) for i in mine[self.start :]])

    def __len__(self) -> int:
        return self.per_process - self.start


# ---- the loss and validation -------------------------------------------------------------------
def loss_of(output: Any, target: torch.Tensor, aux_weights: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the logits plus each auxiliary head's, weighted as the spec says; and the
    main output's loss alone (a detached tensor: reading it is left to the caller)."""
    if not isinstance(output, dict):
        loss = F.cross_entropy(output.float(), target)
        return loss, loss.detach()
    main = F.cross_entropy(output["logits"].float(), target)
    loss = main
    for name, weight in aux_weights.items():
        loss = loss + weight * F.cross_entropy(output[name].float(), target)
    return loss, main.detach()


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int]) -> list[int]:
    """How many targets are among the k highest logits, for each k."""
    top = logits.topk(max(ks), dim=1).indices
    hits = top == target[:, None]
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, ctx: Context, autocast: Any, channels_last: bool) -> dict[str, float]:
    """Top-1 and top-5 accuracy (and the mean loss) of the main output, over every process's share."""
    was_training = model.training
    model.eval()
    classes = None
    sums = [0.0, 0.0, 0.0, 0.0]  # top-1 hits, top-5 hits, loss sum, images
    for images, target in loader:
        images = images.to(ctx.device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = target.to(ctx.device, non_blocking=True)
        with autocast():
            logits = model(images)
        logits = logits.float()
        classes = logits.shape[1]
        top1, top5 = topk_correct(logits, target, (1, min(5, classes)))
        sums = [
            sums[0] + top1,
            sums[1] + top5,
            sums[2] + F.cross_entropy(logits, target, reduction="sum").item(),
            sums[3] + len(target),
        ]
    model.train(was_training)
    top1, top5, loss, n = ctx.sum(sums)
    return {"val_top1": top1 / n, "val_top5": top5 / n, "val_loss": loss / n, "val_images": int(n)}


def val_loader(args: argparse.Namespace, ctx: Context, hw: tuple[int, int], train_data: Dataset) -> DataLoader:
    data = image_folder(args.val, hw, False, args.augment)
    train_classes = getattr(train_data, "class_to_idx", None)
    if train_classes is not None and data.class_to_idx != train_classes:
        raise UsageError(
            f"{args.val} and {args.data} have different classes: {sorted(data.class_to_idx)} vs {sorted(train_classes)}"
        )
    mine = list(range(ctx.rank, len(data), ctx.world))  # every image once, over all processes
    return DataLoader(
        torch.utils.data.Subset(data, mine),
        batch_size=args.batch_size,
        num_workers=args.workers,
        pin_memory=ctx.device.type == "cuda",
        generator=torch.Generator(),
    )


# ---- checkpoints -------------------------------------------------------------------------------
def run_config(args: argparse.Namespace, world: int, images: int) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed bit-identically."""
    text = Path(args.spec).read_bytes()
    return {
        "spec": str(args.spec),
        "spec_sha256": hashlib.sha256(text).hexdigest(),
        "set": list(args.overrides),
        "world_size": world,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "images": images,
    }


def config_difference(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The first difference between a checkpoint's run and this one, in words; None when they agree."""
    if saved["spec_sha256"] != now["spec_sha256"]:
        same = "same file name, changed since" if saved["spec"] == now["spec"] else f"this run has {now['spec']}"
        return f"the spec differs: the checkpoint was made from {saved['spec']} ({same})"
    if saved["set"] != now["set"]:

        def show(s: list[str]) -> str:
            return " ".join(f"--set {a}" for a in s) or "no --set"

        return f"--set differs: the checkpoint has {show(saved['set'])}, this run {show(now['set'])}"
    words = {
        "world_size": "the world size (processes)",
        "batch_size": "--batch-size",
        "seed": "--seed",
        "images": "the number of training images",
    }
    for key, word in words.items():
        if saved.get(key) != now[key]:
            return f"{word} differs: the checkpoint has {saved.get(key, 'none recorded')}, this run {now[key]}"
    return None


def save_checkpoint(path: Path, training: dict[str, Any]) -> None:
    """Serialise in memory, then write atomically: the old checkpoint survives any crash mid-write."""
    buffer = io.BytesIO()
    torch.save(training, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 — a file we cannot read is the user's to fix
        raise UsageError(f"cannot resume from {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None


def writable_folder(path: Path, what: str) -> str | None:
    """Create ``path``'s folder and try a file in it; a message if that fails."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"cannot write {what} {path}: {e.strerror or e}"
    return None


# ---- progress ----------------------------------------------------------------------------------
class Progress:
    """Optimizer steps done (of all), with the loss, learning rate and images per second."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        self.bar = None
        self.enabled, self.total, self.last_print = enabled, total, time.time()
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, step: int, epoch: int, loss: float, lr: float, images_per_s: float) -> None:
        if not self.enabled:
            return
        fields = {"epoch": epoch + 1, "loss": f"{loss:.4f}", "lr": f"{lr:.3g}", "img/s": f"{images_per_s:.1f}"}
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(1)
        elif time.time() - self.last_print > 10 or step == self.total:
            self.last_print = time.time()
            print(f"step {step}/{self.total} " + " ".join(f"{k} {v}" for k, v in fields.items()), file=sys.stderr)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Log:
    """JSON lines; on resume, the records after the checkpoint's step (a run that went on before it
    stopped) are dropped, so that the file reads as one run."""

    def __init__(self, path: Path | None, enabled: bool, resumed_step: int | None) -> None:
        self.path = path if enabled else None
        if self.path is None:
            return
        if resumed_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resumed_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:  # strict JSON: a loss that is not finite is written as null
            clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
            with self.path.open("a") as f:
                f.write(json.dumps(clean, allow_nan=False) + "\n")


# ---- training ----------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> tuple[nn.Module, float]:
    """Train; returns the (unwrapped) model and the last mean training loss of the main output."""
    ctx = Context(args.device)
    try:
        return _train(args, ctx)
    finally:
        ctx.close()


def check_options(args: argparse.Namespace, ctx: Context) -> None:
    if args.amp == "fp16" and ctx.device.type != "cuda":
        raise UsageError("--amp fp16 needs a GPU (float16 training uses a gradient scaler); on CPU use --amp bf16")
    if args.stop_at and not args.checkpoint:
        raise UsageError("--stop-at needs --checkpoint (where to save the state to resume from)")
    if args.batch_size < 1 or args.steps < 0 or args.epochs < 1:
        raise UsageError("--batch-size and --epochs must be at least 1, --steps at least 0")
    if not Path(args.spec).is_file():
        raise UsageError(f"{args.spec}: no such spec file")
    error = None
    if ctx.main:
        for path, what in ((args.checkpoint, "the checkpoint"), (args.log, "the log file")):
            if path is not None and error is None:
                error = writable_folder(path, what)
    ctx.agree(error)


def _train(args: argparse.Namespace, ctx: Context) -> tuple[nn.Module, float]:
    check_options(args, ctx)
    run = Run(args, ctx)
    try:
        return run.loop()
    finally:
        run.bar.close()


class Run:
    """One training run: the model, its data, optimizer and state; ``loop`` trains it."""

    def __init__(self, args: argparse.Namespace, ctx: Context) -> None:
        self.args, self.ctx = args, ctx
        seed_everything(args.seed)  # the same initial weights on every process
        overrides = dict(parse_assignment(a) for a in args.overrides)
        model = self.model = archspec.build(args.spec, overrides)
        report = model.archspec_report
        if args.weights_from and not (args.resume and args.checkpoint and args.checkpoint.exists()):
            from archspec.weights import transfer, weights_source

            carried = transfer(weights_source(args.weights_from), model)  # the same on every process
            if ctx.main:
                print(carried.table(), file=sys.stderr)
        self.aux_weights: dict[str, float] = dict(getattr(model, "aux_weights", {}))
        model.to(ctx.device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        seed_everything(args.seed * 1_000_003 + 1 + ctx.rank)  # dropout: each process its own masks
        if ctx.device.type == "cuda":
            torch.cuda.manual_seed(args.seed * 1_000_003 + 1 + ctx.rank)

        data = dataset(args, report.input_channels, report.input_size, report.output_shape[-1])
        self.sampler = Shard(len(data), ctx.rank, ctx.world, args.seed, args.batch_size)
        # the loader's own generator (it seeds worker processes) keeps it off the global random state
        self.loader = DataLoader(
            Seeded(data, args.seed),
            batch_size=args.batch_size,
            sampler=self.sampler,
            num_workers=args.workers,
            drop_last=True,
            pin_memory=ctx.device.type == "cuda",
            generator=torch.Generator().manual_seed(args.seed),
        )
        self.per_epoch = self.sampler.per_process // args.batch_size
        if self.per_epoch == 0:
            raise UsageError(f"not one full batch of {args.batch_size}: {self.sampler.per_process} images per process")
        self.validation = val_loader(args, ctx, report.input_size, data) if args.val else None

        self.optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
        total = self.total_steps = args.steps or args.epochs * self.per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        self.fp16 = args.amp == "fp16"
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.fp16)
        self.amp_dtype = AMP_DTYPES.get(args.amp or "")
        self.config = run_config(args, ctx.world, len(data))  # type: ignore[arg-type]
        # batch: batches done in the current epoch; loss_*: the epoch's mean training loss so far
        self.state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "loss_sum": 0.0, "loss_count": 0, "lr": args.lr}
        resumed = self.resume() if args.resume and args.checkpoint and args.checkpoint.exists() else None
        self.log = Log(args.log, ctx.main, resumed)
        self.net: nn.Module = model
        if ctx.distributed:
            devices = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=devices)
        if args.compile:
            self.net = torch.compile(self.net)
        self.last_loss = float("nan")
        self.bar = Progress(ctx.main and not args.no_progress, self.total_steps, self.state["step"])

    def autocast(self) -> Any:
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()

    def resume(self) -> int:
        args, ctx = self.args, self.ctx
        saved = load_checkpoint(args.checkpoint, ctx.device)
        if "config" in saved:
            difference = config_difference(saved["config"], self.config)
        else:
            difference = "it was written by an older train.py (no run configuration in it)"
        if difference:
            raise UsageError(
                f"cannot resume from {args.checkpoint}: {difference}. Resume with the same options, "
                f"or train into a new --checkpoint"
            )
        self.model.load_state_dict(saved["model"], strict=True)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        self.state = dict(saved["state"])
        set_rng_state(saved["rng"][ctx.rank], ctx.device)
        if ctx.main:
            print(
                f"resumed from {args.checkpoint} at step {self.state['step']} (epoch {self.state['epoch'] + 1}, "
                f"batch {self.state['batch']})",
                file=sys.stderr,
            )
        return int(self.state["step"])

    def checkpoint(self) -> None:
        if not self.args.checkpoint:
            return
        rng = self.ctx.gather(rng_state(self.ctx.device))  # a collective: every process takes part
        if self.ctx.main:
            save_checkpoint(
                self.args.checkpoint,
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "state": self.state,
                    "rng": rng,
                    "config": self.config,
                    # at the top level too, for readers of older checkpoints
                    "step": self.state["step"],
                    "epoch": self.state["epoch"],
                    "spec": str(self.args.spec),
                    "overrides": list(self.args.overrides),
                },
            )
        self.ctx.barrier()

    def end_of_epoch(self, complete: bool) -> None:
        state = self.state
        record: dict[str, Any] = {
            "step": state["step"],
            "epoch": state["epoch"] + 1,
            "loss": state["loss_sum"] / max(state["loss_count"], 1),
            "lr": state["lr"],
        }
        if self.validation is not None:
            record |= evaluate(self.model, self.validation, self.ctx, self.autocast, self.args.channels_last)
        self.log.write(record)
        if self.ctx.main:
            self.bar.write(
                "epoch {epoch}: step {step}, loss {loss:.4f}".format(**record)
                + (" val top-1 {val_top1:.2%} top-5 {val_top5:.2%}".format(**record) if self.validation else "")
            )
        if complete:
            state.update(epoch=state["epoch"] + 1, batch=0, loss_sum=0.0, loss_count=0)

    def step(self, images: torch.Tensor, target: torch.Tensor) -> float:
        """One optimizer step; the main output's loss, averaged over the processes."""
        images = images.to(self.ctx.device, non_blocking=True)
        if self.args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = target.to(self.ctx.device, non_blocking=True)
        with self.autocast():
            output = self.net(images)
        loss, main_loss = loss_of(output, target, self.aux_weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state["lr"] = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        value = self.ctx.mean(main_loss.item())
        if not math.isfinite(value) and not self.fp16:  # fp16: the scaler skips such steps
            raise FloatingPointError(f"loss is {value} at step {self.state['step'] + 1}; lower --lr")
        return value

    def epoch(self) -> bool:
        """Train on the rest of the current epoch; False once training is to stop."""
        args, state = self.args, self.state
        self.sampler.set_epoch(state["epoch"], state["batch"])
        self.net.train()
        tick = time.perf_counter()
        for images, target in self.loader:
            self.last_loss = self.step(images, target)
            state.update(
                step=state["step"] + 1,
                batch=state["batch"] + 1,
                loss_sum=state["loss_sum"] + self.last_loss,
                loss_count=state["loss_count"] + 1,
            )
            now = time.perf_counter()
            images_per_s = len(target) * self.ctx.world / (now - tick)
            tick = now
            self.bar.update(state["step"], state["epoch"], self.last_loss, state["lr"], images_per_s)
            if state["step"] % args.log_every == 0:
                self.log.write(
                    {
                        "step": state["step"],
                        "epoch": state["epoch"] + 1,
                        "loss": self.last_loss,
                        "lr": state["lr"],
                        "images_per_s": round(images_per_s, 2),
                    }
                )
            if state["step"] >= self.total_steps or state["step"] == args.stop_at:
                break
            if args.save_every and state["step"] % args.save_every == 0:
                self.checkpoint()
        if state["step"] == args.stop_at and state["step"] < self.total_steps:
            self.checkpoint()
            if self.ctx.main:
                self.bar.write(f"stopped at step {state['step']}; continue with --resume")
            return False
        if state["batch"] == self.per_epoch:
            self.end_of_epoch(complete=True)
        elif state["step"] >= self.total_steps:  # --steps ends mid-epoch: report where it stands
            self.end_of_epoch(complete=False)
        self.checkpoint()
        return True

    def loop(self) -> tuple[nn.Module, float]:
        args, state = self.args, self.state
        while state["step"] < self.total_steps and (args.steps or state["epoch"] < args.epochs):
            if not self.epoch():
                return self.model, self.last_loss
        self.bar.close()
        if self.ctx.main:
            print(f"step {state['step']}: loss {self.last_loss:.4f}", file=sys.stderr)
        self.ctx.sync_buffers(self.model)
        return self.model, self.last_loss


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (UsageError, archspec.SpecError) as e:
        if os.environ.get("RANK", "0") == "0":
            print(e.format() if isinstance(e, archspec.SpecError) else f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
