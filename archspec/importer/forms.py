"""The structural forms the converter (convert.py) hands on: channel splits, the merges, and the ops
that read an earlier value's size (interpolate size_of=, crop to=).

``x.chunk(n, 1)[i]`` and ``x.split(s, 1)[i]`` become channel slices once the item is taken;
``torch.cat``, ``+`` and ``*`` become concat, add (with a residual's scale) and a gate's product, or a
layer scale where one factor is a parameter. Each class reads its forms for one :class:`Converter`,
which dispatches ``read_<structural>`` to them as to its own methods.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch.fx as fx

from archspec.importer.prims import FunctionCall, ModuleCall, PrimWriter
from archspec.importer.sizes import centre_of, size_of
from archspec.importer.trace import Prim
from archspec.ops import REGISTRY, Op


def per_channel(node: fx.Node) -> bool:
    """A tensor attribute viewed one value per channel of a map: timm's ConvNeXt
    ``self.gamma.reshape(1, -1, 1, 1)``, PoolFormer's ``self.scale.view((C, 1, 1))``."""
    args = node.args[1:]
    shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)
    return (
        node.op == "call_method"
        and node.target in ("view", "reshape")
        and isinstance(node.args[0], fx.Node)
        and node.args[0].op == "get_attr"
        and shape[-2:] == (1, 1)
        and shape[:-3] in ((), (1,))
        and len(shape) >= 3
        and type(shape[-3]) is int
        and (shape[-3] == -1 or shape[-3] > 0)
    )


class ChannelSplits:
    """x.chunk(n, 1) and x.split(s, 1): remembered until an item is taken, which is then a channel_slice."""

    def __init__(self, converter: PrimWriter) -> None:
        self.c = converter
        # the split's input, and the (start, stop) of part i of C channels
        self.chunks: dict[fx.Node, tuple[fx.Node, Callable[[int, int], tuple[int, int]]]] = {}

    def read_chunk(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        chunks = call.get("chunks")
        if not isinstance(chunks, int):
            raise self.c.refuse(node, "a split other than x.chunk(n, 1)[i] along the channels")

        def part(channels: int, i: int) -> tuple[int, int]:
            size = -(-channels // chunks)
            return i * size, min(channels, (i + 1) * size)

        self.split_parts(node, call, part)

    def read_split(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """x.split(s, 1)[i] (parts of s channels, the last one shorter) or x.split([a, b], 1)[i]."""
        size = call.get("split_size")
        size = call.get("split_size_or_sections") if size is None else size

        def part(channels: int, i: int) -> tuple[int, int]:
            if isinstance(size, int):
                return i * size, min(channels, (i + 1) * size)
            return sum(size[:i]), sum(size[: i + 1])

        if not isinstance(size, int) and not (isinstance(size, (list, tuple)) and all(isinstance(v, int) for v in size)):
            raise self.c.refuse(node, "a split into parts whose sizes are computed at run time")
        self.split_parts(node, call, part)

    def split_parts(self, node: fx.Node, call: ModuleCall | FunctionCall, part: Callable[[int, int], tuple[int, int]]) -> None:
        if call.get("dim", 0) not in (1, -3) or not all(
            u.op == "call_function" and u.target is operator.getitem for u in node.users
        ):
            raise self.c.refuse(node, f"a split other than x.{node.target}(..., 1)[i] along the channels")
        self.c.input(node, 0)  # a traced tensor
        src = node.args[0]
        assert isinstance(src, fx.Node)
        self.chunks[node] = (src, part)

    def chunk_part(self, node: fx.Node) -> None:
        """x.chunk(n, 1)[i], x.split(s, 1)[i]: a channel_slice, from the channel count torch's shape
        propagation found."""
        chunked = node.args[0]
        assert isinstance(chunked, fx.Node)
        src, part = self.chunks[chunked]
        meta = src.meta.get("tensor_meta")
        i = node.args[1]
        if meta is None or not isinstance(i, int):
            raise self.c.refuse(node, "a channel split whose channel count is not known")
        start, stop = part(int(meta.shape[1]), i)
        self.c.add(node, "channel_slice", {"start": start, "stop": stop}, inputs=[self.c.value[src]])


class Merges:
    """torch.cat, +, * between traced values: concat, add, a gate's product, a residual's scale, a layer scale."""

    def __init__(self, converter: PrimWriter) -> None:
        self.c = converter

    def read_concat(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        tensors, dim = node.args[0] if node.args else node.kwargs.get("tensors"), call.get("dim", 0)
        if dim not in (1, -3) or not isinstance(tensors, (list, tuple)):
            raise self.c.refuse(node, f"torch.cat along dim {dim}; archspec concatenates channels (dim 1)")
        ids = [self.c.value.get(x) if isinstance(x, fx.Node) else None for x in tensors]
        known = [i for i in ids if i is not None]
        if len(known) != len(ids):
            raise self.c.refuse(node, "torch.cat of something other than traced tensors")
        if len(known) == 1:
            self.c.value[node] = known[0]
        else:
            self.c.add(node, op.name, inputs=known)

    def read_sub(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """a − b (PoolFormer's token mixer, pool(x) − x): the residual sum a + (−1)·b, as a spec writes it."""
        self.read_add(node, op, call, path, sign=-1)

    def read_add(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None, sign: int = 1) -> None:
        alpha = node.kwargs.get("alpha", 1)
        if len(node.args) != 2 or not all(isinstance(a, fx.Node) for a in node.args) or not isinstance(alpha, (int, float)):
            what = "an addition" if sign == 1 else "a subtraction"
            raise self.c.refuse(node, f"{what} with a constant; archspec adds two branches")
        alpha *= sign
        second = self.c.input(node, 1)
        if alpha != 1:  # torch.add(shortcut, body, alpha=s): the residual form archspec compiles to
            prim = Prim(len(self.c.prims), "scale", {"scale": float(alpha)}, None, [second], node.name)
            self.c.prims.append(prim)
            second = prim.id
        self.c.add(node, op.name, inputs=[self.c.input(node, 0), second])

    def read_scale_channels(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """archspec's own scale_channels(x, gamma): its `layer_scale ... flat`, gamma a vector of C."""
        x, attr = node.args[0], node.args[1]
        if not isinstance(attr, fx.Node) or attr.op != "get_attr":
            raise self.c.refuse(node, "scale_channels by something other than a tensor attribute")
        self.layer_scale(node, attr, x, flat=True)

    def layer_scale(self, node: fx.Node, attr: fx.Node, x: Any, flat: bool = False) -> None:
        """A parameter of C×1×1 times a map (torchvision's CNBlock: ``self.layer_scale * self.c.block(x)``),
        or a vector of C viewed so (timm's ConvNeXt: ``x.mul(self.gamma.reshape(1, -1, 1, 1))``, `flat`):
        archspec's layer_scale, its tensor at the attribute's path. Its start value is the tensor's when
        every channel holds the same (a model as constructed), else the op's default (a trained model's
        values come with its state_dict)."""
        if attr.op == "call_method":  # the vector's per-channel view (per_channel)
            flat = True
            viewed = attr.args[0]
            assert isinstance(viewed, fx.Node)
            attr = viewed
        target = str(attr.target)
        try:
            tensor = self.c.gm.get_parameter(target)
        except AttributeError:
            raise self.c.refuse(node, f"a product with the buffer {target!r}; archspec's layer_scale is a parameter") from None
        if not isinstance(x, fx.Node) or x not in self.c.value or x in self.c.channels_last:
            raise self.c.refuse(node, f"the parameter {target!r} times something other than a map")
        if (tensor.dim() != 1) if flat else (tensor.dim() != 3 or tuple(tensor.shape[1:]) != (1, 1)):
            raise self.c.refuse(
                node,
                f"a product with a parameter of shape {tuple(tensor.shape)}; archspec's layer_scale is C×1×1, "
                "or a vector of C viewed so (`flat`)",
            )
        params: dict[str, Any] = {"flat": True} if flat else {}
        values = tensor.detach().flatten()
        if not values.is_meta and bool((values == values[0]).all()):
            params["init"] = float(f"{float(values[0]):.7g}")  # a float32's value, as written (1e-06)
        self.c.add(node, "layer_scale", params, inputs=[self.c.value[x]], path=target, stateful=True)

    def read_mul(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")  # torch.mul(x, other=s)
        attr = next((x for x in (a, b) if isinstance(x, fx.Node) and (x.op == "get_attr" or per_channel(x))), None)
        if attr is not None:
            self.layer_scale(node, attr, b if attr is a else a)
            return
        if isinstance(a, fx.Node) and isinstance(b, fx.Node):
            # x · g(x): a gate (squeeze-and-excitation), recovered in structure.py
            self.c.add(node, op.name, inputs=[self.c.input(node, 0), self.c.input(node, 1)])
            return
        tensor, factor = (a, b) if isinstance(a, fx.Node) else (b, a)
        if not isinstance(tensor, fx.Node) or isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise self.c.refuse(node, "a product with something other than a tensor or a number")
        # x · s: a residual body's scale (structure.py), never an op of its own
        self.c.add(node, "scale", {"scale": float(factor)}, inputs=[self.c.value[tensor]])


class Rows:
    """Forms read as other ops than their own: a module as several ops in a row, a reduction by its axes."""

    def __init__(self, converter: PrimWriter) -> None:
        self.c = converter

    def read_mean(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """x.mean((2, 3)): global_avgpool (adaptive_avgpool 1x1 with keepdim); x.mean(1, keepdim=True): channel_mean."""
        self.reduce(node, call, "adaptive_avgpool", op.name, "channel_mean")

    def read_amax(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """x.amax(1, keepdim=True): channel_max (CBAM's spatial attention, archspec's own form)."""
        self.reduce(node, call, None, None, op.name)

    def reduce(self, node: fx.Node, call: ModuleCall | FunctionCall, kept: str | None, flat: str | None, channels: str) -> None:
        dims, keep = call.get("dim"), bool(call.get("keepdim", False))
        dims = [dims] if isinstance(dims, int) else list(dims) if isinstance(dims, (tuple, list)) else None
        if dims is not None and [d % 4 for d in dims] == [1] and keep:
            self.c.add(node, channels)
        elif dims is not None and sorted(d % 4 for d in dims) == [2, 3] and (kept if keep else flat) is not None:
            self.c.add(node, str(kept if keep else flat), {"size": (1, 1)} if keep else {})
        else:
            what = f"a reduction over dims {dims} (keepdim={keep})"
            raise self.c.refuse(node, f"{what}; archspec reduces over H and W, or over the channels kept")

    def read_weighted_sum(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """archspec's own weighted_sum(x, w, branches, weights, eps): `weighted_sum K`, its K weights at w's path."""
        x, attr = node.args[0], node.args[1]
        if not isinstance(attr, fx.Node) or attr.op != "get_attr" or not isinstance(x, fx.Node):
            raise self.c.refuse(node, "weighted_sum by something other than a tensor attribute")
        values = self.c.gm.get_parameter(str(attr.target)).detach().flatten()
        params = {"branches": int(call.get("branches")), "weights": str(call.get("weights")), "eps": float(call.get("eps"))}
        if not values.is_meta and bool((values == values[0]).all()):
            params["init"] = float(f"{float(values[0]):.7g}")
        self.c.add(node, op.name, params, inputs=[self.c.input(node, 0)], path=str(attr.target), stateful=True)

    def read_blur_pool(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """timm's BlurPool2d (anti-aliased downsampling, Zhang 2019): a padding by ``(stride − 1 + K − 1) // 2``
        (reflected, or zeros for ``blurpc``), then the binomial K×K filter at the stride, a buffer computed from
        K. The binomial filter of K taps is K − 1 box filters of 2 taps in a row, so it is written as the
        language writes it: ``[pad 1 reflect, avgpool 2x2, avgpool 2x2 s2]`` for K = 3. The ops sit at
        ``PATH.0``, ``PATH.1``, ...: a list in place of the module."""
        k, stride, mode = call.get("filt_size"), call.get("stride"), call.get("pad_mode")
        if not (isinstance(k, int) and k >= 2 and isinstance(stride, int) and stride >= 1 and mode in ("reflect", "constant")):
            raise self.c.refuse(node, f"a BlurPool2d of filt_size={k!r}, stride={stride!r}, pad_mode={mode!r}")
        pad = (stride - 1 + k - 1) // 2
        rows: list[tuple[str, dict[str, Any]]] = [("pad", {"padding": (pad,) * 4, "mode": mode})] if pad else []
        rows += [("avgpool", {"kernel_size": 2, "stride": stride if i == k - 2 else 1}) for i in range(k - 1)]
        value = self.c.input(node, 0)
        for i, (name, args) in enumerate(rows):
            params = REGISTRY[name].read(args)  # each op's own reading of torch's arguments
            value = self.c.add(node, name, params, inputs=[value], path=f"{path}.{i}" if path else None)


class ValueReads:
    """Ops that read an earlier value for its size (``Op.reads_values``): ``F.interpolate(x,
    size=v.shape[-2:])`` is ``interpolate size_of=v``, ``x[:, :, top : top + h, left : left + w]`` at
    ``v``'s centre offsets is ``crop to=v``. The value ``v`` becomes the prim's second input (a read of its
    size, not of its data: structure recovery names it). A call in another form is read as the
    function's other op (an ``upsample`` to a fixed size or by a factor), or as before (an item of a split)."""

    def __init__(self, converter: PrimWriter) -> None:
        self.c = converter

    def read(self, node: fx.Node, entry: tuple[Op, Any], call: FunctionCall) -> bool:
        """Whether the call is this entry's form, read (``read_<structural>``); False leaves it to the others."""
        op, reader = entry
        method: Callable[[fx.Node, Op, FunctionCall, str | None], bool] = getattr(self, "read_" + reader.structural)
        return method(node, op, call, None)

    def read_resize_to(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> bool:
        like = size_of(call.get("size"))
        if like is None:
            return False
        if like not in self.c.value:
            raise self.c.refuse(node, "an interpolation to the size of something other than a traced tensor")
        for unread in ("scale_factor", "recompute_scale_factor", "antialias"):
            if call.get(unread, None):
                raise self.c.refuse(node, f"an interpolation to another value's size with {unread}={call.get(unread)!r}")
        mode = call.get("mode", "nearest")
        if mode not in ("nearest", "bilinear"):
            raise self.c.refuse(node, f"interpolation mode {mode!r}; archspec resizes nearest or bilinear")
        params: dict[str, Any] = {"size_of": "", "mode": mode}
        if call.get("align_corners", None) and mode == "bilinear":  # False is torch's default, as the op's None
            params["align_corners"] = True
        self.c.add(node, op.name, params, inputs=[self.c.input(node, 0), self.c.value[like]])
        return True

    def read_resize_like(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> None:
        """archspec's own InterpolateLike module, called on (x, like): ``interpolate size_of=like``."""
        params: dict[str, Any] = {"size_of": "", "mode": call.get("mode", "nearest")}
        if call.get("align_corners", None):
            params["align_corners"] = True
        self.c.add(node, op.name, params, inputs=[self.c.input(node, 0), self.c.input(node, 1)], path=path)

    def read_branch_select(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> bool:
        """archspec's own branch_select(logits, x): ``branch_select K of=x``, the branches read by name."""
        params = {"branches": int(call.get("branches")), "groups": int(call.get("groups", 1)), "of": ""}
        self.c.add(node, op.name, params, inputs=[self.c.input(node, 0), self.c.input(node, 1)])
        return True

    def read_center_crop(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> bool:
        """archspec's own center_crop(x, like): ``crop to=like``."""
        self.c.add(node, op.name, {"to": ""}, inputs=[self.c.input(node, 0), self.c.input(node, 1)])
        return True

    def read_crop(self, node: fx.Node, op: Op, call: ModuleCall | FunctionCall, path: str | None) -> bool:
        src = node.args[0]
        if not isinstance(src, fx.Node) or src not in self.c.value:
            return False
        like = centre_of(src, node.args[1])
        if like is None or like not in self.c.value:
            return False
        self.c.add(node, op.name, {"to": ""}, inputs=[self.c.value[src], self.c.value[like]])
        return True
