"""Where a training process stands (rank, world size, device; DDP under torchrun) and its random state."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from archspec.train.options import UsageError


class Context:
    """Where this process stands: rank, world size, device; DDP is set up when torchrun started us."""

    def __init__(self, device: str) -> None:
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        want_cuda = device.startswith("cuda") or (not device and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise UsageError("--device cuda: no GPU is available to torch here")
        if device and not device.startswith(("cuda", "cpu")):
            raise UsageError(f"--device {device}: expected cpu or cuda")
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
        return list(t.tolist())

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
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's random state, in types torch.load(weights_only=True) reads back."""
    numpy_state: Any = np.random.get_state()
    kind, keys, pos, has_gauss, gauss = numpy_state
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
