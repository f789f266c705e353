"""Small functions and layers the generated code calls at run time (kept tiny: they run on every forward).

They are written in the subset of Python that TorchScript compiles (typed tensors, plain string
building), so a compiled model can be scripted, exported and traced like hand-written code.
``check_input`` is the one input guard: the compiled model calls it, and the standalone file
(archspec/codegen/file.py) carries a copy of its text, so it needs nothing but torch.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn


@torch.fx.wrap
def check_input(
    x: torch.Tensor,
    channels: int,
    min_h: int,
    min_w: int,
    max_h: int | None = None,
    max_w: int | None = None,
    conditions: list[list[int]] | None = None,
) -> torch.Tensor:
    """Refuse inputs the network cannot process, with a clear message instead of a deep torch error.

    ``max_h``/``max_w`` are given only when a flatten fixes the size of a map that grows with the input;
    ``conditions`` only when merged branches agree at some sizes only, or an op is defined at some only
    (space_to_depth: H and W multiples of its block; archspec/sizes.py): (axis, a1, m1,
    a2, m2), where floor((X + a1)/m1) must equal floor((X + a2)/m2) (m == 0: the constant a), or (axis,
    k1, a1, m1, c1, k2, a2, m2, c2), where k1·floor((X + a1)/m1) + c1 must equal k2·floor((X + a2)/m2) + c2,
    or (axis, 0, -1, P, r, ...), where X mod P must be one of the r, or (axis, 1, -1, x, ...), where X must
    be one of the x.
    """
    if not torch.jit.is_scripting():  # TorchScript skips this branch (it compiles no Proxy)
        if isinstance(x, torch.fx.Proxy):  # torch.fx tracing the forward again (unpickling a built model): keep the guard
            return x.tracer.create_proxy("call_function", check_input, (x, channels, min_h, min_w, max_h, max_w, conditions), {})
    bad = x.dim() != 4 or x.shape[1] != channels or x.shape[2] < min_h or x.shape[3] < min_w
    if not bad and max_h is not None and x.shape[2] > max_h:
        bad = True
    if not bad and max_w is not None and x.shape[3] > max_w:
        bad = True
    if not bad and conditions is not None:
        for c in conditions:
            s = x.shape[2 + c[0]]
            if c[2] == -1:  # after a factor p/q: X mod P in {r, ...} (c[1] == 0) or X in {x, ...}
                if (s % c[3] not in c[4:]) if c[1] == 0 else (s not in c[3:]):
                    bad = True
                continue
            if len(c) == 5:
                first = c[1] if c[2] == 0 else (s + c[1]) // c[2]
                second = c[3] if c[4] == 0 else (s + c[3]) // c[4]
            else:
                first = c[1] * ((s + c[2]) // c[3]) + c[4]
                second = c[5] * ((s + c[6]) // c[7]) + c[8]
            if first != second:
                bad = True
    if bad:
        upper = ""
        if max_h is not None:
            upper += ", H <= " + str(max_h)
        if max_w is not None:
            upper += ", W <= " + str(max_w)
        some = ""
        if conditions is not None:
            some = " (and only sizes at which merged branches agree)"
        got = ", ".join([str(int(d)) for d in x.shape])
        raise ValueError(
            "expected input of shape (N, "
            + str(channels)
            + ", H, W) with H >= "
            + str(min_h)
            + " and W >= "
            + str(min_w)
            + upper
            + some
            + ", got ("
            + got
            + ")"
        )
    return x


@torch.fx.wrap
def center_crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The centre of x at the height and width of ``like`` (U-Net's copy and crop): the rows and columns
    left out split evenly, the odd one at the bottom and right. A view of x."""
    h = like.shape[2]
    w = like.shape[3]
    top = (x.shape[2] - h) // 2
    left = (x.shape[3] - w) // 2
    return x[:, :, top : top + h, left : left + w]


@torch.fx.wrap
def scale_channels(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """x times a per-channel scale stored as a flat vector of C (timm's ConvNeXt ``gamma``), viewed as C×1×1
    over a map's pixels; on a vector the scale is already C."""
    return x * gamma.reshape(-1, 1, 1) if x.dim() == 4 else x * gamma


@torch.fx.wrap
def branch_sum(x: torch.Tensor, branches: int) -> torch.Tensor:
    """The sum of the ``branches`` equal parts of x's channels (branch i: channels i·C to (i + 1)·C − 1)."""
    return x.reshape(x.shape[0], branches, x.shape[1] // branches, x.shape[2], x.shape[3]).sum(1)


@torch.fx.wrap
def weighted_sum(x: torch.Tensor, w: torch.Tensor, branches: int, weights: str, eps: float) -> torch.Tensor:
    """The ``branches`` equal parts of x's channels (branch i: channels i·C to (i + 1)·C − 1) summed with the K
    learned weights w: relu(w) / (eps + Σ relu(w)) (``fast``, BiFPN's fast normalised fusion), softmax(w)
    (``softmax``) or w itself (``plain``)."""
    if weights == "fast":
        w = torch.relu(w)
        w = w / (w.sum() + eps)
    elif weights == "softmax":
        w = w.softmax(0)
    parts = x.reshape((x.shape[0], branches, x.shape[1] // branches) + tuple(x.shape[2:]))
    return (parts * w.reshape((1, branches) + (1,) * (x.dim() - 1))).sum(1)


@torch.fx.wrap
def space_to_depth(x: torch.Tensor, block: int) -> torch.Tensor:
    """Each block×block block of pixels moved into the channels, block position major: the value at row i, column
    j of a block of channel c goes to channel (i·block + j)·C + c (timm's SpaceToDepth, TResNet's stem)."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // block, block, w // block, block).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, block * block * c, h // block, w // block)


@torch.fx.wrap
def branch_select(logits: torch.Tensor, x: torch.Tensor, branches: int, groups: int) -> torch.Tensor:
    """The branches of x (its channels in ``branches`` equal parts) weighed by the softmax over the branches of
    ``logits`` (N×K·C×1×1, ordered group, branch, channel within the group), summed: N×C×H×W. One branch:
    weighed by sigmoid(logits)."""
    if branches == 1:
        return x * torch.sigmoid(logits)
    n = x.shape[0]
    c = x.shape[1] // branches
    weights = logits.reshape(n, groups, branches, c // groups).transpose(1, 2).softmax(1).reshape(n, branches, c, 1, 1)
    return (x.reshape(n, branches, c, x.shape[2], x.shape[3]) * weights).sum(1)


@torch.fx.wrap
def attention_pool(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The pixels of x (N×C×H×W) weighed by the softmax over H×W of ``logits`` (N×1×H×W: one softmax for every
    channel, or N×C×H×W: one per channel) and summed: N×C×1×1 (GCNet's context modelling, arXiv 1904.11492)."""
    n, c, h, w = x.shape
    weights = logits.reshape(n, logits.shape[1], h * w).softmax(-1)
    if weights.shape[1] == 1:  # one matrix product per sample, as timm's GlobalContext computes it
        return torch.bmm(x.reshape(n, c, h * w), weights.transpose(1, 2)).reshape(n, c, 1, 1)
    return (x.reshape(n, c, h * w) * weights).sum(-1).reshape(n, c, 1, 1)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., arXiv 1603.09382), per sample: in training mode each sample's
    input is zeroed with probability p and kept, scaled by 1 / (1 - p), otherwise; in eval mode the
    input itself. Draws its random numbers as torchvision's StochasticDepth(p, "row") does."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty([x.shape[0]] + [1] * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine (torchvision's FrozenBatchNorm2d, the norm of its detection
    backbones): ``(x − mean) / √(var + eps) · γ + β`` in training mode too; γ, β, mean and var are buffers
    (``weight``, ``bias``, ``running_mean``, ``running_var``), so nothing trains and there is no
    ``num_batches_tracked``."""

    def __init__(self, num_features: int, eps: float = 1e-5, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight: torch.Tensor
        self.bias: torch.Tensor
        self.running_mean: torch.Tensor
        self.running_var: torch.Tensor
        for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), fill, device=device))

    def reset_parameters(self) -> None:
        for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            getattr(self, name).fill_(fill)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class ScalarAffine(nn.Module):
    """``scale · x + bias`` with one learned number each (``scale`` and ``bias``, tensors of shape [1]), as
    timm's ``LearnableAffineBlock`` (PP-HGNetV2's ``use_lab``); they start at ``scale_value`` and
    ``bias_value``."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.scale_value = scale_value
        self.bias_value = bias_value
        self.scale = nn.Parameter(torch.full((1,), scale_value, device=device))
        self.bias = nn.Parameter(torch.full((1,), bias_value, device=device))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.scale, self.scale_value)
        nn.init.constant_(self.bias, self.bias_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, self.scale, x)

    def extra_repr(self) -> str:
        return f"scale_value={self.scale_value}, bias_value={self.bias_value}"


class GlobalResponseNorm(nn.Module):
    """Global response normalisation (ConvNeXt V2, Woo et al., arXiv 2301.00808, Eq. 1-3) over a C×H×W map:
    each channel's L2 norm over H×W, divided by the mean of those norms over the channels (+ eps), scales
    the map, and ``x + β + γ · (x · that)``; γ and β (``weight``, ``bias``: C each) start at zero, so the
    layer starts as the identity."""

    def __init__(self, num_features: int, eps: float = 1e-6, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(num_features, device=device))
        self.bias = nn.Parameter(torch.zeros(num_features, device=device))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norms = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True)
        scale = norms / (norms.mean(dim=1, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.reshape(1, -1, 1, 1), self.weight.reshape(1, -1, 1, 1), x * scale)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class InterpolateLike(nn.Module):
    """``F.interpolate(x, size=like.shape[-2:])``: ``x`` resized to the height and width of another value,
    as torchvision's FPN (nearest) and DeepLab/LR-ASPP heads (bilinear) resize a map to a lateral's or the
    input's size. Holds no state."""

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, size=like.shape[-2:], mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}" + (f", align_corners={self.align_corners}" if self.align_corners is not None else "")


class ChannelConv(nn.Conv1d):
    """ECA's convolution along the channels (Wang et al., arXiv 1910.03151): a C×1×1 map (or a vector of C)
    read as one sequence of C values, convolved by K weights zero-padded (K − 1)/2 each side, no bias, and
    given back in its shape. Its parameters and state_dict keys are an ``nn.Conv1d(1, 1, K)``'s, as timm's
    EcaModule holds them (``conv.weight``)."""

    def __init__(self, kernel_size: int, device: torch.device | str | None = None) -> None:
        super().__init__(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(x.flatten(1).unsqueeze(1), self.weight, self.bias)
        return y.reshape(x.shape)


def pad_same(x: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> torch.Tensor:
    """``x`` padded as TensorFlow's ``padding="SAME"`` for a window of ``kernel_size``: the output of the
    window is ceil(X / stride) on each axis, the padding split with the odd pixel on the bottom and
    right (timm's ``pad_same``). Conv2dSame and StdConv2d call it; the standalone file copies it.

    Per axis the padding is timm's max((ceil(X / s) − 1)·s + span − X, 0), written without the max()
    where the window's span is at least the stride (the padding is then never negative), and with
    ceil as a floor division: so a size traced symbolically (torch.export) stays a plain floor
    division. With max() at every strided conv the trace's expressions nested and grew exponentially
    with depth (tf_efficientnet_b0's export: minutes)."""
    pads = []
    for size, s, k, d in zip(x.shape[-2:], stride, kernel_size, dilation, strict=True):
        span = (k - 1) * d + 1
        pad = ((size + s - 1) // s - 1) * s + span - size
        pads.append(pad if span >= s else max(pad, 0))
    ph, pw = pads
    return torch.nn.functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class Conv2dSame(nn.Conv2d):
    """A Conv2d padded as TensorFlow's ``padding="SAME"``, at run time: the output is ceil(X / stride)
    on each axis, the padding split with the odd pixel on the bottom and right (timm's Conv2dSame).
    Used where the padding depends on the input size (a stride above 1, or an even span); its
    parameters and state_dict keys are an ``nn.Conv2d``'s."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class StdConv2d(nn.Conv2d):
    """A Conv2d with weight standardisation (Qiao et al., arXiv 1903.10520; BiT): each output channel's
    weights are normalised to mean 0 and variance 1 (biased, plus ``eps``) before every use, as timm's
    StdConv2d does; ``same`` pads as :class:`Conv2dSame` does (timm's StdConv2dSame). Its parameters
    and state_dict keys are an ``nn.Conv2d``'s. With ``gain`` it is timm's ScaledStdConv2d (NF-Nets, Brock et
    al., arXiv 2101.08692): the standardised weights are also multiplied by a learned ``gain`` per output
    channel (out×1×1×1, starting at 1) and by the fixed ``gamma / sqrt(fan_in)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        eps: float = 1e-6,
        same: bool = False,
        gain: bool = False,
        gamma: float = 1.0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, device=device)
        self.eps = eps
        self.same = same
        self.gamma = gamma
        self.gain: nn.Parameter | None = None
        if gain:
            self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1, device=device))

    def reset_gain(self) -> None:
        """The gain's start, 1 (timm's gain_init); the compiler's initialisation calls it."""
        if self.gain is not None:
            with torch.no_grad():
                self.gain.fill_(1.0)

    def standardized(self) -> torch.Tensor:
        """The weights the conv uses: batch_norm over each filter, as timm computes them (the same rounding)."""
        if self.weight[0].numel() == 1:  # a filter of one weight is its own mean: 0 (batch_norm refuses a single
            zero = self.weight - self.weight  # value), with a gradient of 0 (the gain's too)
            return zero if self.gain is None else zero * self.gain
        flat = self.weight.reshape(1, self.out_channels, -1)
        scale = None if self.gain is None else (self.gain * (self.gamma * self.weight[0].numel() ** -0.5)).view(-1)
        w = torch.nn.functional.batch_norm(flat, None, None, weight=scale, training=True, momentum=0.0, eps=self.eps)
        return w.reshape_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return torch.nn.functional.conv2d(
            x, self.standardized(), self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        scaled = f", gain=True, gamma={self.gamma}" if self.gain is not None else ""
        return super().extra_repr() + f", eps={self.eps}" + (", same=True" if self.same else "") + scaled


class Container(nn.Module):
    """A module that only holds others (a block instance, a stage, a branch): ``print(model)`` shows it
    by what it is, as torchvision's modules read — the block's class name (``Bottleneck``) for a block
    instance, ``Sequential`` for any other container. It is never called: the generated forward calls
    the layers inside it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._archspec_class = name  # private: a spec may name a child module anything public

    def _get_name(self) -> str:
        return self._archspec_class
