"""Fast, standard weight initialisation for a freshly built module tree.

``compile`` builds the modules with uninitialised tensors (each distinct layer once on the
``meta`` device, then copied; see ``compile.build_modules``) and calls :func:`initialize`. The
scheme is PyTorch's own default: a conv or linear layer draws its weight and bias from
U(−1/√fan_in, 1/√fan_in) (what ``kaiming_uniform_(a=√5)`` gives), BatchNorm starts at γ=1, β=0,
mean 0, var 1; any other module with parameters uses its ``reset_parameters()``; a spec's ``init:``
scheme replaces the default of the tensors it names (each tensor is drawn once, from its scheme).
The one difference is speed: the random draws (uniform, normal, truncated normal), which dominate
building a large network, are spread over threads, each with its own generator; uniform numbers
are drawn from NumPy's SFC64 generator's raw words (faster than torch's CPU ``uniform_``), normal ones
from the same words by the Box-Muller transform (faster than torch's ``normal_`` and NumPy's float32
ziggurat). The generators are
seeded from torch's global one, so ``torch.manual_seed`` makes builds reproducible, independently
of the number of threads.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
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


def _named_modules(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """``root.named_modules()``, the same (path, module) pairs in the same order (each module once, depth
    first), walked without nesting a generator per level (a deep tree made that walk half of this stage)."""
    found: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    todo: list[tuple[str, nn.Module]] = [("", root)]
    while todo:
        name, module = todo.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        found.append((name, module))
        children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
        todo.extend(reversed(children))
    return found


def initialize(root: nn.Module, schemes: Mapping[str, Any] | None = None, preset: Collection[int] = ()) -> None:
    """Initialise every parameter and buffer of ``root`` (allocated, not yet set), in place.

    ``schemes`` maps module paths to the spec's ``init:`` scheme (a TensorInit) for their weight and bias;
    every other tensor starts as PyTorch's default would start it. Each tensor is set once: a tensor
    the scheme names is drawn from that scheme only (not first from the default). The modules whose
    ids are in ``preset`` already hold PyTorch's defaults (a norm layer copied with its values): only
    a scheme of theirs is applied."""
    draws: list[Draw] = []
    schemes = schemes or {}
    for name, module in _named_modules(root):
        if all(t is None for t in module._parameters.values()) and all(t is None for t in module._buffers.values()):
            continue  # no tensor of its own (what parameters(recurse=False) and buffers(False) would say, faster)
        if type(module) is nn.Module:  # a container's own tensor (a layer scale) starts at its op's value, set
            continue  # when it was built
        scheme = schemes.get(name)
        if isinstance(module, _UNIFORM_FAN_IN):
            fan_in = _fan_in(module)
            bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
            for tensor_name in ("weight", "bias"):
                tensor = getattr(module, tensor_name)
                how = getattr(scheme, tensor_name) if scheme is not None else "default"
                if tensor is not None:
                    draws += [(tensor, "uniform", bound)] if how == "default" else _plan(tensor, how)
            reset_gain = getattr(module, "reset_gain", None)  # a scaled weight-standardised conv's gain (runtime.py)
            if reset_gain is not None:
                reset_gain()
            continue
        reset = getattr(module, "reset_parameters", None)
        if reset is None:
            raise TypeError(f"do not know how to initialise {type(module).__name__} at {name or '<root>'}")
        if id(module) not in preset:
            reset()  # BatchNorm, and anything else with cheap defaults
        if scheme is not None:
            for tensor_name in ("weight", "bias"):
                tensor = getattr(module, tensor_name, None)
                if isinstance(tensor, torch.Tensor):
                    draws += _plan(tensor, getattr(scheme, tensor_name))
    _draw(draws)


# One random tensor to fill: the tensor, the distribution ("uniform": U(-s, s); "normal": N(0, s²);
# "trunc_normal": N(0, s²) truncated to [-2, 2], as the spec's trunc_normal is), and s.
Draw = tuple[torch.Tensor, str, float]
_TRUNCATION = 2.0


def _plan(tensor: torch.Tensor, how: Any) -> list[Draw]:
    """One tensor of an ``init:`` scheme (a name or a Distribution, see language/model.py): constants are
    set at once, random draws returned for :func:`_draw`. The scales are torch.nn.init's."""
    if how == "default":
        return []
    if how in ("zeros", "ones"):
        with torch.no_grad():
            tensor.fill_(1.0 if how == "ones" else 0.0)
        return []
    if isinstance(how, str):  # kaiming_normal_fan_out/_fan_in (gain √2, ReLU's), xavier_uniform (gain 1)
        if tensor.dim() < 2:  # torch's own error: no fan of a vector
            nn.init.xavier_uniform_(tensor)
        receptive = math.prod(tensor.shape[2:])
        fan_in, fan_out = tensor.shape[1] * receptive, tensor.shape[0] * receptive
        if how == "xavier_uniform":
            return [(tensor, "uniform", math.sqrt(6.0 / (fan_in + fan_out)))]
        fan = fan_out if how.endswith("fan_out") else fan_in
        return [(tensor, "normal", math.sqrt(2.0) / math.sqrt(fan))]
    if how.trunc_normal is not None:
        return [(tensor, "trunc_normal", how.trunc_normal)]
    if how.uniform is not None:
        return [(tensor, "uniform", how.uniform)]
    return [(tensor, "normal", how.normal)]


def _fill(gen: np.random.Generator, tensor: torch.Tensor, kind: str, scale: float) -> None:
    """Draw one tensor in place from ``gen``."""
    if not (tensor.dtype == torch.float32 and tensor.device.type == "cpu" and tensor.is_contiguous()):
        seeded = torch.Generator().manual_seed(int(gen.integers(2**62)))
        if kind == "uniform":
            tensor.uniform_(-scale, scale, generator=seeded)
        elif kind == "normal":
            tensor.normal_(0.0, scale, generator=seeded)
        else:
            nn.init.trunc_normal_(tensor, std=scale, a=-_TRUNCATION, b=_TRUNCATION, generator=seeded)
        return
    flat = tensor.detach().view(-1)
    out = flat.numpy()
    if kind == "uniform":
        _fill_uniform(gen, out, scale)
        return
    if kind == "trunc_normal" and scale > _TRUNCATION:  # most draws rejected: torch's inverse-CDF method
        _fill_torch_trunc(gen, flat, scale)
        return
    _fill_normal(gen, out, scale)
    if kind == "trunc_normal":  # redraw what falls outside [-2, 2] (rare while std ≤ 2, the only case here)
        while out.size and (out.min() < -_TRUNCATION or out.max() > _TRUNCATION):
            bad = np.flatnonzero(np.abs(out) > _TRUNCATION)
            again = np.empty(len(bad), np.float32)
            _fill_normal(gen, again, scale)
            out[bad] = again


_CHUNK = 1 << 16  # numbers drawn at a time: their raw words stay in the cache on the way to the tensor


def _fill_uniform(gen: np.random.Generator, out: np.ndarray[Any, Any], scale: float) -> None:
    """U[-scale, scale] into ``out``: SFC64's raw 64-bit words as signed 32-bit integers, each times
    scale / 2³¹ in float32, a chunk at a time (one pass over the tensor; drawing the whole tensor's
    words first, then converting and scaling them, was two passes more over memory not yet touched)."""
    factor = np.float32(scale / 2**31)
    for start in range(0, out.size, _CHUNK):
        part = out[start : start + _CHUNK]
        words = gen.bit_generator.random_raw((part.size + 1) // 2)
        np.multiply(words.view(np.int32)[: part.size], factor, out=part, dtype=np.float32, casting="unsafe")


_TWO_PI = np.float32(2.0 * np.pi / 2**24)  # (a 24-bit integer times this: an angle in [0, 2π))


def _fill_normal(gen: np.random.Generator, out: np.ndarray[Any, Any], scale: float) -> None:
    """N(0, scale²) into ``out`` by the Box-Muller transform, a chunk at a time: each raw 64-bit word of SFC64 gives
    two 24-bit uniforms u1, u2 (u1 + ½ keeps the logarithm finite), and the pair gives two normals,
    r·cos θ and r·sin θ with r = scale·√(−2 ln u1) and θ = 2π·u2, through NumPy's vectorised log, sqrt, cos
    and sin (3.0 ns a value on one core, against 3.8 for torch's ``normal_``; the largest |value| it can
    give is 5.8·scale, as float32 uniforms allow)."""
    variance = np.float32(-2.0 * scale * scale)
    for start in range(0, out.size, _CHUNK):
        part = out[start : start + _CHUNK]
        half = (part.size + 1) // 2
        bits = gen.bit_generator.random_raw(half).view(np.uint32)
        np.right_shift(bits, np.uint32(8), out=bits)
        u = bits.astype(np.float32)  # (exact: below 2^24)
        r, theta = u[:half], u[half:]
        np.add(r, np.float32(0.5), out=r)
        np.multiply(r, np.float32(2.0**-24), out=r)
        np.log(r, out=r)
        np.multiply(r, variance, out=r)
        np.sqrt(r, out=r)
        np.multiply(theta, _TWO_PI, out=theta)
        cos = np.cos(theta)
        np.sin(theta, out=theta)
        np.multiply(r, cos, out=part[:half])
        np.multiply(r[: part.size - half], theta[: part.size - half], out=part[half:])


def _fill_torch_trunc(gen: np.random.Generator, flat: torch.Tensor, scale: float) -> None:
    seeded = torch.Generator().manual_seed(int(gen.integers(2**62)))
    nn.init.trunc_normal_(flat, std=scale, a=-_TRUNCATION, b=_TRUNCATION, generator=seeded)


def _draw(draws: list[Draw]) -> None:
    if not draws:
        return
    seeds = torch.randint(0, 2**62, (STREAMS,)).tolist()
    streams: list[list[Draw]] = [[] for _ in range(STREAMS)]
    sizes = [0] * STREAMS
    for draw in sorted(draws, key=lambda d: -d[0].numel()):  # largest first, to the emptiest stream
        i = sizes.index(min(sizes))
        streams[i].append(draw)
        sizes[i] += draw[0].numel()

    def fill(i: int) -> None:
        gen = np.random.Generator(np.random.SFC64(seeds[i]))
        with torch.no_grad():
            for tensor, kind, scale in streams[i]:
                _fill(gen, tensor, kind, scale)

    workers = max(1, min(STREAMS, torch.get_num_threads()))
    if workers == 1:
        for i in range(STREAMS):
            fill(i)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="archspec-init") as pool:
        list(pool.map(fill, range(STREAMS)))
