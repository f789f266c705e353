"""oneDNN's fused convolution, shared by the conv fusion passes: the one module that calls torch's private API.

Every private name the passes use (``torch.ops.mkldnn._convolution_pointwise`` and
``torch.ops.mkldnn._linear_pointwise``, each with its ``.binary`` overload, the in-place
``torch.ops.mkldnn._convolution_pointwise_.binary``,
``torch._C._nn.mkldnn_reorder_conv2d_weight``, ``torch.ops.mkldnn._is_mkldnn_bf16_supported``)
is called here and nowhere else. They are used only on a torch whose version this project has tested
(:data:`TESTED_TORCH`) and that answers the probe below; on any other torch, with oneDNN switched off,
or with autograd on, the fused convs run their public fallback (``conv2d`` + ``add`` + ``relu_``),
which every CI run exercises (``tests/test_optimize.py``).

``torch.ops.mkldnn._convolution_pointwise`` (the kernel ``torch.compile``'s CPU backend emits) runs
a conv with post-ops: an activation, and optionally a tensor added to its output. Given a plain
weight it reorders it into oneDNN's blocked layout on every call; :class:`OneDNNConv` keeps the
reordered copy, made on the first call (5–20 % of a 1×1 conv's time on 8×8 maps), at the cost of a
second copy of the conv's weights in memory. The copy is remade when the weight changes (``_version``,
storage, dtype) or the input shape does, and is never saved, copied or moved with the module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import torch
import torch.nn as nn

# The torch versions (major, minor) whose private oneDNN ops these passes were written and tested
# against; a newer torch gets the public fallback until it is tested and added here.
TESTED_TORCH = ((2, 14),)


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def _supported_dtypes() -> frozenset[torch.dtype]:
    """The dtypes oneDNN's fused conv takes on this CPU (bf16 needs AVX512-BW/VL/DQ or AVX-NE-CONVERT)."""
    if _torch_version() not in TESTED_TORCH or not torch.backends.mkldnn.is_available():
        return frozenset()
    try:  # private ops (the ones inductor emits): the passes fall back to public torch where a torch lacks them
        torch.ops.mkldnn._convolution_pointwise.default  # noqa: B018
        torch.ops.mkldnn._linear_pointwise.binary  # noqa: B018
    except (AttributeError, RuntimeError):
        return frozenset()
    dtypes = {torch.float32}
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        dtypes.add(torch.bfloat16)
    return frozenset(dtypes)


def _has_in_place_sum() -> bool:
    """Whether this torch has the in-place fused conv (``conv(x) + other`` written into ``other``)."""
    if not _supported_dtypes():
        return False
    try:
        torch.ops.mkldnn._convolution_pointwise_.binary  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


# Worked out once, at import: asked for the first time while torch.export or dynamo traces a
# forward, the answer could be the tracer's rather than the machine's.
_SUPPORTED = _supported_dtypes()
IN_PLACE_SUM = _has_in_place_sum()


def mkldnn_dtypes() -> frozenset[torch.dtype]:
    """The dtypes the fused kernel may run now: none while oneDNN is switched off."""
    return _SUPPORTED if torch.backends.mkldnn.enabled else frozenset()


def usable(x: torch.Tensor, weight: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether oneDNN's fused kernels can run a call on ``x`` with ``weight``: CPU, a dtype they
    have, no autograd, and every other tensor the same dtype on the CPU."""
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype in mkldnn_dtypes()
        and weight.dtype == x.dtype
        and all(o.dtype == x.dtype and o.device.type == "cpu" for o in others)
    )


def one_pixel(x: torch.Tensor) -> bool:
    """A map of one pixel, by concrete sizes (a symbolic size, under tracing, is taken as larger: no guard)."""
    h, w = x.shape[-2], x.shape[-1]
    return type(h) is int and type(w) is int and h * w == 1


def conv_pointwise(
    conv: OneDNNConv,
    x: torch.Tensor,
    activation: str,
    scalars: Sequence[float] = (),
    algorithm: str = "",
    padding: Sequence[int] | None = None,
) -> torch.Tensor:
    """``activation(conv(x))`` in one oneDNN kernel. ``activation`` is a oneDNN post-op name (``"none"``,
    ``"relu"``, ``"hardswish"``, ``"swish"``, ``"gelu"``, ``"sigmoid"``, ``"hardsigmoid"``, ``"hardtanh"``),
    ``scalars`` its arguments (hardtanh's bounds), ``algorithm`` GELU's (``"none"`` or ``"tanh"``);
    ``padding`` for this call where it depends on the input's size (else the conv's own)."""
    pad = cast(Sequence[int], conv.padding) if padding is None else padding
    args = (
        conv.packed_weight(x, pad),
        conv.bias,
        pad,
        conv.stride,
        conv.dilation,
        conv.groups,
        activation,
        list(scalars),
        algorithm,
    )
    if padding is None:  # the conv's own padding: the same arguments serve the next call on this shape
        conv.remember(x, partial(_pointwise_again, args))
    return torch.ops.mkldnn._convolution_pointwise(x, *args)


def _pointwise_again(args: tuple[Any, ...], x: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._convolution_pointwise(x, *args)


def linear_pointwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str, algorithm: str
) -> torch.Tensor:
    """``activation(x @ weightᵀ + bias)`` over the last axis in one oneDNN kernel (an eltwise post-op)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], algorithm)


def linear_add(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weightᵀ + bias + other`` in one oneDNN kernel (a binary post-op)."""
    return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, "add")


def conv_add_pointwise(conv: OneDNNConv, x: torch.Tensor, other: torch.Tensor, activation: str | None) -> torch.Tensor:
    """``activation(conv(x) + other)`` in one oneDNN kernel (a binary post-op, then the unary one)."""
    return torch.ops.mkldnn._convolution_pointwise.binary(x, other, *_add_then(conv, x, activation))


def conv_add_pointwise_(conv: OneDNNConv, x: torch.Tensor, other: torch.Tensor, activation: str | None) -> torch.Tensor:
    """``activation(conv(x) + other)`` in one oneDNN kernel, written into ``other`` and returned (oneDNN's
    ``sum`` post-op: no new map is allocated, and the sum is made as each output tile is stored)."""
    return torch.ops.mkldnn._convolution_pointwise_.binary(other, x, *_add_then(conv, x, activation))


def _add_then(conv: OneDNNConv, x: torch.Tensor, activation: str | None) -> tuple[object, ...]:
    """The arguments both binary conv kernels take after their two maps: the conv's, an add, the unary op."""
    weight = conv.packed_weight(x)
    return (weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups, "add", None, activation, [], None)


class OneDNNConv(nn.Conv2d):
    """Base of the fused convs: an ``nn.Conv2d`` (same parameters, same state_dict keys)."""

    _packed: tuple[Any, torch.Tensor] | None = None
    _repeat: tuple[Any, ...] | None = None  # the last fused call's input, weight and arguments (see ``again``)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> Any:
        fused = cls.__new__(cls)
        fused.__dict__.update(conv.__dict__)
        fused._parameters = dict(conv._parameters)  # its own registry, so conv's is never changed
        return fused

    def onednn(self, x: torch.Tensor, *others: torch.Tensor) -> bool:
        """Whether oneDNN's kernel can run this call (CPU, a dtype it has, no autograd) and is worth it:
        not on a 1×1 map (an SE gate's convs after its pool), where the fused call's fixed cost, about
        50 µs, is several times that of ``conv2d`` and the activation (about 10 µs)."""
        return usable(x, self.weight, *others) and not one_pixel(x)

    def again(self, x: torch.Tensor) -> torch.Tensor | None:
        """The last call's computation (:func:`conv_pointwise` with the same arguments, or an SE conv's
        matrix product) run on ``x``, where it still holds: an input of the same shape and dtype on the
        CPU, the same weight (unchanged) and bias, autograd off and oneDNN on. Else None, and the caller
        takes its general path. A handful of attribute reads instead of :func:`usable`,
        :func:`one_pixel` and the packed weight's key: at batch 1 on small maps the Python time of a
        call is a sizeable part of it (the fused kernel's own fixed cost is ~40 µs)."""
        r = self._repeat
        if r is None or torch.is_grad_enabled() or not torch._C._get_mkldnn_enabled():
            return None
        w = self._parameters["weight"]
        if (
            r[0] == x.shape
            and r[1] is x.dtype
            and x.is_cpu
            and r[2] is w
            and r[3] == w._version
            and r[4] == w.data_ptr()
            and r[5] is self._parameters["bias"]
            and x.dtype in _SUPPORTED
        ):
            return cast(torch.Tensor, r[6](x))
        return None

    def remember(self, x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Keep what a call on ``x`` computed (``run(x)``, of this weight and bias) for :meth:`again`."""
        w = self._parameters["weight"]
        assert w is not None
        self._repeat = (x.shape, x.dtype, w, w._version, w.data_ptr(), self._parameters["bias"], run)

    def packed_weight(self, x: torch.Tensor, padding: Sequence[int] | None = None) -> torch.Tensor:
        """The weight in oneDNN's layout for a call on ``x`` (with ``padding``, else the conv's own)."""
        w = self.weight
        pad = cast(Sequence[int], self.padding) if padding is None else padding
        key = (w.data_ptr(), w._version, w.dtype, tuple(x.shape), tuple(pad))
        if self._packed is None or self._packed[0] != key:
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(  # type: ignore[call-arg]  # its stub lacks input_size
                w.detach().to_mkldnn(), list(pad), list(self.stride), list(self.dilation), self.groups, list(x.shape)
            )
            self._packed = (key, packed)
        return self._packed[1]

    def __getstate__(self) -> dict[str, Any]:  # deepcopy and pickle: the packed copy is opaque, and remade
        state = super().__getstate__()
        state.pop("_packed", None)
        state.pop("_repeat", None)
        return state

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(), .float(), ...: drop the copy
        self._packed = None
        self._repeat = None
        return super()._apply(fn, recurse)
