"""The oracle: a slow, plain, eager interpreter of the primitive program of tests/fuzz/specgen.py.

It is written from the op descriptions of docs/language.md alone: no torch.fx, no in-place ops,
no fusion, nothing from archspec. Every op with state is a plain torch module registered at its
module path (``features.6.branch1.0.conv``), so the compiled model's ``state_dict`` loads into it;
every other op is one call of a torch function, on fresh values only.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.fuzz.specgen import Prim, Truth

ACTIVATIONS = {
    "relu": torch.relu,
    "relu6": F.relu6,
    "gelu": F.gelu,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
}  # leaky_relu takes its slope: see Oracle.apply


def _module(p: Prim, truth: Truth) -> nn.Module:
    a = p.params
    if p.op in ("conv2d", "std_conv2d"):  # `same` pads by hand before the conv (apply)
        pad = (0, 0) if a["same"] else a["padding"]
        conv = nn.Conv2d(a["in"], a["out"], a["kernel"], a["stride"], pad, a["dilation"], a["groups"], a["bias"])
        if a.get("gain"):  # docs/language.md, `std_conv2d`: the gain, out×1×1×1, key `gain`
            conv.gain = nn.Parameter(torch.ones(a["out"], 1, 1, 1))
        return conv
    if p.op == "group_norm":
        return nn.GroupNorm(a["groups"], truth.shapes[p.id].c, eps=a["eps"], affine=a["affine"])
    if p.op == "conv_transpose":
        k, st, pad, op, d = (a[f] for f in ("kernel", "stride", "padding", "output_padding", "dilation"))
        return nn.ConvTranspose2d(a["in"], a["out"], k, st, pad, op, a["groups"], a["bias"], d)
    if p.op == "linear":
        return nn.Linear(a["in"], a["out"], bias=a["bias"])
    if p.op == "bn":
        cls = nn.BatchNorm2d if truth.shapes[p.id].is_map else nn.BatchNorm1d
        return cls(truth.shapes[p.id].c, eps=a["eps"], momentum=a["momentum"], affine=a["affine"])
    if p.op == "layer_norm":
        return nn.LayerNorm(truth.shapes[p.id].c, eps=a["eps"], elementwise_affine=a["affine"])
    if p.op == "frozen_bn":
        return _Frozen(truth.shapes[p.id].c)
    if p.op == "grn":  # docs/language.md: γ and β, C each, as `weight` and `bias` at its path
        return _Affine(truth.shapes[p.id].c)
    if p.op == "affine":  # docs/language.md: `scale` and `bias`, [1] each, starting at the op's values
        holder = nn.Module()
        holder.scale = nn.Parameter(torch.tensor([float(a["scale"])]))
        holder.bias = nn.Parameter(torch.tensor([float(a["bias"])]))
        return holder
    raise ValueError(p.op)


class _Affine(nn.Module):
    """grn's state as docs/language.md describes it: a weight and a bias of C, starting at zero."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))


class _Frozen(nn.Module):
    """frozen_bn's state as docs/language.md describes it: γ, β, mean and variance as buffers."""

    def __init__(self, c: int) -> None:
        super().__init__()
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((c,), value))


MODULE_OPS = ("conv2d", "std_conv2d", "conv_transpose", "linear", "bn", "layer_norm", "group_norm", "frozen_bn", "grn", "affine")


class Oracle(nn.Module):
    """Runs the program: eval mode returns the logits; training mode the logits alone, or a dict
    of the logits and every aux head's output when the spec has aux heads."""

    def __init__(self, truth: Truth) -> None:
        super().__init__()
        self.truth = truth
        # docs/language.md: in eval mode the network computes its outputs alone, not an aux head, nor the part of
        # the network only an aux head reads (with outputs: the tap may lie after every output)
        by_id = {p.id: p for p in truth.prims}
        self.eval_reads: set[str] = set()
        todo = [truth.outputs[name] for name in truth.main]
        while todo:
            v = todo.pop()
            if v != "input" and v not in self.eval_reads:
                self.eval_reads.add(v)
                todo.extend(by_id[v].inputs)
        for p in truth.prims:
            if p.shares is not None:  # a `share:`'s copy calls its original's module, at the same path (apply)
                continue
            if p.op in MODULE_OPS:
                self._put(p.path, _module(p, truth))
            elif p.op == "channel_conv":  # docs/language.md: an nn.Conv1d(1, 1, K)'s weight, [1, 1, K], no bias
                holder = nn.Module()
                holder.weight = nn.Parameter(torch.empty(1, 1, p.params["kernel"]))
                self._put(p.path, holder)
            elif p.op == "layer_scale":  # a tensor of the enclosing module, C×1×1 on a map (C on a vector, or flat)
                s = truth.shapes[p.id]
                shape = (s.c, 1, 1) if s.is_map and not p.params["flat"] else (s.c,)
                shape = () if p.params["scalar"] else shape  # one γ, a 0-dimensional tensor
                self._put(p.path, nn.Parameter(torch.full(shape, p.params["init"])))
            elif p.op == "prelu":  # docs/language.md, `prelu`: a `weight` of 1 slope (C per_channel) at its path
                holder = nn.Module()
                n = truth.shapes[p.id].c if p.params["per_channel"] else 1
                holder.weight = nn.Parameter(torch.full((n,), p.params["init"]))
                self._put(p.path, holder)
            elif p.op == "weighted_sum":  # K weights, a tensor of the enclosing module
                self._put(p.path, nn.Parameter(torch.full((p.params["branches"],), p.params["init"])))
        # docs/language.md, "Frozen parameters": a parameter at or under a module path an entry matches does not train
        for name, param in self.named_parameters():
            parts = name.split(".")
            above = [".".join(parts[: i + 1]) for i in range(len(parts))]
            if any(fnmatch.fnmatchcase(q, pattern) for q in above for pattern in truth.frozen):
                param.requires_grad_(False)

    def _put(self, path: str, module: nn.Module | nn.Parameter) -> None:
        # written into _modules directly: a spec may name a module like an nn.Module attribute
        parent: nn.Module = self
        *parents, leaf = path.split(".")
        for part in parents:
            child = parent._modules.get(part)
            if child is None:
                child = parent._modules[part] = nn.Module()
            parent = child
        if isinstance(module, nn.Parameter):
            parent._parameters[leaf] = module
        else:
            parent._modules[leaf] = module

    def tensor(self, path: str) -> torch.Tensor:
        parent, _, leaf = path.rpartition(".")
        owner = self.layer(parent) if parent else self
        return owner._parameters[leaf]  # type: ignore[return-value]

    def layer(self, path: str) -> nn.Module:
        m: nn.Module = self
        for part in path.split("."):
            m = m._modules[part]  # type: ignore[assignment]
        return m

    def forward(self, x: torch.Tensor) -> Any:
        values: dict[str, torch.Tensor] = {"input": x}
        for p in self.truth.prims:
            if not self.training and p.id not in self.eval_reads:
                continue
            values[p.id] = self.apply(p, [values[i] for i in p.inputs])
        if self.training and len(self.truth.outputs) > len(self.truth.main):  # aux heads: every output
            return {name: values[v] for name, v in self.truth.outputs.items()}
        if self.truth.named:  # outputs: a dict, in order, in both modes
            return {name: values[self.truth.outputs[name]] for name in self.truth.main}
        return values[self.truth.outputs["logits"]]

    def apply(self, p: Prim, xs: list[torch.Tensor]) -> torch.Tensor:
        """One primitive: the ops with weights (or a train/eval mode) here, the others in :func:`_stateless`."""
        a = p.params
        x = xs[0]
        if p.op in ("linear", "layer_norm") and x.dim() == 4:  # over each pixel's channels
            return self.layer(p.path)(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if p.op in ("conv2d", "std_conv2d"):
            return _conv(self.layer(p.path), a, x, p.op == "std_conv2d")
        if p.op == "group_norm":  # on a channels-first copy: torch's channels-last CPU kernel loses float32 precision
            return self.layer(p.path)(x.contiguous())  # (seed 6202918: 5e-4 off after a layer_norm's permute, at var 2e-4)
        if p.op in ("linear", "bn", "layer_norm", "conv_transpose"):
            return self.layer(p.path)(x)
        if p.op == "frozen_bn":  # (x − mean) / √(var + eps) · γ + β, in training mode too
            f = self.layer(p.path)
            return (x - f.running_mean[:, None, None]) / torch.sqrt(f.running_var[:, None, None] + a["eps"]) * f.weight[
                :, None, None
            ] + f.bias[:, None, None]
        if p.op == "grn":  # ConvNeXt V2 (arXiv 2301.00808, Eq. 1-3): G = ‖x‖ over H×W, N = G / (mean_C G + eps)
            f = self.layer(p.path)
            g = x.pow(2).sum((2, 3), keepdim=True).sqrt()
            n = g / (g.mean(1, keepdim=True) + a["eps"])
            return f.weight[:, None, None] * (x * n) + f.bias[:, None, None] + x
        if p.op in ("prelu", "affine"):
            return _pointwise_learned(p.op, self.layer(p.path), x)
        if p.op == "layer_scale":  # flat: γ stored as C, applied to each pixel's channels
            t = self.tensor(p.path)
            return x * (t[:, None, None] if x.dim() == 4 and t.dim() == 1 else t)
        if p.op == "weighted_sum":
            return _weighted(a, self.tensor(p.path), x)
        if p.op == "channel_conv":
            return _across_channels(x, self.tensor(p.path + ".weight")[0, 0])
        if p.op == "dropout":  # channelwise: whole channels of each sample (torch's dropout2d)
            return (F.dropout2d if a.get("channelwise") else F.dropout)(x, a["p"], training=self.training)
        if p.op == "drop_path":  # torchvision's per-sample stochastic depth, the reference drop_path matches
            from torchvision.ops import stochastic_depth

            return stochastic_depth(x, a["p"], "row", training=self.training)
        if p.op in ("branch_sum", "branch_select"):
            return _over_branches(p.op, a, xs)
        if p.op == "attention_pool":
            return _attention_pool(xs[0], xs[1])
        return _stateless(p.op, a, xs)


def _stateless(op: str, a: dict, xs: list[torch.Tensor]) -> torch.Tensor:
    x = xs[0]
    if op == "crop":  # docs/language.md: the centre, the odd row and column at the bottom and right
        h, w = xs[1].shape[2], xs[1].shape[3]
        top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        return x[:, :, top : top + h, left : left + w]
    if op in ("leaky_relu", "pad", "upsample"):
        return _resize_or_leaky(op, a, x)
    if op in ("elu", "mish", "channel_mean", "channel_max", "l2_norm", "scale"):
        return _by_definition(op, a, x)
    if op == "interpolate":  # to the H×W of its second input
        return F.interpolate(x, size=tuple(xs[1].shape[-2:]), mode=a["mode"], align_corners=a["align_corners"])
    if op in ACTIVATIONS:
        return ACTIVATIONS[op](x)
    if op in ("maxpool", "avgpool", "adaptive_avgpool", "global_avgpool", "adaptive_maxpool", "global_maxpool"):
        return _pool(op, a, x)
    if op == "lrn":
        return F.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["k"])
    if op == "flatten":
        return x.reshape(x.shape[0], -1)
    if op == "identity":
        return x
    if op == "concat":
        return torch.cat(xs, dim=1)
    if op == "add":
        return xs[0] + a["scale"] * xs[1]
    if op == "mul":  # a gate: x · gate(x), the gate broadcast onto x (C×1×1, 1×H×W, C×H×W)
        return xs[0] * xs[1]
    if op in ("channel_slice", "channel_shuffle", "space_to_depth"):
        return _rearranged(op, a, x)
    raise ValueError(op)


def _rearranged(op: str, a: dict, x: torch.Tensor) -> torch.Tensor:
    """Ops that move values: a slice of the channels, a channel shuffle, space to depth."""
    if op == "channel_slice":
        return x[:, a["start"] : a["stop"]]
    if op == "space_to_depth":  # the value at row i, column j of block (y, x) of channel c, at (y, x) of channel ...
        b, (n, c, h, w) = a["block"], x.shape
        out = torch.empty(n, c * b * b, h // b, w // b, dtype=x.dtype)
        for i in range(b):
            for j in range(b):
                for k in range(c):  # ... (i·B + j)·C + k (block order) or k·B² + i·B + j (channel order)
                    to = (i * b + j) * c + k if a["order"] == "block" else k * b * b + i * b + j
                    out[:, to] = x[:, k, i::b, j::b][:, : h // b, : w // b]
        return out
    if op == "channel_shuffle":  # view C as groups × C/groups, transpose, flatten
        n, c, h, w = x.shape
        return x.reshape(n, a["groups"], c // a["groups"], h, w).transpose(1, 2).reshape(n, c, h, w)
    raise ValueError(op)


def _resize_or_leaky(op: str, a: dict, x: torch.Tensor) -> torch.Tensor:
    if op == "leaky_relu":  # its slope (a conv's act=leaky_relu(S): S; act=leaky_relu: torch's default)
        return F.leaky_relu(x, a.get("slope", 0.01))
    if op == "pad":
        if a["mode"] != "constant":
            return F.pad(x, list(a["padding"]), mode=a["mode"])
        return F.pad(x, list(a["padding"]), value=a["value"])
    return F.interpolate(x, size=a["size"], scale_factor=a["scale"], mode=a["mode"], align_corners=a["align_corners"])


def _over_branches(op: str, a: dict, xs: list[torch.Tensor]) -> torch.Tensor:
    """docs/language.md, "Attention over branches", written out: branch i is channels i·C to (i + 1)·C − 1; the
    logit of branch i for channel j (group j // (C/G), index j mod C/G within it) sits at group·K·C/G + i·C/G + index;
    the weights are exp(l_i) / Σ exp(l_k) over the branches, or sigmoid(l) for one branch."""
    k = a["branches"]
    x = xs[-1]
    c = x.shape[1] // k
    branches = [x[:, i * c : (i + 1) * c] for i in range(k)]
    if op == "branch_sum":
        return torch.stack(branches).sum(0)
    logits, per = xs[0], c // a["groups"]
    if k == 1:
        return x / (1 + torch.exp(-logits))
    at = [torch.tensor([(j // per) * k * per + i * per + j % per for j in range(c)]) for i in range(k)]
    ls = [logits[:, idx] for idx in at]
    top = torch.stack(ls).amax(0)
    es = [torch.exp(li - top) for li in ls]
    total = torch.stack(es).sum(0)
    return torch.stack([e / total * b for e, b in zip(es, branches, strict=True)]).sum(0)


def _pointwise_learned(op: str, f: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """prelu: x where x ≥ 0, a · x below, one slope a or one per channel (axis 1); affine: scale · x + bias."""
    if op == "affine":  # one number each
        return f.scale * x + f.bias
    a = f.weight
    slope = a.reshape((1, -1) + (1,) * (x.dim() - 2)) if a.numel() > 1 else a
    return torch.where(x >= 0, x, slope * x)


def _attention_pool(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """docs/language.md, `attention_pool`: Σ over the pixels p of x[:, :, p] · exp(l[p]) / Σ_q exp(l[q]), each logit
    map (one, or one per channel) softmaxed over H×W on its own: N×C×1×1."""
    e = torch.exp(logits - logits.amax(dim=(2, 3), keepdim=True))
    return (x * (e / e.sum(dim=(2, 3), keepdim=True))).sum(dim=(2, 3), keepdim=True)


def _weighted(a: dict, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """docs/language.md, `weighted_sum`: branch i is channels i·C to (i + 1)·C − 1, weighed by v_i: relu(w_i) /
    (eps + Σ relu(w_j)) (fast), exp(w_i) / Σ exp(w_j) (softmax) or w_i (plain), and summed."""
    k = a["branches"]
    if a["weights"] == "fast":
        v = torch.where(w > 0, w, torch.zeros_like(w))
        v = v / (a["eps"] + v.sum())
    elif a["weights"] == "softmax":
        e = torch.exp(w - w.max())
        v = e / e.sum()
    else:
        v = w
    c = x.shape[1] // k
    return torch.stack([v[i] * x[:, i * c : (i + 1) * c] for i in range(k)]).sum(0)


def _across_channels(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """docs/language.md, `channel_conv`: output channel c is Σ_j w[j] · x[c + j − (K − 1)/2] over the K weights,
    the channels outside 0 … C − 1 counting as zeros; the shape kept (C×1×1 or C)."""
    k, c = w.shape[0], x.shape[1]
    flat = x.reshape(x.shape[0], c)
    padded = torch.cat([flat.new_zeros(x.shape[0], k // 2), flat, flat.new_zeros(x.shape[0], k // 2)], dim=1)
    return sum(w[j] * padded[:, j : j + c] for j in range(k)).reshape(x.shape)  # type: ignore[union-attr]


def _conv(conv: nn.Conv2d, a: dict, x: torch.Tensor, standardise: bool) -> torch.Tensor:
    """A conv as docs/language.md describes it: `same` pads ceil(X/s)·s − s + span − X pixels (at least 0),
    half before and the odd one after; a standardised conv's filters are (w − mean) / sqrt(var + eps) first."""
    if a["same"]:
        pads = []
        for axis in (1, 0):  # F.pad lists the last axis first
            size, k, s, d = x.shape[2 + axis], a["kernel"][axis], a["stride"][axis], a["dilation"][axis]
            total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
    w = conv.weight
    if standardise:
        flat = w.reshape(w.shape[0], -1)
        mean = flat.mean(dim=1, keepdim=True)
        var = ((flat - mean) ** 2).mean(dim=1, keepdim=True)
        w = (flat - mean) / torch.sqrt(var + a["eps"])
        if a["gain"]:  # timm's ScaledStdConv2d: times the gain (out×1×1×1) and gamma / sqrt(fan_in)
            w = w * conv.gain.reshape(-1, 1) * (a["gamma"] / flat.shape[1] ** 0.5)
        w = w.reshape(conv.weight.shape)
    return F.conv2d(x, w, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _pool(op: str, a: dict, x: torch.Tensor) -> torch.Tensor:
    if op == "maxpool":
        return F.max_pool2d(x, a["kernel"], a["stride"], a["padding"], a["dilation"], ceil_mode=a["ceil"])
    if op == "avgpool":
        return F.avg_pool2d(
            x, a["kernel"], a["stride"], a["padding"], ceil_mode=a["ceil"], count_include_pad=not a["exclude_pad"]
        )
    if op == "adaptive_avgpool":
        return F.adaptive_avg_pool2d(x, a["size"])
    if op == "adaptive_maxpool":
        return F.adaptive_max_pool2d(x, a["size"])
    if op == "global_maxpool":
        return x.amax(dim=(2, 3))
    return x.mean(dim=(2, 3))  # global_avgpool


def _by_definition(op: str, a: dict, x: torch.Tensor) -> torch.Tensor:
    """docs/language.md's definitions, written out (not torch's functions of the same names)."""
    if op == "elu":  # x above 0, alpha · (exp(x) − 1) below; a conv's act=elu: alpha 1, act=elu(A): A
        return torch.where(x > 0, x, a.get("alpha", 1.0) * torch.expm1(x))
    if op == "mish":  # x · tanh(softplus(x))
        return x * torch.tanh(F.softplus(x))
    if op == "l2_norm":  # x / max(‖x‖₂ over the channels of each pixel (the values of a vector), eps)
        norm = (x * x).sum(dim=1, keepdim=True).sqrt()
        return x / torch.maximum(norm, torch.full_like(norm, a["eps"]))
    if op == "channel_mean":  # over the channels, kept as one channel
        return x.mean(dim=1, keepdim=True)
    if op == "scale":  # every value times the constant
        return x * a["factor"]
    return x.amax(dim=1, keepdim=True)  # channel_max
