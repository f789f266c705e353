"""Fast, standard weight initialisation for a freshly built module tree.

``compile`` builds the modules with uninitialised tensors (each distinct layer once on the
``meta`` device, then copied; see ``compile.build_modules``) and calls :func:`initialize`. The
scheme is PyTorch's own default: a conv or linear layer draws its weight and bias from
U(−1/√fan_in, 1/√fan_in) (what ``kaiming_uniform_(a=√5)`` gives), BatchNorm starts at γ=1, β=0,
mean 0, var 1; any other module with parameters uses its ``reset_parameters()``. The one
difference is speed: the uniform draws, which dominate building a large network, are spread over
threads, each with its own generator, and drawn with NumPy's SFC64 generator, two to three times
as fast as torch's CPU ``uniform_``. The generators are seeded from torch's global one, so
``torch.manual_seed`` makes builds reproducible, independently of the number of threads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

STREAMS = 8  # fixed, so that the weights do not depend on the number of threads

# What module constructors call to initialise their tensors; skipped while building on ``meta``.
_INIT_FUNCTIONS = frozenset(
    {
        nn.init.kaiming_uniform_,
        nn.init.uniform_,
        nn.init.normal_,
        nn.init.ones_,
        nn.init.zeros_,
        nn.init.constant_,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
        torch.Tensor.zero_,
        torch.Tensor.fill_,
    }
)


class SkipInit(TorchFunctionMode):
    """Make module constructors' default initialisation of ``meta`` tensors a no-op.

    On meta tensors it computes nothing anyway, but its Python and dispatch overhead is a large
    part of constructing a layer; :func:`initialize` sets every value of the real tensors later.
    """

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _INIT_FUNCTIONS:
            tensor = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if tensor is not None and tensor.device.type == "meta":
                return tensor
        return func(*args, **kwargs)


_UNIFORM_FAN_IN = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _fan_in(module: nn.Module) -> int:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight.shape[1] * math.prod(weight.shape[2:]) if weight.dim() > 1 else weight.shape[0]


def initialize(root: nn.Module, schemes: Mapping[str, Any] | None = None) -> None:
    """Initialise every parameter and buffer of ``root`` (allocated, not yet set), in place.

    ``schemes`` maps module paths to the spec's ``init:`` scheme (a TensorInit) for their weight and bias;
    every other tensor starts as PyTorch's default would start it."""
    draws: list[tuple[torch.Tensor, float]] = []
    schemes = schemes or {}
    later: list[tuple[nn.Module, Any]] = []
    for name, module in root.named_modules():
        if not any(True for _ in module.parameters(recurse=False)) and not any(True for _ in module.buffers(False)):
            continue
        if type(module) is nn.Module:  # a container's own tensor (a layer scale) starts at its op's value, set
            continue  # when it was built
        if name in schemes:
            later.append((module, schemes[name]))
        if isinstance(module, _UNIFORM_FAN_IN):
            bound = 1.0 / math.sqrt(_fan_in(module)) if _fan_in(module) else 0.0
            draws += [(p, bound) for p in (module.weight, module.bias) if p is not None]
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()  # BatchNorm, and anything else with cheap defaults
        else:
            raise TypeError(f"do not know how to initialise {type(module).__name__} at {name or '<root>'}")
    _draw_uniform(draws)
    for module, scheme in later:  # after the defaults, in module order, from torch's global generator
        for tensor_name in ("weight", "bias"):
            tensor = getattr(module, tensor_name, None)
            if isinstance(tensor, torch.Tensor):
                _apply(tensor, getattr(scheme, tensor_name))


def _apply(tensor: torch.Tensor, how: Any) -> None:
    """One tensor of an ``init:`` scheme: a name or a Distribution (see language/model.py)."""
    with torch.no_grad():
        if how == "default":
            return
        if how == "zeros":
            nn.init.zeros_(tensor)
        elif how == "ones":
            nn.init.ones_(tensor)
        elif how in ("kaiming_normal_fan_out", "kaiming_normal_fan_in"):
            nn.init.kaiming_normal_(tensor, mode="fan_out" if how.endswith("fan_out") else "fan_in", nonlinearity="relu")
        elif how == "xavier_uniform":
            nn.init.xavier_uniform_(tensor)
        elif how.trunc_normal is not None:
            nn.init.trunc_normal_(tensor, std=how.trunc_normal, a=-2.0, b=2.0)
        elif how.uniform is not None:
            nn.init.uniform_(tensor, -how.uniform, how.uniform)
        else:
            nn.init.normal_(tensor, std=how.normal)


def _draw_uniform(draws: list[tuple[torch.Tensor, float]]) -> None:
    if not draws:
        return
    seeds = torch.randint(0, 2**62, (STREAMS,)).tolist()
    streams: list[list[tuple[torch.Tensor, float]]] = [[] for _ in range(STREAMS)]
    sizes = [0] * STREAMS
    for tensor, bound in sorted(draws, key=lambda d: -d[0].numel()):  # largest first, to the emptiest stream
        i = sizes.index(min(sizes))
        streams[i].append((tensor, bound))
        sizes[i] += tensor.numel()

    def fill(i: int) -> None:
        gen = np.random.Generator(np.random.SFC64(seeds[i]))
        with torch.no_grad():
            for tensor, bound in streams[i]:
                if tensor.dtype == torch.float32 and tensor.device.type == "cpu" and tensor.is_contiguous():
                    flat = tensor.detach().view(-1)
                    gen.random(out=flat.numpy(), dtype=np.float32)  # U[0, 1), in place
                    torch.add(torch.tensor(-bound), flat, alpha=2 * bound, out=flat)  # U[-bound, bound), one pass
                else:
                    tensor.uniform_(-bound, bound, generator=torch.Generator().manual_seed(int(gen.integers(2**62))))

    workers = max(1, min(STREAMS, torch.get_num_threads()))
    if workers == 1:
        for i in range(STREAMS):
            fill(i)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="archspec-init") as pool:
        list(pool.map(fill, range(STREAMS)))
