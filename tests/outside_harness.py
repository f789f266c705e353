"""The harness of the outside-network tests that compare a spec written from the docs with a torch
reference (tests/test_outside_networks_d.py, _f.py): the reference's weights redrawn, loaded into the
compiled spec with strict=True, every output compared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import archspec


def redraw(module: nn.Module, seed: int) -> None:
    """Draws every floating tensor of module's state_dict afresh: weights ~ N(0, 1/fan_in), 1-D
    scales in [0.5, 1.5], biases and running means N(0, 0.1²), running variances in [0.5, 1.5]."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.dtype.is_floating_point:
                tensor.zero_()  # num_batches_tracked
                continue
            leaf = name.rsplit(".", 1)[-1]
            if tensor.dim() >= 2:
                new = torch.randn(tensor.shape, generator=gen) / tensor[0].numel() ** 0.5
            elif leaf == "running_var" or (leaf == "weight" and tensor.dim() == 1):
                new = torch.rand(tensor.shape, generator=gen) + 0.5
            else:
                new = torch.randn(tensor.shape, generator=gen) * 0.1
            tensor.copy_(new)


def fresh(make: Callable[[], nn.Module]) -> nn.Module:
    """The reference, built on the meta device (no initial draws: redraw fills every tensor)."""
    with torch.device("meta"):
        module = make()
    return module.to_empty(device="cpu")


def outputs(value: object) -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {"out": value}
    assert isinstance(value, dict), type(value)
    return {str(k): v for k, v in value.items()}


def assert_same(
    spec: Path,
    reference: nn.Module,
    sizes: list[tuple[int, int, int]],
    seed: int = 0,
    channels: int = 3,
    smallest: bool = True,
    **build: object,
) -> nn.Module:
    """Loads reference's redrawn state_dict into the compiled spec strictly and compares every
    output at each input size (height, width, batch), and (``smallest``) at check's minimum input size;
    returns the compiled model."""
    redraw(reference, seed)
    reference.eval()
    overrides = build.pop("overrides", None)
    least = [(*archspec.check(spec, overrides=overrides).min_input_size, 1)] if smallest else []  # type: ignore[arg-type]
    model = archspec.build(spec, overrides=overrides, **build).eval()  # type: ignore[arg-type]
    model.load_state_dict(reference.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(seed + 1)
    for h, w, batch in [*sizes, *least]:
        x = torch.randn(batch, channels, h, w, generator=gen)
        with torch.no_grad():
            want = outputs(reference(x))
            got = outputs(model(x))
        assert list(got) == list(want), (list(got), list(want))
        for key, ref in want.items():
            scale = ref.abs().max().item()
            torch.testing.assert_close(
                got[key], ref, rtol=1e-4, atol=1e-4 * scale, msg=lambda m, k=key, s=(h, w): f"{k} at {s}: {m}"
            )
    return model
