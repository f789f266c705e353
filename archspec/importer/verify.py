"""Checking an import before it is written: the spec built, the module's state_dict loaded into it
with ``strict=True`` and both run on one random input (64×64 at most, else the spec's own size);
aux heads in training mode on a copy of the module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn

from archspec.importer.trace import ImportRefused, is_drop_path


def verify(
    model: nn.Module,
    text: str,
    input_size: tuple[int, int],
    tolerance: float = 1e-4,
    aux: dict[str, int] | None = None,
    weights_from_spec: bool = False,
) -> nn.Module:
    """Build the spec, load the model's state_dict strictly, compare outputs; returns the built module.
    With ``aux`` (head → its place among the model's training-mode outputs) both also run in training
    mode, dropout off, on a copy of the model (training mode updates BatchNorm statistics), and every
    head's output is compared. With ``weights_from_spec`` the weights go the other way: the model,
    constructed on the ``meta`` device (no initial weights drawn: `archspec import`), takes the built
    spec's freshly drawn tensors, strictly (``assign``: the two share them) — the same keys and shapes,
    and then the same outputs, are checked."""
    from archspec.api import build
    from archspec.errors import SpecError

    try:
        ours = build(text)
    except ImportRefused:
        raise
    except SpecError as e:  # e.g. a product x · g(x) whose g(x) is not C×1×1: no `gate:` takes it
        raise ImportRefused(
            f"the imported spec does not check: {e.message.splitlines()[0]}",
            hint="archspec cannot express this module; see docs/import.md for what it imports",
        ) from None
    theirs, mine = model.state_dict(), ours.state_dict()
    missing, unexpected = sorted(set(theirs) - set(mine)), sorted(set(mine) - set(theirs))
    shapes = sorted(k for k in set(theirs) & set(mine) if theirs[k].shape != mine[k].shape)
    if missing or unexpected or shapes:
        what = "; ".join(
            f"{label}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}"
            for label, keys in (("not in the spec", missing), ("only in the spec", unexpected), ("other shape", shapes))
            if keys
        )
        raise ImportRefused(
            f"the imported spec does not reproduce the module's state_dict ({what})",
            hint="this is a limitation of archspec import; please report it",
        )
    if weights_from_spec:  # the spec's tensors themselves, not copies: no memory to allocate and fill
        model.load_state_dict(mine, strict=True, assign=True)
    else:
        ours.load_state_dict(theirs, strict=True)
    small = (min(input_size[0], VERIFY_SIZE), min(input_size[1], VERIFY_SIZE))
    if small != tuple(input_size):
        try:
            _compare(model, ours, small, tolerance, aux)
            return ours
        except Exception:  # noqa: BLE001 - a network that does not run (or differs) at the small size: its own decides
            pass
    _compare(model, ours, input_size, tolerance, aux)
    return ours


# The size the outputs are compared at first, a side at most: a traced module computes the same
# graph at every size (what depends on a tensor's shape is refused), so a small input checks the
# same ops as the spec's own at a tenth of the time; where either network does not run or they
# differ there, the spec's own size decides.
VERIFY_SIZE = 64


def _compare(model: nn.Module, ours: nn.Module, size: tuple[int, int], tolerance: float, aux: dict[str, int] | None) -> None:
    import torch

    was_training = model.training
    model.eval()
    ours.eval()
    try:
        g = torch.Generator().manual_seed(0)
        channels = int(getattr(ours, "archspec_report").input_channels)  # noqa: B009 - nn.Module types attributes as tensors
        x = torch.randn(1, channels, *size, generator=g)
        with torch.no_grad(), one_thread():
            expected, got = model(x), ours(x)
    finally:
        model.train(was_training)
    for name, e, g in _pairs(expected, got):
        if not isinstance(e, torch.Tensor) or not isinstance(g, torch.Tensor) or e.shape != g.shape:
            raise ImportRefused(f"the imported spec gives an output {name}of another shape ({_shape(g)})")
        err = (e - g).abs().max().item()
        if not err <= tolerance * max(1.0, e.abs().max().item()):
            raise ImportRefused(
                f"the imported spec computes something else: outputs {name}differ by {err:.3g}",
                hint="this is a limitation of archspec import; please report it",
            )
    if aux:
        _verify_aux(model, ours, x, aux, tolerance)


@contextmanager
def one_thread() -> Iterator[None]:
    """The check's forwards on one thread, the caller's thread count given back after. They run one
    small image (64×64 at most, batch 1 or 2), where a second thread gains little and, on a machine
    whose cores are busy, costs much: the threads wait for each other at every op (ResNet-50's two
    forward at 64×64 took 1.1 s of CPU and 9–15 s of wall on 2 threads at load 12, 0.03 s and 0.1–0.3 s
    on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _pairs(expected: Any, got: Any) -> list[tuple[str, Any, Any]]:
    """The module's outputs and the spec's, paired: one tensor each, or several (the spec's `outputs:`,
    a dict) by name — the module's dict by its keys, its list or tuple by position."""
    if not isinstance(got, dict):
        return [("", expected, got)]
    names = list(got)
    if isinstance(expected, dict) and [str(k) for k in expected] == names:
        return [(f"{k!r} ", expected[k], got[str(k)]) for k in expected]
    if isinstance(expected, (list, tuple)) and len(expected) == len(names):
        return [(f"{k!r} ", e, got[k]) for k, e in zip(names, expected, strict=True)]
    return [(f"{names!r} ", expected, None)]


def _shape(t: Any) -> Any:
    return tuple(t.shape) if hasattr(t, "shape") else type(t).__name__


def _verify_aux(model: nn.Module, ours: nn.Module, x: torch.Tensor, aux: dict[str, int], tolerance: float) -> None:
    import copy

    import torch
    from torch.utils._pytree import tree_flatten

    theirs = copy.deepcopy(model)
    state = copy.deepcopy(ours.state_dict())

    def random(m: Any) -> bool:  # a layer that draws random numbers in training mode
        return isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d)) or is_drop_path(m)

    dropouts = [(m, m.p) for m in ours.modules() if random(m)]
    try:
        for net in (theirs, ours):
            net.train()
            for m in net.modules():
                if random(m):
                    setattr(m, "p", 0.0)  # noqa: B010 - nn.Module types attributes as tensors
        batch = torch.cat([x, x.flip(0, 2, 3) * 0.5])  # two images: BatchNorm in training mode needs a batch
        with torch.no_grad(), one_thread():
            expected, _ = tree_flatten(theirs(batch))
            got = ours(batch)
        for name, i in aux.items():
            e, g = expected[i], got[name]
            err = (e - g).abs().max().item() if e.shape == g.shape else float("inf")
            if not err <= tolerance * max(1.0, e.abs().max().item()):
                raise ImportRefused(
                    f"the imported aux head {name!r} computes something else in training mode (differs by {err:.3g})",
                    module=name,
                    hint="this is a limitation of archspec import; please report it",
                )
    finally:
        ours.load_state_dict(state)
        for m, p in dropouts:
            m.p = p
        ours.eval()


__all__ = ["VERIFY_SIZE", "verify"]
