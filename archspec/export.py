"""Compiled model → files other runtimes load: ONNX, torch.export (.pt2), TorchScript (.ts).

Every format is written in inference mode (the main output only; auxiliary heads are a
training device) for any batch, and written atomically. ONNX and .pt2 take the input sizes the
network accepts where torch.export can express them (see "input sizes" below); TorchScript keeps
the network's own input check. Weights come from
``--weights``: a saved ``state_dict`` (or a training checkpoint holding one under ``model``),
loaded strictly, so a mismatch is a located error naming the keys rather than a silent partial load.
"""

from __future__ import annotations

import ast
import logging
import math
import os
import pickle
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from archspec.errors import Loc, SpecError, printable
from archspec.fileio import atomic_path, open_regular
from archspec.report import MAX_ACTIVATIONS, report_of
from archspec.report import activation_count as api_activation_count
from archspec.report import check_activations as api_check_activations
from archspec.symbolic import NEVER

# the spec's input with this batch: torch.export specialises sizes 0 and 1, so the example uses 2
EXAMPLE_BATCH = 2
MAX_BATCH = 4096  # the largest batch an exported program takes
SHOWN = 5  # keys listed in a weights error
Progress = Callable[[str], None]  # told each phase as it starts (the CLI prints it on stderr; -q: nothing)


def _silent(_: str) -> None:
    pass


# Exporting runs the network once on an example batch at the spec's input size: the activation
# budget of build (archspec.api.MAX_ACTIVATIONS) bounds that run, for the whole batch.


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a file: a bare one, or a checkpoint's under 'model' / 'state_dict'; or a
    ``.safetensors`` file (archspec/weightfile.py)."""
    where = Loc(printable(str(path)), 0, 0)
    from archspec.weightfile import is_safetensors, read_safetensors

    if is_safetensors(path):
        return read_safetensors(path)
    fd = open_regular(path, "weights file")  # never a FIFO or device: it would hang or never end
    try:
        with os.fdopen(fd, "rb") as f:
            data = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise SpecError(
            f"cannot read weights from {printable(str(path))}: {_load_problem(e)}",
            where,
            code="weights",
            hint="expected a file written by torch.save(model.state_dict(), FILE)",
        ) from None
    if isinstance(data, dict):
        for key in ("model", "state_dict"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SpecError(
            f"{path} holds no state_dict (a mapping of names to tensors)",
            where,
            code="weights",
            hint="save one with torch.save(model.state_dict(), FILE)",
        )
    return data


def _load_problem(e: Exception) -> str:
    """One line on why torch.load refused a file; torch's own advice (to load unsafely) is left out."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) or "weights_only" in text or "Weights only load failed" in text:
        return (
            "it holds Python objects other than tensors and plain containers, which archspec never loads (a pickle can run code)"
        )
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
        hint = (
            "the file was saved from a DistributedDataParallel wrapper; save model.module.state_dict()"
            if unexpected and all(k.startswith("module.") for k in unexpected)
            else "the weights must come from a network with the same module paths (the spec's names)"
        )
        raise SpecError(f"weights in {path} do not fit the network: " + "; ".join(problems), where, code="weights", hint=hint)
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        raise SpecError(
            f"weights in {path} have other shapes (file vs network): {_listing(wrong)}",
            where,
            code="weights",
            hint="check the spec's channel counts and --set overrides",
        )
    model.load_state_dict(state, strict=True)


def inference_module(model: nn.Module) -> nn.Module:
    """The module computing the main output in eval mode (a network with aux heads has one of its own)."""
    model.eval()
    inference = getattr(model, "inference", None)
    return inference().eval() if callable(inference) else model


def channels_first(module: nn.Module) -> nn.Module:
    """``module`` for torch.export: every map the compiled forward leaves channels-last (a per-pixel layer's
    result that a residual sum accumulates into, ConvNeXt's, as torchvision does) copied to channels-first,
    sharing the module's layers. A channels-last map reaching a conv makes the trace rely on N > 1 (the
    conv's choice of memory format), which would fix H and W in the export; the copies change no value."""
    graph = getattr(module, "graph", None)
    if not isinstance(module, torch.fx.GraphModule) or graph is None:
        return module
    left = [n for n in graph.nodes if n.meta.get("archspec_channels_last")]
    if not left:
        return module
    copied = torch.fx.Graph()
    values: dict[torch.fx.Node, torch.fx.Node] = {}
    copied.output(copied.graph_copy(graph, values))
    for node in (values[n] for n in left):
        readers = list(node.users)
        with copied.inserting_after(node):
            copy = copied.call_method("contiguous", (node,))
        copy.meta.update(archspec_node=node.meta.get("archspec_node"), archspec_part=True)
        for reader in readers:
            reader.replace_input_with(node, copy)
    return torch.fx.GraphModule(module, copied, class_name=type(module).__name__)


def example_input(model: nn.Module) -> torch.Tensor:
    report = report_of(model)
    h, w = report.input_size
    # seeded: a .pt2 archive keeps its example input, and two exports must be the same bytes
    return torch.randn(EXAMPLE_BATCH, report.input_channels, h, w, generator=torch.Generator().manual_seed(0))


def metadata(model: nn.Module, shapes: Sizes | None = None) -> dict[str, str]:
    """What an exported file says about where it came from (ONNX metadata_props, shown by Netron)."""
    from archspec.version import __version__

    report = report_of(model)
    meta = {
        "archspec_version": __version__,
        "archspec_spec": report.name,
        # the file's name, never its folder: an exported file carries no path of this machine
        "archspec_spec_file": str(report.file) if str(report.file).startswith("zoo:") else Path(report.file).name,
        "archspec_input": "{}×{}×{}".format(report.input_channels, *report.input_size),
        "archspec_accepted_input_sizes": report.accepted.describe(),
        "archspec_params": str(report.params),
        "archspec_spec_sha256": report.digest,
    }
    if shapes is not None:
        meta["archspec_export_input_sizes"] = shapes.describe()
        if shapes.notes:
            meta["archspec_export_notes"] = " ".join(shapes.notes)
    return meta


# ---- input sizes: which the exported program takes ---------------------------------------------
# torch.export traces the network once, with symbols for the dynamic sizes, and keeps the facts
# about them the trace relied on ("guards"). Three things in torch 2.14 stood between that and the
# sizes archspec knows a network accepts (docs/performance.md, "Exports"):
# * a conv output of size 1 is special to torch's contiguity check (tensor metadata), so every
#   feature map got a guard "size != 1" and the smallest sizes were lost. Under
#   torch.fx.experimental._config.backed_size_oblivious the trace treats sizes as it treats
#   data-dependent ones (no 0/1 special case), keeping the whole range.
# * a ceil-mode pool's rule "drop a last window that starts in the padding" gives a guard
#   (2·floor(...) < ...) which holds at every size when the rule never applies (archspec's
#   Window.canonical), but which torch's solver for named dims (Dim("H", min=...)) cannot prove:
#   it fails with "Expected op to be '==', got <" while explaining the violation. Dim.AUTO with the
#   accepted bounds takes no such proof; archspec checks the guards itself instead
#   (_guard_failure), since an ONNX file keeps none of them, and narrows or fixes an axis where one
#   fails.
# * archspec's own input check converted a size with int(), which pinned it to the example's.
SCAN = 4096  # sizes per axis at which the guards of a dynamic export are checked (from the smallest)
AXES = ("H", "W")


@dataclass
class Sizes:
    """The input sizes an export takes: per axis a range (hi None: unbounded), a residue class
    (H = step·k + start), or the spec's size only; with notes on why an axis is narrower than
    what the network accepts."""

    lo: list[int]
    hi: list[int | None]
    step: list[int]  # 0: the axis is fixed at lo
    notes: list[str] = field(default_factory=list)
    narrowed: dict[int, tuple[str, str]] = field(default_factory=dict)  # axis: (what was planned, its note)

    def axis_text(self, axis: int) -> str:
        name, lo, hi, step = AXES[axis], self.lo[axis], self.hi[axis], self.step[axis]
        if step == 0:
            return f"{name} = {lo}"
        top = "" if hi is None else f" to {hi}"
        if step == 1:
            return f"{name} >= {lo}" if hi is None else f"{lo} <= {name} <= {hi}"
        return f"{name} from {lo}{top} in steps of {step}"

    def describe(self) -> str:
        return ", ".join(self.axis_text(a) for a in (0, 1))

    def sizes(self, axis: int) -> range:
        """The sizes on this axis the guards are checked at: all of them, or the first SCAN."""
        lo, hi, step = self.lo[axis], self.hi[axis], self.step[axis]
        if step == 0:
            return range(lo, lo + 1)
        top = lo + step * (SCAN - 1) if hi is None else min(hi, lo + step * (SCAN - 1))
        return range(lo, top + 1, step)

    def narrow(self, axis: int, lo: int, why: str) -> None:
        """Start this axis at ``lo``; one note per axis, naming the guard that asked the most."""
        wanted, previous = self.narrowed.get(axis, (self.axis_text(axis), None))
        if previous is not None:
            self.notes.remove(previous)
        self.lo[axis] = lo
        note = f"{wanted} is narrowed to {self.axis_text(axis)} in the export: {why}."
        self.notes.append(note)
        self.narrowed[axis] = wanted, note

    def fix(self, axis: int, size: int, why: str) -> None:
        self.lo[axis], self.hi[axis], self.step[axis] = size, size, 0
        self.notes.append(f"{AXES[axis]} is fixed at {size} in the export: {why}.")


def planned_sizes(model: nn.Module) -> Sizes:
    """The sizes to ask torch.export for: what the network accepts, where a Dim can say it."""
    report = report_of(model)
    acc = report.accepted
    plan = Sizes([0, 0], [None, None], [1, 1])
    for axis in (0, 1):
        lo, hi = acc.first(axis), acc.last(axis)
        plan.lo[axis], plan.hi[axis] = lo, None if hi >= NEVER else hi
        if not any(c[0] == axis for c in acc.conditions):
            continue
        listed = acc.sizes(axis)
        if listed is not None and listed == list(range(listed[0], listed[-1] + 1)):
            continue  # merges that agree on an unbroken run of sizes: a range still
        classes = acc.residues(axis)
        if classes is not None and len(classes[1]) == 1:
            plan.step[axis] = classes[0]  # H = step·k + lo: a derived Dim
            continue
        plan.fix(
            axis,
            report.input_size[axis],
            f"the network accepts {acc.describe_axis(axis)} (sizes at which merged branches "
            "agree), a set torch.export cannot express",
        )
    return plan


def _dims(plan: Sizes) -> dict[str, dict[int, Any]]:
    from torch.export import Dim

    dims: dict[int, Any] = {0: Dim("batch", min=1, max=MAX_BATCH)}
    for axis in (0, 1):
        lo, hi, step = plan.lo[axis], plan.hi[axis], plan.step[axis]
        bound = {} if hi is None else {"max": hi}
        if step == 1:
            dims[2 + axis] = Dim.AUTO(min=lo, **bound)
        elif step > 1:  # sizes lo, lo + step, ...: a derived dim over the count of steps
            count = Dim(f"{AXES[axis]}_steps", min=0, **({} if hi is None else {"max": (hi - lo) // step}))
            dims[2 + axis] = step * count + lo
    return {"x": dims}


@contextmanager
def _oblivious() -> Iterator[None]:
    """Trace without torch's 0/1 special case for sizes (see above), where this torch has the switch,
    and without the warnings torch logs when sympy cannot solve a guard (archspec checks them)."""
    solver_log = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = solver_log.level
    solver_log.setLevel(logging.ERROR)
    try:
        from torch.fx.experimental import _config

        switch = _config.patch(backed_size_oblivious=True) if hasattr(_config, "backed_size_oblivious") else None  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - another torch
        switch = None
    try:
        if switch is None:  # pragma: no cover - another torch
            yield
        else:
            with switch:
                yield
    finally:
        solver_log.setLevel(level)


@contextmanager
def _no_stack_traces() -> Iterator[None]:
    """Trace without torch.fx's record of where each node was made (torch.fx.config's
    ``do_not_emit_stack_traces``, where this torch has it): an exported file must carry no stack
    trace (strip_traces), and recording them is most of a retrace's cost for a node without one.
    ResNet-50's ONNX conversion re-traced the program to decompose it and recorded 3,300 stack traces
    for the nodes of archspec's generated forward (torch leaves fx-generated code out of a trace,
    so those nodes had none to copy): 1.4× the reference's decomposition time."""
    import torch.fx.config as fx_config

    before = getattr(fx_config, "do_not_emit_stack_traces", None)
    if before is None:  # pragma: no cover - another torch
        yield
        return
    fx_config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        fx_config.do_not_emit_stack_traces = before


def _input_shape(program: torch.export.ExportedProgram) -> list[Any]:
    (x,) = [n for n in program.graph.nodes if n.op == "placeholder" and n.name == "x"]
    return list(x.meta["val"].shape)


class _Size:
    """What a guard's L['x'].size() reads."""

    def __init__(self, shape: list[int]) -> None:
        self.shape = shape

    def size(self) -> list[int]:
        return self.shape

    def stride(self) -> list[int]:  # pragma: no cover - guards on strides of a fresh input hold
        n, c, h, w = self.shape
        return [c * h * w, h * w, w, 1]


def _readable(guard: str) -> str:
    for index, name in ((0, "N"), (2, "H"), (3, "W")):
        guard = guard.replace(f"L['x'].size()[{index}]", name)
    return guard


@dataclass
class _Failure:
    """A guard that fails at sizes the plan allows: the axes it reads, why, and (for a guard on one
    axis that fails at its smallest sizes only) the size from which it holds."""

    axes: list[int]
    why: str
    holds_from: int | None = None


def _listing_sizes(values: list[int], sizes: range) -> str:
    """'1 to 32' for a run of consecutive planned sizes, else the first few: '3, 5, 7 and 2045 more'."""
    if len(values) > 1 and values == list(sizes[sizes.index(values[0]) : sizes.index(values[-1]) + 1]):
        return f"{values[0]} to {values[-1]}"
    shown = ", ".join(map(str, values[:3]))
    return shown + (f" and {len(values) - 3} more" if len(values) > 3 else "")


def _guard_failure(program: torch.export.ExportedProgram, plan: Sizes, x: torch.Tensor) -> _Failure | None:
    """The first guard (a fact the trace relied on) that fails at a size the plan allows, or None.

    An ONNX file keeps no guards, so a dynamic export is only as good as this check: every guard is
    evaluated at every planned size on the axes it reads (the first SCAN per axis when unbounded;
    the guards are floor divisions of the size, which repeat with the product of the strides).
    """
    try:
        from torch.fx.experimental.symbolic_shapes import SYMPY_INTERP
    except ImportError:  # pragma: no cover - another torch
        SYMPY_INTERP = {}
    namespace = {**SYMPY_INTERP, "math": math, "inf": float("inf"), "torch": torch}
    _, channels, h, w = x.shape
    guards = getattr(program, "_guards_code", None)  # private: torch's guards as Python expressions
    if guards is None:  # a torch without it: nothing can be checked, so nothing beyond the spec's size is claimed
        return _Failure(
            [0, 1], "this torch does not expose the trace's guards (ExportedProgram._guards_code) for archspec to check"
        )
    for guard in guards:  # text torch generated from sizes alone: no spec text reaches it
        reads = [a for a in (0, 1) if f"L['x'].size()[{2 + a}]" in guard]
        code = compile(guard, "<guard>", "eval")
        if reads == [0]:
            grid = [(hh, w) for hh in plan.sizes(0)]
        elif reads == [1]:
            grid = [(h, ww) for ww in plan.sizes(1)]
        else:  # both axes (a square grid of the smallest sizes) or neither (the batch)
            grid = [(hh, ww) for hh in plan.sizes(0)[:64] for ww in plan.sizes(1)[:64]] if reads else [(h, w)]
        failing = [
            (hh, ww, n)
            for hh, ww in grid
            for n in (1, MAX_BATCH)
            if not eval(code, namespace, {"L": {"x": _Size([n, channels, hh, ww])}})
        ]  # noqa: S307 - torch's guard
        if not failing:
            continue
        hh, ww, n = failing[0]
        at = " and ".join(f"{AXES[a]} = {(hh, ww)[a]}" for a in reads) or f"N = {n}"
        if len(reads) == 1:
            (axis,) = reads
            sizes = plan.sizes(axis)
            last = sizes.index(max(f[axis] for f in failing))
            complete = plan.hi[axis] is not None and sizes[-1] == plan.hi[axis]
            at = f"{AXES[axis]} = {_listing_sizes(sorted({f[axis] for f in failing}), sizes)}"
            # failures at the low end only (none in the second half of the scan, or in a range
            # scanned whole): the guard holds from the next size on
            if last + 1 < len(sizes) and (complete or last < len(sizes) // 2):
                return _Failure(reads, f"the trace relies on {_readable(guard)}, which is false at {at}", sizes[last + 1])
        return _Failure(reads or [0, 1], f"the trace relies on {_readable(guard)}, which is false at {at}")
    return None


def trace(
    module: nn.Module, x: torch.Tensor, model: nn.Module, progress: Progress = _silent
) -> tuple[torch.export.ExportedProgram, Sizes]:
    """torch.export's program of ``module``, dynamic in batch, H and W where the network allows.

    An axis torch.export pins to one size, or narrows, is reported in the plan's notes; so is an
    axis fixed at the spec's size because tracing it symbolically failed or relied on a fact that
    does not hold at every size (then the export is traced again without it).
    """
    plan = planned_sizes(model)
    spec_size = report_of(model).input_size
    while True:
        dynamic = [a for a in (0, 1) if plan.step[a]]
        progress(f"tracing with torch.export (batch{''.join(', ' + AXES[a] for a in dynamic)} dynamic)")
        if not dynamic:
            return torch.export.export(module, (x,), dynamic_shapes=_dims(plan)), plan
        try:
            with _oblivious():
                program = torch.export.export(module, (x,), dynamic_shapes=_dims(plan))
        except Exception as e:  # noqa: BLE001 - any failure of the symbolic trace: fall back, and say so
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            for axis in dynamic:
                plan.fix(axis, spec_size[axis], f"torch.export could not trace it symbolically ({first[:200]})")
            continue
        _read_back(program, plan, spec_size)
        progress(f"checking the trace's {len(getattr(program, '_guards_code', None) or ())} guards at {plan.describe()}")
        narrowed = False
        while (problem := _guard_failure(program, plan, x)) is not None:
            (axis, *_), start = problem.axes, problem.holds_from
            if start is not None and plan.step[axis] and start <= spec_size[axis]:
                plan.narrow(axis, start, problem.why)  # the smallest size grows each time: this ends
                narrowed = True
                continue
            for axis in [a for a in problem.axes if plan.step[a]] or dynamic:  # one dynamic axis fewer: this ends
                plan.fix(axis, spec_size[axis], problem.why)
            break
        if problem is None and not narrowed:
            return program, plan
        # traced again for the sizes left, so that the .pt2's own input check says the same


def _read_back(program: torch.export.ExportedProgram, plan: Sizes, spec_size: tuple[int, int]) -> None:
    """Make the plan what torch.export made of it: an axis pinned to a size, or a narrower range."""
    shape = _input_shape(program)
    for axis in (0, 1):
        if not plan.step[axis]:
            continue
        size = shape[2 + axis]
        if isinstance(size, int):
            plan.fix(axis, size, "torch.export specialised it")
            continue
        if plan.step[axis] != 1:
            continue
        vr = program.range_constraints.get(size.node.expr)
        if vr is None:  # pragma: no cover - a symbol without a range
            continue
        lo = int(vr.lower)
        hi = int(vr.upper) if vr.upper.is_Integer else None  # torch's int_oo is no Integer (unbounded)
        if (lo, hi) != (plan.lo[axis], plan.hi[axis]):
            wanted = plan.axis_text(axis)
            plan.lo[axis], plan.hi[axis] = lo, hi
            plan.notes.append(f"torch.export narrowed {wanted} to {plan.axis_text(axis)}.")


def to_onnx(
    program: torch.export.ExportedProgram, path: Path, model: nn.Module, shapes: Sizes, traced: nn.Module | None = None
) -> None:
    """The program (traced from ``traced``, by default ``model``'s inference module) as ONNX: its nodes named
    after the spec's paths, its symbolic sizes called batch, H and W, and the spec's metadata."""
    with _oblivious():
        onnx_program = torch.onnx.export(
            program, input_names=["x"], output_names=list(report_of(model).main), dynamo=True, optimize=False, verbose=False
        )
    assert onnx_program is not None  # dynamo=True always returns the program
    graph = getattr(inference_module(model) if traced is None else traced, "graph", None)
    onnx_model = onnx_program.model
    _name_nodes(onnx_model, _origins(getattr(onnx_program, "exported_program", None) or program, graph, report_of(model).graph))
    _name_dims(onnx_model, program)
    import onnxscript.optimizer

    onnxscript.optimizer.fold_constants(onnx_model)
    onnxscript.optimizer.remove_unused_nodes(onnx_model)
    _strip_onnx_traces(onnx_model)
    onnx_model.metadata_props.update(metadata(model, shapes))
    write_onnx(onnx_model, path)


ONNX_LIMIT = 2**31 - 1  # protobuf's limit on one message: the most a single-file ONNX model can hold


def write_onnx(onnx_model: Any, path: Path) -> None:
    """Write an onnx_ir model as one ONNX file, its weights one tensor at a time, from their memory.

    onnx_ir (like onnx.save) builds the whole ModelProto in memory and serialises it: the weights
    are then held three times over (the tensors' bytes, the message, its serialisation). Protobuf
    parses a concatenation of serialised messages as their merge, fields repeated in order
    (https://protobuf.dev/programming-guides/encoding/#last-one-wins): so the file is the model
    without its initializers, then one ModelProto per initializer holding just that tensor. Each
    tensor's fields but its bytes are serialised by onnx_ir; its bytes follow as the tensor's
    ``raw_data`` field, written by onnx_ir's ``tofile`` straight from the tensor's memory, behind
    the three length prefixes that frame them (_framed). A reader gets the message
    onnx_ir.serde.serialize_model gives (tests/test_export.py), and writing adds no copy of any
    weight (docs/design.md).
    """
    import onnx
    import onnx_ir as ir

    graph = onnx_model.graph
    weights = dict(graph.initializers)
    size = sum(v.const_value.nbytes for v in weights.values() if v.const_value is not None)
    if size >= ONNX_LIMIT:
        raise SpecError(
            f"the network's weights ({size / 2**30:.1f} GiB) do not fit in one ONNX file (protobuf's 2 GiB limit)",
            Loc(printable(str(path)), 0, 0),
            code="io",
            hint="export a .pt2 (torch.export) file, or the weights alone as .safetensors",
        )
    graph.initializers.clear()
    try:
        head = ir.serde.serialize_model(onnx_model)
    finally:
        graph.initializers.update(weights)
    inputs = {v.name for v in graph.inputs}
    # the initializers' value_info, where onnx_ir writes it: before the nodes' outputs
    described = [ir.serde.serialize_value(v) for v in weights.values() if _described(v) and v.name not in inputs]
    if described:
        rest = list(head.graph.value_info)
        del head.graph.value_info[:]
        head.graph.value_info.extend(described + rest)
    with open(path, "wb") as f:
        f.write(head.SerializeToString())
        del head
        for value in weights.values():
            tensor = value.const_value
            if tensor is None:
                continue
            tensor.name = value.name
            if not isinstance(tensor, ir.Tensor):  # a string or external tensor, or a TensorProto's: onnx_ir's own way
                part = onnx.ModelProto()
                ir.serde.serialize_tensor_into(part.graph.initializer.add(), tensor)
                f.write(part.SerializeToString())
                continue
            fields = onnx.TensorProto()
            ir.serde.serialize_tensor_into(fields, _NoBytes(tensor))
            fields.ClearField("raw_data")
            f.write(_framed(fields.SerializeToString(), tensor.nbytes))
            start = f.tell()
            tensor.tofile(f)
            if f.tell() - start != tensor.nbytes:  # pragma: no cover - onnx_ir wrote other than it declared
                raise RuntimeError(f"onnx_ir wrote {f.tell() - start} bytes of {value.name}, not its {tensor.nbytes}")


class _NoBytes:
    """A tensor whose bytes are empty: what onnx_ir serialises of it is every field but ``raw_data``."""

    def __init__(self, tensor: Any) -> None:
        self._tensor = tensor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tensor, name)

    def tobytes(self) -> bytes:
        return b""


def _varint(n: int) -> bytes:
    """Protobuf's base-128 varint (https://protobuf.dev/programming-guides/encoding/#varints)."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _framed(fields: bytes, nbytes: int) -> bytes:
    """What comes before a tensor's ``nbytes`` bytes in ``ModelProto{graph{initializer{fields raw_data}}}``:
    each message's field is its number and wire type 2 (length-delimited), then its length, the field
    numbers read from onnx's own descriptors."""
    import onnx

    def key(message: Any, name: str) -> bytes:
        return _varint(message.DESCRIPTOR.fields_by_name[name].number << 3 | 2)

    raw = key(onnx.TensorProto, "raw_data") + _varint(nbytes)
    tensor_len = len(fields) + len(raw) + nbytes
    initializer = key(onnx.GraphProto, "initializer") + _varint(tensor_len)
    graph_len = len(initializer) + tensor_len
    return key(onnx.ModelProto, "graph") + _varint(graph_len) + initializer + fields + raw


def _described(value: Any) -> bool:
    """Whether onnx_ir writes a value_info for this value (it has a type, shape, doc or metadata)."""
    has = value.shape is not None or value.type is not None or value.metadata_props or value.doc_string
    return bool(has and value.name)


def _scopes(node: Any) -> list[str]:
    text = node.metadata_props.get("pkg.torch.onnx.name_scopes")
    try:
        scopes = ast.literal_eval(text) if text else []
    except (ValueError, SyntaxError):  # pragma: no cover - the exporter's own text
        return []
    return [s for s in scopes if isinstance(s, str)]


def _origins(program: Any, graph: Any, ops: Any) -> dict[str, str]:
    """The spec's path of each node of an exported program that came from an op of archspec's fx
    ``graph`` (``ops``: the spec's graph, whose nodes hold the paths): torch records where each node
    came from (meta['from_node'], a chain back to that graph)."""
    paths = {
        n.name: ops.at(n.meta["archspec_node"]).path
        for n in getattr(graph, "nodes", ())
        if n.meta.get("archspec_node") in ops and ops.at(n.meta["archspec_node"]).path
    }
    found: dict[str, str] = {}
    for node in program.graph.nodes:
        todo = list(node.meta.get("from_node") or ())
        while todo:
            source = todo.pop()
            if source.graph_id == id(graph) and source.name in paths:
                found[node.name] = paths[source.name]
                break
            todo.extend(source.from_node or ())
    return found


def _name_nodes(model: Any, origins: dict[str, str]) -> None:
    """Name each ONNX node after the spec's module path it computes ('layer1.0.conv1/Conv'), so
    Netron shows the spec's structure. The exporter records the module scopes of each node; an op
    that is no module (a residual sum, a ReLU by function) is found by the fx node it came from."""
    used: set[str] = set()
    for node in model.graph:
        scopes = _scopes(node)
        path = scopes[-2] if len(scopes) >= 3 and scopes[-2] else origins.get(scopes[-1]) if scopes else None
        if not path:
            continue
        base = f"{path}/{node.op_type}"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        node.name = name


def _name_dims(model: Any, program: torch.export.ExportedProgram) -> None:
    """Call the input's symbolic sizes batch, H and W (H_steps for a residue class) everywhere."""
    import onnx_ir as ir

    names: dict[str, str] = {}
    for index, size in enumerate(_input_shape(program)):
        if not isinstance(size, int) and index != 1:
            label = ("batch", "C", "H", "W")[index]  # (index 1, the channels, is never symbolic)
            symbols = sorted(str(s) for s in size.node.expr.free_symbols)
            if len(symbols) == 1:
                names[symbols[0]] = label if str(size.node.expr) == symbols[0] else f"{label}_steps"
    if not names:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    values = list(model.graph.inputs) + list(model.graph.outputs) + [v for n in model.graph for v in n.outputs]
    for value in values:
        if value.shape is None:
            continue
        dims = [
            ir.SymbolicDim(pattern.sub(lambda m: names[m.group(1)], d.value)) if isinstance(d, ir.SymbolicDim) and d.value else d
            for d in value.shape
        ]
        value.shape = ir.Shape(dims)


def to_pt2(program: torch.export.ExportedProgram, path: Path) -> None:
    torch.export.save(program, str(path))  # the archive's root folder is the file's name (see export)
    stable_serialization_id(path)


SERIALIZATION_ID = ".data/serialization_id"


def stable_serialization_id(path: Path) -> None:
    """torch's zip writer stamps every archive with a random ``.data/serialization_id`` (40 digits,
    read back only as logging metadata by torch.load): replace it, in place and at the same length,
    by digits of a hash of the archive's other records, so that the same network and weights give
    the same bytes. The record is stored uncompressed; its CRC-32 is in the central directory and
    in the local header or the data descriptor after it."""
    import hashlib
    import struct
    import zipfile
    import zlib

    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        target = next((i for i in infos if i.filename.endswith(SERIALIZATION_ID)), None)
        if target is None or target.compress_type != zipfile.ZIP_STORED:
            return
        digest = hashlib.sha256(b"".join(struct.pack("<I", i.CRC) + i.filename.encode() for i in infos if i is not target))
        start_dir = z.start_dir
    new = str(int.from_bytes(digest.digest(), "big"))[: target.file_size].encode()
    if len(new) != target.file_size:
        return
    crc = struct.pack("<I", zlib.crc32(new))
    with open(path, "r+b") as f:
        f.seek(target.header_offset)
        header = f.read(30)
        flags, name_len, extra_len = struct.unpack("<H", header[6:8])[0], *struct.unpack("<HH", header[26:30])
        data_at = target.header_offset + 30 + name_len + extra_len
        f.seek(data_at)
        f.write(new)
        if flags & 0x08:  # a data descriptor follows the data: [signature] CRC-32, sizes
            sig = f.read(4)
            f.seek(data_at + len(new) + (4 if sig == b"PK\x07\x08" else 0))
        else:
            f.seek(target.header_offset + 14)
        f.write(crc)
        f.seek(start_dir)
        directory = f.read()
        at = directory.find(b"PK\x01\x02")  # the central directory: entries in order
        while at != -1:
            name_len, extra_len, comment_len = struct.unpack("<HHH", directory[at + 28 : at + 34])
            name = directory[at + 46 : at + 46 + name_len]
            if name == target.filename.encode():
                f.seek(start_dir + at + 16)
                f.write(crc)
                break
            at = directory.find(b"PK\x01\x02", at + 46 + name_len + extra_len + comment_len)


def strip_traces(program: torch.export.ExportedProgram, provenance: bool = False) -> None:
    """Drop torch's record of where each node was traced (a stack trace with this machine's file
    paths, in every node's metadata): an exported file carries no path, user name or trace. With
    ``provenance`` also the nodes each came from (``from_node``, which holds graphs' memory
    addresses: two exports would differ), once the ONNX names no longer need them."""
    for gm in program.graph_module.modules():
        graph = getattr(gm, "graph", None)
        for node in getattr(graph, "nodes", ()):
            node.meta.pop("stack_trace", None)
            if provenance:
                node.meta.pop("from_node", None)


def _strip_onnx_traces(onnx_model: Any) -> None:
    """The same in the ONNX model: the exporter copies each node's stack trace into its metadata."""
    for node in onnx_model.graph.all_nodes() if hasattr(onnx_model.graph, "all_nodes") else onnx_model.graph:
        for key in [k for k in node.metadata_props if "stack_trace" in k]:
            del node.metadata_props[key]


def to_torchscript(module: nn.Module, x: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # TorchScript's deprecation notice and its notes on fx's generated code
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.jit.script(module).save(str(path))
    stable_serialization_id(path)


FORMATS = (".onnx", ".pt2", ".ts", ".safetensors")


def activation_count(model: nn.Module) -> int:
    """Values computed by one forward of the example batch: every op's output at the spec's input size."""
    return api_activation_count(report_of(model), EXAMPLE_BATCH)


def check_activations(model: nn.Module, max_activations: int = MAX_ACTIVATIONS) -> None:
    """Refuse, before any tensor is made, a network whose example run would not fit the budget."""
    api_check_activations(report_of(model), max_activations, EXAMPLE_BATCH, doing="exporting")


def format_of(path: str | Path) -> str:
    """The format the file name's suffix names (one of FORMATS); a SpecError when it names none."""
    target = Path(path)
    if target.suffix not in FORMATS:
        raise SpecError(
            f"cannot tell the format of {printable(str(target))}: the name must end in {', '.join(FORMATS)}",
            Loc(printable(str(target)), 0, 0),
            code="io",
            hint="name it *.onnx (ONNX), *.pt2 (torch.export), *.ts (TorchScript) or *.safetensors (the weights)",
        )
    return target.suffix


def export(
    model: nn.Module, path: str | Path, max_activations: int = MAX_ACTIVATIONS, progress: Progress = _silent
) -> Sizes | None:
    """Write the model in the format its file name's suffix names, atomically.

    Returns the input sizes the ONNX or .pt2 file takes (with notes where they are fewer than the
    network accepts), or None for TorchScript, which keeps the network's own input check.
    ``progress`` is told each phase as it starts. The file holds no path of this machine (torch's
    stack traces are dropped) and, for the zip archives (.pt2, .ts), its root folder is the file's
    own name, so that two exports of the same network and weights are the same bytes.
    """
    target = Path(path)
    format_of(target)
    if target.suffix == ".safetensors":  # the weights alone, with the network's name and digest
        from archspec.weightfile import metadata_of, write_safetensors

        write_safetensors(target, model.state_dict(), metadata_of(model))
        return None
    check_activations(model, max_activations)
    module = inference_module(model)
    x = example_input(model)
    with torch.no_grad(), _no_stack_traces(), atomic_path(target, keep_name=True) as tmp:
        if target.suffix == ".ts":
            progress("compiling with TorchScript")
            to_torchscript(module, x, tmp)
            progress(f"writing {target.name}")
            return None
        traced = channels_first(module)
        program, shapes = trace(traced, x, model, progress)
        strip_traces(program)
        if target.suffix == ".onnx":
            progress(f"converting to ONNX and writing {target.name}")
            to_onnx(program, tmp, model, shapes, traced)
        else:
            progress(f"writing {target.name}")
            strip_traces(program, provenance=True)
            to_pt2(program, tmp)
    return shapes
