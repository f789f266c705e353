"""What a sweep measures of one variant: the static costs (``check``, no torch), the latency of the
optimised model, and (through the package's trainer) the error after a short training."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from archspec.api import Report, activation_count, analyze
from archspec.sweep.space import Latency


def static_metrics(spec: Path | str, overrides: Mapping[str, Any]) -> tuple[Report, dict[str, int]]:
    """What `check` computes, by the names constraints use; a SpecError for an invalid variant."""
    report = analyze(spec, overrides)
    mh, mw = report.min_input_size
    return report, {
        "params": report.params,
        "macs": report.macs,
        "activations": activation_count(report),
        "min_input_h": mh,
        "min_input_w": mw,
    }


def latency_ms(spec: Path | str, overrides: Mapping[str, Any], settings: Latency, report: Report) -> float:
    """Median milliseconds of one forward pass of a batch through the optimised model (float32, eval,
    inference mode), after ``warmup`` passes; torch runs ``threads`` threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:  # the caller's thread count comes back: a sweep run in-process must not change later numerics
        return _median_ms(spec, overrides, settings, report)
    finally:
        torch.set_num_threads(threads)


def _median_ms(spec: Path | str, overrides: Mapping[str, Any], settings: Latency, report: Report) -> float:
    import torch

    from archspec.api import build

    device = torch.device(settings.device)
    model = build(spec, overrides, optimize=True).to(device)
    h, w = report.input_size
    x = torch.randn(settings.batch, report.input_channels, h, w, device=device)
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(settings.warmup + settings.repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= settings.warmup:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
