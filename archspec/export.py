"""Compiled model → files other runtimes load: ONNX, torch.export (.pt2), TorchScript (.ts).

Every format is written in inference mode (the main output only; auxiliary heads are a
training device) with a dynamic batch dimension, and written atomically. Weights come from
``--weights``: a saved ``state_dict`` (or a training checkpoint holding one under ``model``),
loaded strictly, so a mismatch is a located error naming the keys rather than a silent partial load.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from archspec.errors import Loc, SpecError, printable
from archspec.fileio import atomic_path, open_regular

# the spec's input with this batch: torch.export specialises sizes 0 and 1, so the example uses 2
EXAMPLE_BATCH = 2
SHOWN = 5  # keys listed in a weights error
# Exporting runs the network once on an example batch at the spec's input size; this bounds the
# activations of that run (every op's output summed, an upper bound of what is alive at once), as
# --max-params bounds the weights: 2**30 values are 4 GiB in float32.
MAX_ACTIVATIONS = 1 << 30


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a file: a bare one, or a checkpoint's under 'model' / 'state_dict'."""
    where = Loc(printable(str(path)), 0, 0)
    fd = open_regular(path, "weights file")  # never a FIFO or device: it would hang or never end
    try:
        with os.fdopen(fd, "rb") as f:
            data = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise SpecError(f"cannot read weights from {printable(str(path))}: {_load_problem(e)}", where,
                        code="weights", hint="expected a file written by torch.save(model.state_dict(), FILE)") from None
    if isinstance(data, dict):
        for key in ("model", "state_dict"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SpecError(f"{path} holds no state_dict (a mapping of names to tensors)", where, code="weights",
                        hint="save one with torch.save(model.state_dict(), FILE)")
    return data


def _load_problem(e: Exception) -> str:
    """One line on why torch.load refused a file; torch's own advice (to load unsafely) is left out."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) or "weights_only" in text or "Weights only load failed" in text:
        return ("it holds Python objects other than tensors and plain containers, which archspec never loads "
                "(a pickle can run code)")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return printable(f"not a PyTorch file ({type(e).__name__}: {first[:200]})" if first else type(e).__name__)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a state_dict strictly; differences become one SpecError naming the keys."""
    state = read_state_dict(path)
    where = Loc(str(path), 0, 0)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {_listing(unexpected)}")
    if problems:
        hint = ("the file was saved from a DistributedDataParallel wrapper; save model.module.state_dict()"
                if unexpected and all(k.startswith("module.") for k in unexpected) else
                "the weights must come from a network with the same module paths (the spec's names)")
        raise SpecError(f"weights in {path} do not fit the network: " + "; ".join(problems), where,
                        code="weights", hint=hint)
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        raise SpecError(f"weights in {path} have other shapes (file vs network): {_listing(wrong)}", where,
                        code="weights", hint="check the spec's channel counts and --set overrides")
    model.load_state_dict(state, strict=True)


def inference_module(model: nn.Module) -> nn.Module:
    """The module computing the main output in eval mode (a network with aux heads has one of its own)."""
    model.eval()
    inference = getattr(model, "inference", None)
    return inference().eval() if callable(inference) else model


def example_input(model: nn.Module) -> torch.Tensor:
    report = model.archspec_report
    h, w = report.input_size
    return torch.randn(EXAMPLE_BATCH, report.input_channels, h, w)


def _batch_dim() -> dict[str, dict[int, Any]]:
    return {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}


def metadata(model: nn.Module) -> dict[str, str]:
    """What an exported file says about where it came from (ONNX metadata_props, shown by Netron)."""
    from archspec import __version__

    report = model.archspec_report
    return {"archspec_version": __version__, "archspec_spec": report.name, "archspec_spec_file": str(report.file),
            "archspec_input": "{}×{}×{}".format(report.input_channels, *report.input_size),
            "archspec_accepted_input_sizes": report.accepted.describe(), "archspec_params": str(report.params)}


def to_onnx(module: nn.Module, x: torch.Tensor, path: Path, meta: dict[str, str] | None = None) -> None:
    program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes=_batch_dim(), input_names=["x"],
                                output_names=["logits"], verbose=False)
    program.model.metadata_props.update(meta or {})
    program.save(str(path), external_data=False)


def to_pt2(module: nn.Module, x: torch.Tensor, path: Path) -> None:
    program = torch.export.export(module, (x,), dynamic_shapes=_batch_dim())
    torch.export.save(program, str(path))


def to_torchscript(module: nn.Module, x: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # TorchScript's deprecation notice and its notes on fx's generated code
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.jit.script(module).save(str(path))


FORMATS: dict[str, Callable[[nn.Module, torch.Tensor, Path], None]] = {
    ".onnx": to_onnx,
    ".pt2": to_pt2,
    ".ts": to_torchscript,
}


def activation_count(model: nn.Module) -> int:
    """Values computed by one forward of the example batch: every op's output at the spec's input size."""
    report = model.archspec_report
    graph = report.graph
    h, w = report.input_size
    total = 0
    for _, record in graph.records():
        shape = record.shape
        if shape is not None:
            total += math.prod(shape.at(h, w))
    return total * EXAMPLE_BATCH


def check_activations(model: nn.Module, max_activations: int = MAX_ACTIVATIONS) -> None:
    """Refuse, before any tensor is made, a network whose example run would not fit the budget."""
    count = activation_count(model)
    if count > max_activations:
        report = model.archspec_report
        h, w = report.input_size
        raise SpecError(f"exporting at the input size {h}×{w} computes {count:,} activation values "
                        f"(batch {EXAMPLE_BATCH}), more than the budget of {max_activations:,}",
                        Loc(printable(report.file), 0, 0), code="limit",
                        hint="lower input.size (--set input.size=[H,W]) or raise --max-activations")


def writer_of(path: str | Path) -> Callable[[nn.Module, torch.Tensor, Path], None]:
    """The writer of the format the file name's suffix names; a SpecError when it names none."""
    target = Path(path)
    writer = FORMATS.get(target.suffix)
    if writer is None:
        raise SpecError(f"cannot tell the format of {printable(str(target))}: the name must end in {', '.join(FORMATS)}",
                        Loc(printable(str(target)), 0, 0), code="io",
                        hint="name it *.onnx (ONNX), *.pt2 (torch.export) or *.ts (TorchScript)")
    return writer


def export(model: nn.Module, path: str | Path, max_activations: int = MAX_ACTIVATIONS) -> None:
    """Write the model in the format its file name's suffix names, atomically."""
    target = Path(path)
    writer = writer_of(target)
    check_activations(model, max_activations)
    module = inference_module(model)
    x = example_input(model)
    with torch.no_grad(), atomic_path(target) as tmp:
        if writer is to_onnx:
            to_onnx(module, x, tmp, metadata(model))
        else:
            writer(module, x, tmp)
