"""One training run: the model, its data, optimizer and state; ``Run.loop`` trains it."""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from archspec.train.checkpoint import checkpoint_problem, load_checkpoint, load_into, save_checkpoint
from archspec.train.data import DIGITS, Seeded, Shard, val_loader
from archspec.train.options import UsageError
from archspec.train.process import Context, rng_state, seed_everything, set_rng_state
from archspec.train.progress import Log, Progress
from archspec.train.setup import overrides_of, sized, spec_name

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
def evaluate(model: nn.Module, loader: DataLoader[Any], ctx: Context, autocast: Any, channels_last: bool) -> dict[str, float]:
    """Top-1 and top-5 accuracy (and the mean loss) of the main output, over every process's share."""
    was_training = model.training
    model.eval()
    sums = [0.0, 0.0, 0.0, 0.0]  # top-1 hits, top-5 hits, loss sum, images
    for images, target in loader:
        images = images.to(ctx.device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = target.to(ctx.device, non_blocking=True)
        with autocast():
            logits = model(images).float()
        top1, top5 = topk_correct(logits, target, (1, min(5, logits.shape[1])))
        loss = F.cross_entropy(logits, target, reduction="sum").item()
        sums = [sums[0] + top1, sums[1] + top5, sums[2] + loss, sums[3] + len(target)]
    model.train(was_training)
    hits1, hits5, total, n = ctx.sum(sums)
    count = max(n, 1.0)
    return {"val_top1": hits1 / count, "val_top5": hits5 / count, "val_loss": total / count, "val_images": int(n)}


class Run:
    """One training run: the model, its data, optimizer and state; ``loop`` trains it."""

    def __init__(self, args: argparse.Namespace, ctx: Context) -> None:
        import archspec

        self.args, self.ctx = args, ctx
        seed_everything(args.seed)  # the same initial weights on every process
        overrides, data, report = sized(args, overrides_of(args), ctx)
        if args.pretrained:
            model = self.model = archspec.build(args.spec, overrides, pretrained=True)
        else:
            model = self.model = archspec.build(args.spec, overrides)
        self.resuming = bool(args.resume and args.checkpoint and args.checkpoint.exists())
        if args.weights_from and not self.resuming:
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
        self._data(data, report)
        self._optimizer()
        self.config = {
            "spec": spec_name(args.spec, report),
            "spec_sha256": hashlib.sha256(report.digest.encode()).hexdigest(),
            "set": list(args.overrides),
            "num_classes": int(report.output_shape[-1]),
            "world_size": ctx.world,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "images": len(data),
        }
        # batch: batches done in the current epoch; loss_*: the epoch's mean training loss so far
        self.state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "loss_sum": 0.0, "loss_count": 0, "lr": args.lr}
        resumed = self.resume() if self.resuming else None
        self.log = Log(args.log, ctx.main, resumed)
        self.net: nn.Module = model
        if ctx.distributed:
            devices = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=devices)
        if args.compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        self.last_loss = float("nan")
        self.history: list[dict[str, Any]] = []
        self.bar = Progress(ctx.main and not args.no_progress, self.total_steps, self.state["step"])

    def _data(self, data: Any, report: Any) -> None:
        args, ctx = self.args, self.ctx
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
        val = args.val if args.val is not None else (DIGITS if args.data == DIGITS else None)
        shape = (report.input_channels, *report.input_size)
        self.validation = val_loader(val, args.data, args, ctx, shape, data) if val else None

    def _optimizer(self) -> None:
        args = self.args
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
        total = self.total_steps = args.steps or args.epochs * self.per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        self.fp16 = args.amp == "fp16"
        self.scaler = torch.amp.GradScaler(self.ctx.device.type, enabled=self.fp16)
        self.amp_dtype = AMP_DTYPES.get(args.amp or "")

    def autocast(self) -> Any:
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()

    def resume(self) -> int:
        args, ctx = self.args, self.ctx
        saved = load_checkpoint(args.checkpoint, ctx.device)
        problem = checkpoint_problem(saved, self.config, self.per_epoch)
        if problem is None and saved["state"]["step"] > self.total_steps:
            problem = f"it is at step {saved['state']['step']}, past this run's {self.total_steps} steps"
        try:
            if problem:
                raise UsageError(problem)
            load_into("weights ('model')", self.model, saved["model"], strict=True)
            load_into("optimizer state", self.optimizer, saved["optimizer"])
            load_into("scheduler state", self.scheduler, saved["scheduler"])
            load_into("gradient scaler state", self.scaler, saved["scaler"])
            set_rng_state(saved["rng"][ctx.rank], ctx.device)
        except UsageError as e:
            raise UsageError(
                f"cannot resume from {args.checkpoint}: {e}. Resume with the same options, or train into a new --checkpoint"
            ) from None
        except (TypeError, ValueError, RuntimeError, IndexError, KeyError) as e:  # a random state of the wrong kind
            raise UsageError(
                f"cannot resume from {args.checkpoint}: its random states do not load ({type(e).__name__}: {e})"
            ) from None
        self.state = {k: saved["state"][k] for k in self.state}
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
            training = {
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
                "spec": self.config["spec"],
                "overrides": list(self.args.overrides),
            }
            save_checkpoint(self.args.checkpoint, training)
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
        self.history.append(record)
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
            raise UsageError(f"loss is {value} at step {self.state['step'] + 1}; lower --lr")
        return value

    def _after_step(self, images_per_s: float) -> None:
        state = self.state
        self.bar.update(state["step"], state["epoch"], self.last_loss, state["lr"], images_per_s)
        if state["step"] % self.args.log_every == 0:
            record = {"step": state["step"], "epoch": state["epoch"] + 1, "loss": self.last_loss, "lr": state["lr"]}
            self.log.write(record | {"images_per_s": round(images_per_s, 2)})

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
            self._after_step(len(target) * self.ctx.world / (now - tick))
            tick = now
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

    def loop(self) -> nn.Module:
        args, state = self.args, self.state
        while state["step"] < self.total_steps and (args.steps or state["epoch"] < args.epochs):
            if not self.epoch():
                return self.model
        self.bar.close()
        if self.ctx.main:
            print(f"step {state['step']}: loss {self.last_loss:.4f}", file=sys.stderr)
        self.ctx.sync_buffers(self.model)
        return self.model
