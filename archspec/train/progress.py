"""What a run shows and keeps: a progress bar (tqdm when installed) and a JSON-lines log."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any


class Progress:
    """Optimizer steps done (of all), with the loss, learning rate and images per second."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        self.bar: Any = None
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
            self.bar = None


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
            kept = [line for line in self.path.read_text().splitlines() if line.strip() and _step(line) <= resumed_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:  # strict JSON: a loss that is not finite is written as null
            clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
            with self.path.open("a") as f:
                f.write(json.dumps(clean, allow_nan=False) + "\n")


def _step(line: str) -> float:
    """A record's step; a line that is not one of ours sorts after every step (and is dropped)."""
    try:
        record = json.loads(line)
    except ValueError:
        return math.inf
    step = record.get("step", 0) if isinstance(record, dict) else math.inf
    return step if isinstance(step, int) else math.inf
