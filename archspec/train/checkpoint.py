"""Training checkpoints: what a run must agree with to resume, written atomically, read back and
checked before anything in it is used (a malformed file is one clear line, never a traceback)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import torch

from archspec.fileio import write_atomic
from archspec.train.options import UsageError

# what the state part of a checkpoint holds, and of which type
STATE_TYPES: dict[str, tuple[type, ...]] = {
    "step": (int,),
    "epoch": (int,),
    "batch": (int,),
    "loss_sum": (float, int),
    "loss_count": (int,),
    "lr": (float, int),
}
PARTS = ("model", "optimizer", "scheduler", "scaler", "state", "rng", "config")
CONFIG_WORDS = {
    "num_classes": "--num-classes",
    "world_size": "the world size (processes)",
    "batch_size": "--batch-size",
    "seed": "--seed",
    "images": "the number of training images",
}


def config_difference(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The first difference between a checkpoint's run and this one, in words; None when they agree."""
    if saved.get("set") != now["set"]:

        def show(s: Any) -> str:
            return " ".join(f"--set {a}" for a in s) if isinstance(s, list) and s else "no --set"

        return f"--set differs: the checkpoint has {show(saved.get('set'))}, this run {show(now['set'])}"
    if saved.get("spec_sha256") != now["spec_sha256"]:
        same = "same name, changed since" if saved.get("spec") == now["spec"] else f"this run has {now['spec']}"
        return f"the spec differs: the checkpoint was made from {saved.get('spec')} ({same})"
    for key, word in CONFIG_WORDS.items():
        if saved.get(key) != now[key]:
            return f"{word} differs: the checkpoint has {saved.get(key, 'none recorded')}, this run {now[key]}"
    return None


def save_checkpoint(path: Path, training: dict[str, Any]) -> None:
    """Serialise in memory, then write atomically: the old checkpoint survives any crash mid-write."""
    buffer = io.BytesIO()
    torch.save(training, buffer)
    write_atomic(path, buffer.getvalue())


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


def load_checkpoint(path: Path, device: torch.device) -> Any:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 — a file we cannot read is the user's to fix
        raise UsageError(f"cannot resume from {path}: not a checkpoint torch can read ({_first_line(e)})") from None


def _state_problem(state: Any, per_epoch: int) -> str | None:
    if not isinstance(state, dict):
        return "its 'state' is not a mapping"
    for key, types in STATE_TYPES.items():
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, types):
            return f"its state has no {key} of type {types[0].__name__} (got {value!r:.40})"
    if not 0 <= state["batch"] <= per_epoch or state["epoch"] < 0:
        return f"its state's epoch {state['epoch']} and batch {state['batch']} are out of range ({per_epoch} batches per epoch)"
    if state["step"] != state["epoch"] * per_epoch + state["batch"]:
        return (
            f"its step {state['step']} does not follow from its epoch {state['epoch']} and batch {state['batch']} "
            f"({per_epoch} batches per epoch)"
        )
    return None


def _rng_problem(rng: Any, world: int) -> str | None:
    if not isinstance(rng, list) or len(rng) != world:
        return f"its random states ('rng') are not a list of {world} (one per process)"
    for r in rng:
        if not isinstance(r, dict) or not isinstance(r.get("torch"), torch.Tensor):
            return "a random state in it ('rng') has no torch generator state"
        python, numpy = r.get("python"), r.get("numpy")
        if not (isinstance(python, (tuple, list)) and len(python) == 3 and isinstance(numpy, (tuple, list)) and len(numpy) == 5):
            return "a random state in it ('rng') has no Python or NumPy state"
    return None


def checkpoint_problem(saved: Any, now: dict[str, Any], per_epoch: int) -> str | None:
    """What makes ``saved`` unusable to resume the run configured ``now``, in words: not a
    checkpoint, another run's (the first difference named), or parts that do not agree."""
    if not isinstance(saved, dict):
        return f"it holds a {type(saved).__name__}, not a training checkpoint (a mapping with {', '.join(PARTS)})"
    missing = [p for p in PARTS if p not in saved]
    if missing == ["config"]:
        return "it was written by an older train.py (no run configuration in it)"
    if missing:
        return f"it has no {', '.join(missing)} (written by another program, or only weights?)"
    for part in ("model", "optimizer", "scheduler", "scaler", "config"):
        if not isinstance(saved[part], dict):
            return f"its '{part}' is a {type(saved[part]).__name__}, not a mapping"
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in saved["model"].items()):
        return "its 'model' is not a state_dict (names to tensors)"
    return (
        config_difference(saved["config"], now)
        or _state_problem(saved["state"], per_epoch)
        or _rng_problem(saved["rng"], now["world_size"])
    )


def load_into(what: str, target: Any, state: Any, **kwargs: Any) -> None:
    """``target.load_state_dict(state)``, its failure one line."""
    try:
        target.load_state_dict(state, **kwargs)
    except Exception as e:  # noqa: BLE001 — a checkpoint that does not fit is the user's to fix
        raise UsageError(f"its {what} does not fit this run: {_first_line(e)}") from None


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
