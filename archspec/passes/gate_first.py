"""An SE-ResNet block's gate computed before its last conv, and the gated sum as that conv's post-op.

An SE-ResNet block ends in ``relu(shortcut + gate · y)``, ``y = conv(z)`` a 1×1 conv without activation
(its BatchNorm folded in) and ``gate = f(pool(y))``, ``pool`` the global average. The pool commutes with
the conv: ``pool(conv(z)) = W · pool(z) + b``, so the gate can be had from ``z`` (a quarter of ``y``'s
channels) before the conv runs. With the gate known, each image's conv runs on its gate-scaled weights
(``gate[n] · y[n] = conv(z[n]; gate[n] ⊙ W, gate[n] ⊙ b)``) and oneDNN's in-place sum writes
``relu(shortcut + ·)`` into the shortcut's memory as each tile is stored: ``y`` is never written out,
and the ``addcmul`` and ``relu_`` passes over the map are gone.

The price is one weight copy per image (packed by oneDNN on every call), so this is done where the map
is at least as large as the output channels (H·W ≥ C_out: SE-ResNet-50's first two stages); elsewhere,
and where the tensors do not allow the in-place kernel, the conv, ``addcmul`` and ``relu_`` run as
before. Side by side under the bench lock (batch 8, SE-ResNet-50's shapes, load 10): 9.1 → 5.8 ms a
block at 64 → 256 channels on 56×56, 5.7 → 4.9 at 128 → 512 on 28×28, 4.3 → 4.8 at 256 → 1024 on 14×14
(hence the rule). Runs after ``fuse_gate`` (which makes the ``addcmul``) and the conv fusions; only
where the conv's output is read by the pool and the sum alone, the gate by the sum alone, and the
shortcut may be written (:func:`archspec.passes.fuse_add._writable`).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.fx as fx
import torch.nn.functional as F

from archspec.passes import onednn
from archspec.passes.common import RELUS, PassResult, called_module, finish, global_mean, only_user, set_module, spatial_mean
from archspec.passes.fuse_act import ConvAct
from archspec.passes.fuse_add import _writable


def pooled_pointwise(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``pool(conv(z))`` for a 1×1 conv, as ``conv(pool(z))``: N×C_out×1×1."""
    y = F.linear(global_mean(z, (2, 3), keepdim=False), weight.reshape(weight.shape[0], -1), bias)
    return y.reshape(*y.shape, 1, 1)


class GatedSumConv(ConvAct):
    """``relu(other + gate · conv(x))`` for a 1×1 conv without activation, ``gate`` N×C_out×1×1."""

    def forward(self, x: torch.Tensor, other: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self._per_image(x, other, gate):
            n = x.shape[0]
            g = gate.reshape(n, self.out_channels)
            for i in range(n):
                gi = g[i]
                bias = None if self.bias is None else self.bias * gi
                torch.ops.mkldnn._convolution_pointwise_.binary(
                    other[i : i + 1],
                    x[i : i + 1],
                    self.weight * gi.reshape(-1, 1, 1, 1),
                    bias,
                    [0, 0],
                    [1, 1],
                    [1, 1],
                    1,
                    "add",
                    None,
                    "relu",
                    [],
                    None,
                )
            return other
        return torch.relu_(torch.addcmul(other, super().forward(x), gate))

    def _per_image(self, x: torch.Tensor, other: torch.Tensor, gate: torch.Tensor) -> bool:
        """Whether the per-image in-place kernels can run: concrete sizes, float32 on oneDNN, a map at
        least as large as the output channels, every tensor channels_last and ``other`` a whole tensor of
        the output's shape, not ``x``'s memory."""
        sizes = (*x.shape, *other.shape, *gate.shape)
        if not all(type(s) is int for s in sizes) or x.dim() != 4:  # a symbolic size (tracing): no shape guards
            return False
        n, _, h, w = x.shape
        last = torch.channels_last
        return (
            onednn.IN_PLACE_SUM
            and x.dtype == torch.float32
            and self.onednn(x, other, gate)
            and h * w >= self.out_channels
            and tuple(other.shape) == (n, self.out_channels, h, w)
            and tuple(gate.shape) == (n, self.out_channels, 1, 1)
            and x.is_contiguous(memory_format=last)
            and other.is_contiguous(memory_format=last)
            and other._base is None
            and other.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
        )


def _global_pool(node: fx.Node) -> bool:
    """Whether ``node`` is ``adaptive_avg_pool2d(x, 1)`` (or ``(1, 1)``), its map given by position."""
    return node.target is F.adaptive_avg_pool2d and spatial_mean(node) is not None


def _match(gm: fx.GraphModule, relu: fx.Node) -> tuple[fx.Node, fx.Node, fx.Node, fx.Node] | None:
    """(addcmul, conv, pool, shortcut) where ``relu`` ends ``relu(shortcut + conv(z) · gate)`` with the gate
    made from ``pool(conv(z))`` alone, else None."""
    if relu.op != "call_function" or relu.target not in RELUS or len(relu.args) != 1 or relu.kwargs:
        return None
    addcmul = relu.args[0]
    if not isinstance(addcmul, fx.Node) or addcmul.op != "call_function" or addcmul.target is not torch.addcmul:
        return None
    if addcmul.kwargs or len(addcmul.args) != 3 or only_user(addcmul) is not relu:
        return None
    shortcut, y, gate = addcmul.args
    if not (isinstance(shortcut, fx.Node) and isinstance(y, fx.Node) and isinstance(gate, fx.Node)):
        return None
    conv = called_module(gm, y)
    if type(conv) is not ConvAct or conv.post_op.name != "none" or not conv.pointwise or conv.stride != (1, 1):
        return None
    pools = [u for u in y.users if u is not addcmul]
    if len(y.users) != 2 or len(pools) != 1 or not _global_pool(pools[0]) or only_user(gate) is not addcmul:
        return None
    return addcmul, y, pools[0], shortcut


def gate_before_conv(gm: fx.GraphModule) -> PassResult:
    rewrites = 0
    for relu in list(gm.graph.nodes):
        found = _match(gm, relu)
        if found is None:
            continue
        addcmul, y, pool, shortcut = found
        z = y.args[0]
        if len(y.args) != 1 or y.kwargs or not _writable(gm, shortcut, addcmul, z):
            continue
        target = str(y.target)
        conv = cast(ConvAct, gm.get_submodule(target))
        fused = GatedSumConv.from_conv(conv)
        set_module(gm, target, fused)
        with gm.graph.inserting_before(pool):
            weight = gm.graph.get_attr(f"{target}.weight")
            bias = gm.graph.get_attr(f"{target}.bias") if conv.bias is not None else None
            pooled = gm.graph.call_function(pooled_pointwise, (z, weight, bias))
        pooled.meta.update(pool.meta)
        pool.replace_all_uses_with(pooled)
        gm.graph.erase_node(pool)
        with gm.graph.inserting_before(relu):
            out = gm.graph.call_module(target, (z, shortcut, addcmul.args[2]))
        out.meta.update(relu.meta)
        relu.replace_all_uses_with(out)
        gm.graph.erase_node(relu)
        gm.graph.erase_node(addcmul)
        gm.graph.erase_node(y)
        rewrites += 1
    return finish(gm, "gate_before_conv", rewrites)
