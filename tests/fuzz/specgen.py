"""Random valid archspec specs, with their meaning worked out here, independently of archspec.

A case is a *spec tree* (the dataclasses below: ops, chains, concats, residuals, ifs, blocks
with ``$params``, repeats, named nodes, ``defaults:``, ``aux:``, ``scale:`` and ``--set``
overrides), drawn at random by :class:`Gen` from a seed (or from hypothesis, :func:`specs`).

* :func:`render` writes the tree as YAML, choosing at random among the equivalent ways the
  language offers (short or long form, ``[a, b]`` or ``chain:``, list or mapping of branches,
  ``3x3`` or ``kernel=3``, ``s2`` or ``stride=2`` ...).
* :func:`realize` is the truth: a small interpreter of the tree written from docs/language.md
  alone (it imports nothing from archspec). It applies the overrides, defaults, block
  parameters, repeats (and ``scale.depth``), the width multiplier, the naming rule, and gives
  the primitive program (one :class:`Prim` per torch op, each with its module path), every
  value's shape for every input size 1..MAXX, the parameter count, the MACs and the input
  sizes the network accepts. :mod:`tests.fuzz.oracle` runs that program eagerly.

Constructs that archspec gets wrong today are switched off in :data:`KNOWN_FAULTS` (the
generator does not draw them); remove a name from the set once its fault is fixed.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

MAXX = 96  # input sizes 1..MAXX are tracked for every value
MAX_TENSOR_CHANNELS = 4096  # the generator redraws trees whose activations grow past this (not a language limit)
MAX_MAP_SIDE = 512  # pixels on a side, at any input size the truth tracks
# Stacked LayerNorms with random weights amplify float64 rounding (a kernel's summation order, e.g.
# a conv on a channels-last map in one model and a contiguous one in the other) by about 1.7 each:
# 36 of them (seed 9672 with scale.depth 3) reach 1e-8 relative, the gradient tolerance. A case
# draws at most this many, which keeps the amplification below 1e3.
MAX_LAYER_NORMS = 12
# A case's multiply-accumulates at its input size: the generator redraws past this (seed 147: concats of repeated
# blocks under an override reached 3487 channels and 180 M MACs, 80 s a case in float64; the median is 11 k)
MAX_CASE_MACS = 20_000_000
# How often a spec names its outputs (`outputs:`); the runner's --outputs P draws them more often (a focused run)
OUTPUTS_CHANCE = 0.15

# Constructs the generator leaves out because archspec miscompiles them today (issue 13).
# Each name is one switch; tests/test_differential.py and tests/fuzz/differential.py honour the set
# (the CLI's --enable NAME turns one back on).
KNOWN_FAULTS: set[str] = set()
UNREAD_CHANCE = 0.12  # parts nothing reads (a from: skipping a side part), and shared parts only a copy reads
# Fixed on main and drawn again: named_repeat, relu_after_saved, relu_on_view, standalone_merge (a refusal, see
# MUST_REFUSE), repeat_in_branch, nested_list_clash, identity_codegen, optimize_identity, hostile_names (refused by
# design: the generator draws them as invalid names, see REFUSED_NAMES), if_in_list, dropout_module_clash,
# relu_on_output, set_positional, merge_same_input, set_arg_on_repeat, names_pattern_rows, bounded_merge and
# share_same_input, share_unread_part (session 10: fixed by LANG and by the lead's c0d3b82), share_in_aux (session 11:
# fixed by LANG, the oracle running a head right after its tap as archspec does) (their
# smallest specs stay as regressions in tests/test_differential.py, FIXED_SPECS).

ACTS = ("relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu", "elu", "mish")
CONV_ACT_NUMBERS = {"leaky_relu": "slope", "elu": "alpha"}  # docs/language.md, `conv`: act=NAME(V) sets this field
MAP_OPS = (
    "conv",
    "conv2d",
    "bn",
    "lrn",
    "maxpool",
    "avgpool",
    "adaptive_avgpool",
    "dropout",
    "drop_path",
    "identity",
    "channel_slice",
    "channel_shuffle",
    "layer_norm",
    "layer_scale",
    "linear",
    "std_conv2d",
    "group_norm",
    "pad",
    "upsample",
    "frozen_bn",
    "grn",
    "interpolate",
    "conv_transpose",
    "adaptive_maxpool",
    "channel_mean",
    "channel_max",
    "l2_norm",
    "scale",
    "affine",
    "weighted_sum",
    "space_to_depth",
    "prelu",
) + ACTS  # linear: per_pixel
VEC_OPS = (
    "linear",
    "bn",
    "dropout",
    "drop_path",
    "identity",
    "flatten",
    "channel_slice",
    "layer_norm",
    "layer_scale",
    "l2_norm",
    "scale",
    "affine",
    "weighted_sum",
    "prelu",
    "channel_conv",  # docs/language.md, `channel_conv`: a vector of C too (session 11: drawn in gates only before)
) + ACTS
TRAIN_MODULES = ("dropout", "drop_path")  # no state, but modules that follow train()/eval(); random in training
# no state, but built as a module (docs/language.md: interpolate's "InterpolateLike"): it takes its path as dropout does
STATELESS_MODULES = ("interpolate",)
TO_VEC = ("global_avgpool", "global_maxpool", "flatten")
CHANNEL_OPS = ("conv", "conv2d", "std_conv2d", "conv_transpose", "linear")  # ops whose `out` the width multiplier scales
STATEFUL = (
    "conv2d",
    "conv_transpose",
    "std_conv2d",
    "bn",
    "linear",
    "layer_norm",
    "group_norm",
    "layer_scale",
    "frozen_bn",
    "channel_conv",
    "grn",
    "weighted_sum",
    "prelu",
    "affine",
)  # layer_scale, weighted_sum: a tensor at its path
NAMES = (
    "a",
    "b",
    "c",
    "stem",
    "head",
    "branch0",
    "branch1",
    "left",
    "right",
    "mix",
    "proj",
    "fc",
    "pool",
    "drop",
    "conv",
    "bn",
    "act",
    "add",
    "concat",
    "body",
    "layer",
    "up",
    "down",
    "cat",
    "res",
)
KEYWORDS = ("chain", "concat", "residual", "if", "op", "block", "gate")  # a one-key mapping with one of these is that node
# odd names the language allows (docs/language.md, "Names"): the generated file renames its locals around them
ODD_NAMES = ("input", "torch", "F", "nn", "len", "math", "0", "1", "2")
# names refused with a `name` error: as any module name (keywords, `_`-prefixed, nn.Module attributes), and as a
# top-level part or aux head (the compiled forward's own values)
REFUSED_NAMES = frozenset(
    {
        "class",
        "def",
        "lambda",
        "None",
        "_modules",
        "__init__",
        "_x",
        "training",
        "forward",
        "state_dict",
        "cuda",
        "to",
        "type",
        "float",
        "keys",
        "items",
        "pop",
        "eval",
        "parameters",
    }
)
TOP_REFUSED = frozenset({"x", "self", "output", "check_input"})


PROVISIONAL_COUNT = 1000  # block_count in the first expansion, above every index (docs/language.md, "Block index")
FROM_INPUT = " from_input"  # in a block's environment: its parameters computed from in / block_in where it is used
BUILTIN = ("in", "block_in", "block_index", "block_count")  # names every block defines (in: every op too)


class Invalid(Exception):
    """The tree is not a valid spec (the generator draws again)."""


# ---- the spec tree ------------------------------------------------------------------------------


@dataclass
class Param:
    """``$name`` inside a block."""

    name: str


@dataclass
class Expr:
    """``${name OP k}``: a value computed from a block parameter or a name every block defines (docs/language.md,
    "Blocks and parameters": ``in``, ``block_in``, ``block_index``); ``k`` a number or another such name."""

    name: str
    op: str  # "*", "//", "+"
    k: int | str

    def text(self) -> str:
        return f"${{{self.name} {self.op} {self.k}}}"


@dataclass
class Sched:
    """``${S * (block_index + shift) / block_count}``: a depth schedule (docs/language.md, "Block index")."""

    scale: float
    shift: int = 0

    def text(self) -> str:
        index = "block_index" if not self.shift else f"(block_index + {self.shift})"
        return f"${{{_num(self.scale)} * {index} / block_count}}"


@dataclass
class Calc:
    """An expression with a function over the multipliers or the input channels (docs/language.md, "Blocks and
    parameters" and "Families"): ``${int(A * width_mult)}``, ``${make_divisible(A * width_mult, D)}``,
    ``${ceil(A * depth_mult)}``, ``${max(in, A)}``; A a number or a parameter."""

    kind: str  # int_w | divisible_w | ceil_d | max_in
    a: Any
    d: int = 1

    def text(self) -> str:
        a = self.a.name if isinstance(self.a, Param) else _val(self.a)
        if isinstance(self.a, Expr):
            a = f"({self.a.name} {self.a.op} {self.a.k})"
        return {
            "int_w": f"${{int({a} * width_mult)}}",
            "divisible_w": f"${{make_divisible({a} * width_mult, {self.d})}}",
            "ceil_d": f"${{ceil({a} * depth_mult)}}",
            "max_in": f"${{max(in, {a})}}",
        }[self.kind]


def make_divisible(v: float, divisor: int) -> int:
    """docs/language.md: the nearest multiple of divisor (at least divisor), one more when that lost over 10 %."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


@dataclass
class Pattern:
    """A ``names:`` pattern holding block parameters (``"s${k}_{n}"``, ``"b${block_index + 1}-{i}"``): text and
    values (Param or Expr), filled in before the copies are counted."""

    parts: list[Any]

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text() if isinstance(p, Field) else _val(p) for p in self.parts)


@dataclass
class Field:
    """A ``{...}`` field of a names: pattern computed from the copy's number: ``{mul * VAR + add}``, VAR ``n``
    (1, 2, …) or ``i`` (0, 1, …) (docs/language.md, "Repeats")."""

    var: str
    mul: int = 1
    add: int = 0

    def text(self) -> str:
        term = self.var if self.mul == 1 else f"{self.mul} * {self.var}"
        return "{" + (term if not self.add else f"{term} + {self.add}") + "}"


VALUES = (Param, Expr, Sched, Calc, Pattern)  # values worked out where they are used


@dataclass
class Take:
    """``{from: NAME}``: the value of an earlier named node, by its module path inside the enclosing block
    instance, else in the network (docs/language.md, "Reading earlier values")."""

    source: str


@dataclass
class Share:
    """``{share: NAME}``: the earlier part NAME names, applied again to the current value with the same modules
    (docs/language.md, "Shared weights"); NAME is looked up as ``from:`` looks names up."""

    source: str


@dataclass
class Gate:
    """``{gate: node}``: x · node(x), named like an op (by its key, else its list index)."""

    body: Any


@dataclass
class Op:
    name: str
    args: dict[str, Any] = field(default_factory=dict)  # canonical values (pairs as tuples) or Param
    long: bool = False  # long form {op: ...}
    repeat: Any = None  # written `* N` (int or Param), None when absent
    fixed: bool = False
    style: int = 0  # seeds the choice among equivalent spellings


@dataclass
class Use:
    """A block instance."""

    block: str
    args: dict[str, Any] = field(default_factory=dict)
    long: bool = False
    repeat: Any = None
    style: int = 0
    pattern: str | Pattern | None = None  # names: "unit{n}" of the copies (long form only)


@dataclass
class Chain:
    items: list[Any]
    form: str = "list"  # list | chain_list | chain_map (then names[i] names item i)
    names: list[str] | None = None
    repeat: Any = None  # {chain: ..., repeat: N} (form chain_list or chain_map)
    pattern: str | Pattern | None = None  # names: "layer{n}" of the copies


@dataclass
class Named:
    """A one-key mapping naming its node (an item of a list)."""

    name: str
    node: Any


@dataclass
class Concat:
    branches: list[Any]
    names: list[str] | None = None  # a mapping of branches when set
    count: Any = None  # count: N (or a Param): the written branches N times side by side
    index: str | None = None  # index: NAME, the copy's index as $NAME in the branches


@dataclass
class Residual:
    body: Any
    shortcut: Any = None
    scale: Any = None  # None: not written (1.0)
    then: Op | None = None


@dataclass
class If:
    cond: Any  # bool or Param
    then: Any
    other: Any = None
    as_op: bool = False  # a block's body written `op: {if: ...}` rather than `if:` with then:/else: beside it


@dataclass
class Block:
    name: str
    params: dict[str, Any]
    body: Any  # Concat | Residual | Chain | Op
    label: str | None = None
    doc: str | None = None
    inline: bool = False  # inline: true — an instance adds no path segment
    counter: str | None = None  # counter: NAME — block_index/block_count shared with the blocks naming it


@dataclass
class Aux:
    name: str
    tap: str
    head: Any
    weight: float | None = None


@dataclass
class Spec:
    name: str
    channels: int
    size: tuple[int, int]
    network: Chain  # form list, or chain_map for a mapping of named parts
    blocks: list[Block] = field(default_factory=list)
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    aux: list[Aux] = field(default_factory=list)
    scale: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    size_as_int: bool = False
    outputs: list[tuple[str, str]] | None = None  # outputs: (name, module path); None: the logits alone
    outputs_map: bool = False  # written as a mapping {name: path} (a list names each output by its path)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # the family: member → its --set values
    variant: str | None = None  # variant: NAME written in the spec (an override `variant` wins)
    frozen: list[str] | None = None  # frozen: module paths or fnmatch patterns whose parameters do not train


# ---- truth: an interpreter of the tree --------------------------------------------------------


@dataclass
class Shape:
    c: int
    h: tuple[int, ...] | None = None  # size at input size X = index + 1 (0: empty or invalid)
    w: tuple[int, ...] | None = None

    @property
    def is_map(self) -> bool:
        return self.h is not None


@dataclass
class Prim:
    id: str
    op: str  # conv2d bn lrn maxpool avgpool adaptive_avgpool global_avgpool linear dropout flatten identity concat add + ACTS
    params: dict[str, Any]
    path: str
    inputs: list[str]
    shape: Shape
    origin: str  # path of the op as written (a conv's conv2d, bn and act share the conv's)
    aux: str | None  # the aux head it belongs to
    okh: tuple[bool, ...]  # input heights at which this op is valid
    okw: tuple[bool, ...]
    unit: str | None = None  # the report row it belongs to
    shares: str | None = None  # a `share:`'s copy: the original primitive, whose module it calls (no state of its own)


@dataclass
class Truth:
    prims: list[Prim]
    shapes: dict[str, Shape]
    outputs: dict[str, str]  # logits, aux names → value id
    channels: int
    size: tuple[int, int]
    params: int
    macs: int
    eval_ok: tuple[tuple[bool, ...], tuple[bool, ...]]  # accepted heights and widths, eval (logits)
    train_ok: tuple[tuple[bool, ...], tuple[bool, ...]]
    notes: set[str] = field(default_factory=set)  # constructs used (for statistics and switches)
    rows: list[tuple[str, str, int]] = field(default_factory=list)  # check's rows: (path, output value, parameters)
    main: tuple[str, ...] = ("logits",)  # the outputs eval mode returns: the logits, or the spec's outputs:
    named: bool = False  # outputs: written: the network returns a dict even in eval mode
    frozen: tuple[str, ...] = ()  # frozen: patterns (the oracle freezes the parameters under what they match)
    unread: tuple[str, ...] = ()  # the paths of the ops left out because nothing reads them

    def out_shape(self, name: str | None = None, size: tuple[int, int] | None = None) -> tuple[int, ...]:
        h, w = size or self.size
        s = self.shapes[self.outputs[name or self.main[0]]]
        return (s.c, s.h[h - 1], s.w[w - 1]) if s.is_map and s.h and s.w else (s.c,)

    def value_shape(self, v: str, size: tuple[int, int] | None = None) -> tuple[int, ...]:
        h, w = size or self.size
        s = self.shapes[v]
        return (s.c, s.h[h - 1], s.w[w - 1]) if s.is_map and s.h and s.w else (s.c,)

    @staticmethod
    def _min(ok: tuple[bool, ...]) -> int:
        return next((i + 1 for i, v in enumerate(ok) if v), 0)

    @property
    def min_size(self) -> tuple[int, int]:
        return self._min(self.eval_ok[0]), self._min(self.eval_ok[1])

    @property
    def train_min_size(self) -> tuple[int, int]:
        return self._min(self.train_ok[0]), self._min(self.train_ok[1])

    def accepts(self, h: int, w: int, train: bool = False) -> bool:
        ok = self.train_ok if train else self.eval_ok
        return 1 <= h <= MAXX and 1 <= w <= MAXX and ok[0][h - 1] and ok[1][w - 1]


X = tuple(range(1, MAXX + 1))
ALL = tuple(True for _ in X)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, bool):
        raise Invalid("bool where a size is expected")
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return (int(v[0]), int(v[1]))
    raise Invalid(f"bad pair {v!r}")


def _window(sizes: tuple[int, ...], k: int, s: int, p: int, d: int, ceil: bool) -> tuple[int, ...]:
    out = []
    for x in sizes:
        if x < 1:
            out.append(0)
            continue
        span = x + 2 * p - d * (k - 1) - 1
        if ceil:
            o = -(-span // s) + 1
            if (o - 1) * s >= x + p:  # PyTorch: the last window must start inside the input or left padding
                o -= 1
        else:
            o = span // s + 1 if span >= 0 else 0
        out.append(max(o, 0))
    return tuple(out)


def _every_window_touches(sizes: tuple[int, ...], outs: tuple[int, ...], k: int, s: int, p: int, d: int) -> tuple[int, ...]:
    """A pool's output sizes, 0 where some window samples only padding (a dilated window can step over
    a small map: max pool's value there is -inf). Simulates every window's samples."""
    return tuple(
        o if all(any(0 <= i * s - p + j * d < x for j in range(k)) for i in range(o)) else 0
        for x, o in zip(sizes, outs, strict=True)
    )


def width_channels(c: int, width: float, divisor: int) -> int:
    """docs/language.md: c' = max(d, floor(c·w/d + ½)·d), plus d if that is below 0.9·c·w."""
    if width == 1:
        return c
    exact = c * width
    new = max(divisor, int(exact / divisor + 0.5) * divisor)
    return new + divisor if new < 0.9 * exact else new


def depth_repeats(n: int, depth: float, rounding: str = "ceil") -> int:
    """docs/language.md, "Multipliers": n · depth rounded up (ceil), down (floor) or to the nearest, halves up
    (round); never below 1."""
    if depth == 1:
        return n
    exact = round(n * depth, 9)
    return max(1, {"ceil": math.ceil(exact), "floor": math.floor(exact), "round": math.floor(exact + 0.5)}[rounding])


OPTIONS: dict[str, set[str]] = {  # every option of every op with options (docs/language.md, "Ops")
    "conv": {"out", "kernel", "stride", "padding", "dilation", "groups", "bias", "bn", "eps", "momentum", "act"},
    "conv2d": {"out", "kernel", "stride", "padding", "dilation", "groups", "bias"},
    "std_conv2d": {"out", "kernel", "stride", "padding", "dilation", "groups", "bias", "eps", "gain", "gamma"},
    "scale": {"factor"},
    "bn": {"eps", "momentum", "affine"},
    "group_norm": {"groups", "eps", "affine"},
    "leaky_relu": {"slope"},
    "elu": {"alpha"},
    "pad": {"padding", "value", "mode"},
    "upsample": {"scale", "size", "mode", "align_corners"},
    "frozen_bn": {"eps"},
    "grn": {"eps"},
    "interpolate": {"size_of", "mode", "align_corners"},
    "conv_transpose": {"out", "kernel", "stride", "padding", "output_padding", "dilation", "groups", "bias"},
    "crop": {"to"},
    "branch_sum": {"branches"},
    "branch_select": {"branches", "of", "groups"},
    "attention_pool": {"of"},
    "prelu": {"per_channel", "init"},
    "lrn": {"size", "alpha", "beta", "k"},
    "maxpool": {"kernel", "stride", "padding", "dilation", "ceil"},
    "avgpool": {"kernel", "stride", "padding", "ceil", "exclude_pad"},
    "adaptive_avgpool": {"size"},
    "adaptive_maxpool": {"size"},
    "linear": {"out", "bias", "per_pixel"},
    "dropout": {"p", "channelwise"},
    "drop_path": {"p"},
    "layer_norm": {"eps", "affine"},
    "layer_scale": {"init", "flat", "scalar"},
    "channel_slice": {"start", "stop"},
    "channel_shuffle": {"groups"},
    "channel_conv": {"kernel", "gamma", "beta"},
    "l2_norm": {"eps"},
    "weighted_sum": {"branches", "weights", "eps", "init"},
    "space_to_depth": {"block", "order"},
    "affine": {"scale", "bias"},
}

OP_DEFAULTS: dict[str, dict[str, Any]] = {
    "conv": {
        "kernel": 1,
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "bias": False,
        "bn": True,
        "eps": 1e-5,
        "momentum": 0.1,
        "act": "relu",
    },
    "conv2d": {"kernel": 1, "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "std_conv2d": {
        "kernel": 1,
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "bias": False,
        "eps": 1e-6,
        "gain": False,
        "gamma": 1.0,
    },
    "scale": {},
    "bn": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "group_norm": {"eps": 1e-5, "affine": True},
    "leaky_relu": {"slope": 0.01},
    "elu": {"alpha": 1.0},
    "pad": {"value": 0.0, "mode": "constant"},
    "upsample": {"scale": None, "size": None, "mode": "nearest", "align_corners": None},
    "frozen_bn": {"eps": 1e-5},
    "grn": {"eps": 1e-6},
    "interpolate": {"mode": "nearest", "align_corners": None},
    "conv_transpose": {"kernel": 1, "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "crop": {},
    "branch_sum": {},
    "branch_select": {"groups": 1},
    "attention_pool": {},
    "prelu": {"per_channel": False, "init": 0.25},
    "lrn": {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0},
    "maxpool": {"stride": 1, "padding": 0, "dilation": 1, "ceil": False},
    "avgpool": {"stride": 1, "padding": 0, "ceil": False, "exclude_pad": False},
    "adaptive_avgpool": {},
    "adaptive_maxpool": {},
    "linear": {"bias": True, "per_pixel": False},
    "dropout": {"p": 0.5, "channelwise": False},
    "layer_norm": {"eps": 1e-5, "affine": True},
    "layer_scale": {"init": 1e-6, "flat": False, "scalar": False},
    "channel_conv": {"kernel": None, "gamma": 2.0, "beta": 1.0},
    "l2_norm": {"eps": 1e-12},
    "weighted_sum": {"weights": "fast", "eps": 1e-4, "init": 1.0},
    "space_to_depth": {"order": "block"},
    "affine": {"scale": 1.0, "bias": 0.0},
}


class Realizer:
    """Works out what a spec tree means (see the module docstring). ``check_paths`` is off while
    the generator tries out fragments; the final realisation checks module paths too."""

    def __init__(
        self,
        spec: Spec,
        fixed: frozenset[str] = frozenset(),
        scale_width: bool = True,
        check_paths: bool = True,
        forbid: set[str] | frozenset[str] = frozenset(),
        lenient: bool = False,
    ) -> None:
        self.spec = spec
        # lenient: an op that cannot be built at the spec's size is kept as a broken value (valid at no size), for a
        # spec whose outputs: may leave it out (docs/language.md: the network is what its outputs read)
        self.lenient = lenient
        self.blocks = {b.name: b for b in spec.blocks}
        self.fixed = fixed
        self.scale_width = scale_width
        self.check_paths = check_paths
        # docs/language.md, "Multipliers": the rules `apply:` lists (both by default) scale; depth rounds as told
        rules = spec.scale.get("apply", ["width", "depth"])
        self.width = float(spec.scale.get("width", 1.0)) if "width" in rules else 1.0
        self.depth = float(spec.scale.get("depth", 1.0)) if "depth" in rules else 1.0
        self.rounding = str(spec.scale.get("depth_rounding", "ceil"))
        self.divisor = int(spec.scale.get("divisor", 8))
        self.prims: list[Prim] = []
        self.shapes: dict[str, Shape] = {}
        self.module_paths: set[str] = set()
        self.containers: set[str] = set()
        # every node with a module path, as it ends: (path, value, where it began in this list); see `values_at`
        self.ends: list[tuple[str, str, int]] = []
        self.ends_at: dict[str, list[int]] = {}  # path → its entries in self.ends
        self.unit: str | None = None  # the row being expanded (None: at the top level, between rows)
        self.rows: list[tuple[str, str]] = []
        self.aux: str | None = None
        self.notes: set[str] = set()
        self.partial = False  # whether the merge being realized agrees at some sizes only
        self.forbid: set[str] = set(forbid)  # notes that make the tree Invalid (the switched-off constructs)
        self.stack: tuple[str, ...] = ()
        self.used: list[set[str]] = []  # $params looked up, per enclosing block instance
        self.scaled = False  # an upsampling by a factor of a size that varies has been emitted
        self.instances: list[str] = []  # the paths of the block instances being expanded, innermost last
        self.inputs: list[str] = []  # the values they are applied to (block_in as a value)
        # docs/language.md, "Block index": instances numbered per counter (a block's `counter:`, else its name), in
        # network order; block_count is known after a first expansion (``totals``; None: that first one, where
        # it is a provisional count above every index). ``indexing`` off: every index is 0 (the generator's trials)
        self.counts: dict[str, int] = {}
        self.totals: dict[str, int] | None = None
        self.indexing = True
        self.sharing: str | None = None  # while a `share:` replays a part: the original primitive of the copy emitted
        self.unread: tuple[str, ...] = ()  # the paths of the ops nothing reads, left out (see prune)
        self.copy_of: dict[str, str] = {}  # a share's copy → the primitive it replays (a copy too, in a nested share)

    def note(self, name: str) -> None:
        self.notes.add(name)
        if name in self.forbid:
            raise Invalid(f"switched off: {name}")

    # -- values
    def emit(
        self,
        op: str,
        params: dict[str, Any],
        path: str,
        inputs: list[str],
        shape: Shape,
        origin: str,
        okh: tuple[bool, ...] = ALL,
        okw: tuple[bool, ...] = ALL,
    ) -> str:
        # weight-free concats repeated under scale.depth double the channels each time: valid, but minutes a case
        if shape.is_map and shape.c > MAX_TENSOR_CHANNELS:
            raise Invalid("too many channels for a quick case")
        # upsamples repeated under scale.depth multiply the map (seed 787: ×81, 37 → 2997 pixels a side)
        if shape.is_map and max((*(shape.h or ()), *(shape.w or ()), 0)) > MAX_MAP_SIDE:
            raise Invalid("maps too large for a quick case")
        if op == "layer_norm" and sum(1 for p in self.prims if p.op == "layer_norm") >= MAX_LAYER_NORMS:
            raise Invalid("too many layer norms: rounding grows past the tolerance")
        if op == "layer_norm" and shape.c == 1:
            # over one value its output is its bias whatever the input: every gradient before it is exactly 0
            # in exact arithmetic and rounding noise in floats (seed 905369: 1.5e-8 from a true 0) — not a fault
            raise Invalid("layer_norm over a single value")
        if op in STATEFUL and self.check_paths and self.sharing is None:  # a share's copy claims no path
            if not path or path in self.module_paths or path in self.containers:
                raise Invalid(f"module path clash at {path!r}")
            parts = path.split(".")
            above = {".".join(parts[:i]) for i in range(1, len(parts))}
            if above & self.module_paths:
                raise Invalid(f"module {path!r} under another module")
            self.module_paths.add(path)
            self.containers |= above
        if op in ("relu", "relu6") and inputs[0] != "input":
            before = self.prims[int(inputs[0][1:])].op  # value ids are v<index in self.prims>
            if before in ("relu", "relu6", "sigmoid", "tanh"):
                self.note("relu_after_saved")
            if before in ("flatten", "identity", *TRAIN_MODULES):
                self.note("relu_on_view")
        if op in ("relu", "relu6") and inputs[0] == "input":
            self.note("relu_on_view")
        vid = f"v{len(self.prims)}"
        if shape.is_map:
            okh = tuple(a and b > 0 for a, b in zip(okh, shape.h, strict=True))
            okw = tuple(a and b > 0 for a, b in zip(okw, shape.w, strict=True))
            h0, w0 = self.spec.size
            if not (okh[h0 - 1] and okw[w0 - 1]) and not self.lenient:
                raise Invalid(f"{op} at {path!r}: empty map at the spec's input size")
        self.prims.append(Prim(vid, op, params, path, inputs, shape, origin, self.aux, okh, okw, self.unit, self.sharing))
        self.shapes[vid] = shape
        return vid

    # -- structure
    def row(self, path: str, expand: Any, register: bool = True) -> str:
        self.unit = path
        began = len(self.ends)
        try:
            out = expand()
        finally:
            self.unit = None
        if register:
            self.ended(path, out, began)
        self.rows.append((path, out))
        return out

    def ended(self, path: str, out: str, began: int) -> str:
        """A node with a module path has ended (an op, a block instance, a named node, a copy, a gate, a row);
        ``began``: len(self.ends) when it began, so the nodes ended since are inside it."""
        self.ends_at.setdefault(path, []).append(len(self.ends))
        self.ends.append((path, out, began))
        return out

    def values_at(self, path: str) -> list[str]:
        """docs/language.md, "Reading earlier values": the values of the nodes at a module path, leaving out
        a node inside another node at the same path (the outer one stands for it); several: ambiguous."""
        mine = self.ends_at.get(path, [])
        outer = [i for i in mine if not any(self.ends[j][2] <= i < j for j in mine)]
        return list(dict.fromkeys(self.ends[i][1] for i in outer))

    def value_at(self, path: str) -> str | None:
        found = self.values_at(path)
        if len(found) > 1:
            raise Invalid(f"{path!r} names several values side by side")  # archspec: a located name error
        return found[0] if found else None

    def node(self, n: Any, x: str, prefix: str, name: str | None, index: int | None, env: dict[str, Any]) -> str:
        began = len(self.ends)
        out = self._node(n, x, prefix, name, index, env)
        if name is not None and not self.is_inline(n):  # docs/language.md: a named node's output, at its module path
            # (an inline instance has none: its "name", a copy's or a number, is its index, where its body's
            # parts stand; seeds 8808114, 10001152: `blk * 1`'s copy path `c.2.0` names its body's first op)
            self.ended(_join(prefix, name), out, began)
        return out

    def is_inline(self, n: Any) -> bool:
        return isinstance(n, Use) and n.block in self.blocks and self.blocks[n.block].inline

    def earlier(self, source: str) -> str:
        """The value from:, crop to= or interpolate size_of= names: inside the innermost block instance first, then
        in each enclosing instance, innermost first, then in the network; `block_in` (no node of that name) is the
        innermost instance's input (docs/language.md, "Reading earlier values")."""
        if source == "block_in" and not any(p == "block_in" or p.endswith(".block_in") for p in self.ends_at):
            if not self.inputs:
                raise Invalid("block_in outside a block")
            self.notes.add("from_block_in")
            return self.inputs[-1]
        return self.lookup(source)[1]

    def lookup(self, source: str) -> tuple[str, str]:
        """The module path and the value a name names, looked up as `from:` looks (see :meth:`earlier`)."""
        for k, path in enumerate([_join(inside, source) for inside in reversed(self.instances)] + [source]):
            found = self.value_at(path)
            if found is not None:
                if 0 < k < len(self.instances):
                    self.notes.add("from_outer_instance")
                return path, found
        raise Invalid(f"from: {source!r} names no earlier node")

    def share(self, n: Share, x: str) -> str:
        """docs/language.md, "Shared weights": the ops at NAME's path or under it that compute its value, applied again
        in order to x in place of the one value the part reads from outside it, with the same modules (a copy calls
        its original's and claims no path); each copy is given the channels, and a map or a vector, as its original."""
        path, out = self.lookup(n.source)
        by_id = {p.id: p for p in self.prims}

        def inside(v: str) -> bool:
            return v != "input" and (by_id[v].path == path or by_id[v].path.startswith(path + "."))

        if not path or not inside(out):
            raise Invalid(f"share: {n.source!r} names a value with no ops of its own")
        part, reads, todo = {out}, set(), [out]
        while todo:
            for v in by_id[todo.pop()].inputs:
                if not inside(v):
                    reads.add(v)
                elif v not in part:
                    part.add(v)
                    todo.append(v)
        if len(reads) != 1:
            raise Invalid(f"share: the part {path!r} reads {len(reads)} values from outside it")
        copies = {reads.pop(): x}
        self.notes.add("share")
        if self.aux is not None:
            self.note("share_in_aux")
        for p in sorted((by_id[v] for v in part), key=lambda p: int(p.id[1:])):
            if len(set(p.inputs)) < len(p.inputs):
                self.note("share_same_input")
            xs = [copies[v] for v in p.inputs]
            for was, now in zip(p.inputs, xs, strict=True):
                a, b = self.shapes[was], self.shapes[now]
                if a.c != b.c or a.is_map != b.is_map:
                    raise Invalid(f"share: {p.op} at {p.path!r} given other channels than it was made for")
                if (a.h, a.w) != (b.h, b.w):
                    self.notes.add("share_resized")  # a copy at other sizes than its original
            self.sharing = p.shares or p.id
            try:
                copies[p.id] = self.replay(p, xs)
                self.copy_of[copies[p.id]] = p.id
            finally:
                self.sharing = None
        return copies[out]

    def replay(self, p: Prim, xs: list[str]) -> str:
        """Primitive p again on the values xs, its shape worked out for them (the handlers of the ops, from p's own
        arguments)."""
        a, x = p.params, xs[0]
        if p.op in ("conv2d", "std_conv2d"):
            return self.conv2d({**a, "padding": "same" if a["same"] else a["padding"]}, x, p.path, p.origin, p.op)
        if p.op in ("concat", "add", "mul"):
            return self.merged(p, xs)
        if p.op in ("interpolate", "crop", "branch_select", "attention_pool"):
            return getattr(self, "_" + p.op)(a, x, xs[1], p.path)
        args = a
        if p.op == "linear":
            args = {**a, "per_pixel": self.shapes[x].is_map}
        if p.op == "pad":  # kept as F.pad's (left, right, top, bottom)
            args = {"padding": (a["padding"][2], a["padding"][0]), "value": a["value"], "mode": a["mode"]}
        if p.op == "broken":  # an op that cannot be built at this size: its copy cannot either
            return self.broken(a["op"], p.path, x)
        handler = getattr(self, "op_" + p.op, None)
        if handler is None or p.op in ("bn", "layer_scale", "leaky_relu", "elu"):  # the shape of its input
            return self.emit(p.op, a, p.path, [x], self.shapes[x], p.origin)
        return handler(args, x, p.path)

    def merged(self, p: Prim, xs: list[str]) -> str:
        """A merge again (a concat, a residual's sum, a gate's product) on other values: where they agree."""
        shapes = [self.shapes[v] for v in xs]
        okh, okw = ALL, ALL
        if p.op == "concat":
            out = Shape(sum(s.c for s in shapes), shapes[0].h, shapes[0].w)
        else:
            out = shapes[0]
        if p.op == "add" and _broadcast(*shapes) is not None:  # a broadcast sum again: onto the larger side
            return self.emit(p.op, p.params, p.path, xs, _broadcast(*shapes), p.origin)  # type: ignore[arg-type]
        if out.is_map and p.op != "mul":
            okh, okw = self.agree([s.h for s in shapes]), self.agree([s.w for s in shapes])  # type: ignore[misc]
        return self.emit(p.op, p.params, p.path, xs, out, p.origin, okh, okw)

    def _node(self, n: Any, x: str, prefix: str, name: str | None, index: int | None, env: dict[str, Any]) -> str:
        if isinstance(n, Take):
            return self.earlier(n.source)
        seg = name if name is not None else (str(index) if index is not None else None)
        if self.is_inline(n):
            return self.inline(n, x, prefix, seg, env)
        if self.unit is None and isinstance(n, Share):  # among the rows, a row of its own: its name, or PREFIX[INDEX]
            at = _join(prefix, name) if name is not None else f"{prefix}[{'' if index is None else index}]"
            return self.row(at, lambda: self.share(n, x), register=False)
        if isinstance(n, Share):
            return self.share(n, x)
        if self.unit is None and (isinstance(n, (Concat, Residual)) or (name is None and isinstance(n, Chain))):
            # a container written among the rows is one row, at its name, or PREFIX[INDEX] without one (its parts
            # sit at the prefix: it has no module path; registered after its ops)
            at = _join(prefix, name) if name is not None else f"{prefix}[{'' if index is None else index}]"
            return self.row(at, lambda: self.node(n, x, prefix, name, index, env))
        if self.unit is None and isinstance(n, (Op, Use, Gate)):
            return self.row(_join(prefix, seg), lambda: self.node(n, x, prefix, name, index, env), register=False)
        if isinstance(n, Op):
            return self.op(n, x, _join(prefix, seg), env)
        if isinstance(n, Use):
            return self.use(n, x, _join(prefix, seg), env)
        if isinstance(n, Named):  # a name inside a name is a path segment under it (docs/language.md, Nodes)
            return self.placed(n.node, x, prefix if name is None else _join(prefix, name), n.name, None, env)
        if isinstance(n, Chain):
            return self.chain(n, x, _join(prefix, name), env)
        if isinstance(n, Concat):
            return self.concat(n, x, _join(prefix, name), env)
        if isinstance(n, Residual):
            return self.residual(n, x, _join(prefix, name), env)
        if isinstance(n, Gate):
            return self.gate(n, x, _join(prefix, seg), env)
        if isinstance(n, If):
            # transparent: the chosen node stands in the if's place, with its name or list index
            chosen = self.choose(n, env)
            return x if chosen is None else self.placed(chosen, x, prefix, name, index, env)
        raise TypeError(n)

    def gate(self, n: Gate, x: str, path: str, env: dict[str, Any]) -> str:
        """docs/language.md, "Gates": the body sits under the gate's path, the product at `<path>.mul`."""
        xs = self.shapes[x]
        began = len(self.ends)
        g = self.placed(n.body, x, path, None, None, env)
        gs = self.shapes[g]
        # docs/language.md, "Gates": the gate broadcasts onto x, each of its C, H and W x's or 1 (C×1×1: SE, 1×H×W: a
        # spatial gate, C×H×W: one value per element)
        onto = gs.is_map and gs.c in (1, xs.c) and all(set(g) == {1} or g == v for g, v in ((gs.h, xs.h), (gs.w, xs.w)))  # type: ignore[arg-type]
        if not xs.is_map or not onto:
            raise Invalid("a gate's C, H and W must each be its input's or 1")
        return self.ended(path, self.emit("mul", {}, _join(path, "mul"), [x, g], xs, _join(path, "mul")), began)

    def choose(self, n: If, env: dict[str, Any]) -> Any:
        cond = self.value(n.cond, env)
        if not isinstance(cond, bool):
            raise Invalid("if needs a bool")
        return n.then if cond else n.other

    def repeat_of(self, n: Any, env: dict[str, Any]) -> int:
        if isinstance(n, (Op, Use, Chain)) and n.repeat is not None:
            count = self.value(n.repeat, env)
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
                raise Invalid("bad repeat")
            return depth_repeats(count, self.depth, self.rounding)
        return 1

    def placed(self, n: Any, x: str, prefix: str, name: str | None, index: int | None, env: dict[str, Any]) -> str:
        """A node anywhere but among a list's unnamed items (docs/language.md, "Repeats"): a node
        with a written repeat count is the chain of its copies, standing where the node stands —
        under its name, else its index (a branch of a branch list), else the enclosing prefix
        (`body: conv * 2` is `body: [conv, conv]`); an `if:` passes its place to the chosen node."""
        began = len(self.ends)
        if isinstance(n, If):
            chosen = self.choose(n, env)
            if chosen is None:  # a named if that chooses nothing: its name is its input's value
                return x if name is None else self.ended(_join(prefix, name), x, began)
            return self.placed(chosen, x, prefix, name, index, env)
        if getattr(n, "repeat", None) is None:
            return self.node(n, x, prefix, name, index, env)
        count = self.repeat_of(n, env)
        base = _join(prefix, name if name is not None else (str(index) if index is not None else None))
        for i in range(count):
            seg = self.copy_name(n, i, env)
            if self.unit is None and isinstance(n, Chain):  # among the rows, a chain's copy is a row (as a block's)
                if n.pattern is not None:
                    self.note("names_pattern_rows")
                x = self.row(_join(base, seg), lambda x=x, seg=seg: self.node(n, x, base, seg, None, env))
            else:
                x = self.node(n, x, base, seg, None, env)
        return x if name is None else self.ended(base, x, began)  # a named repeat: the chain of its copies

    def copy_name(self, n: Any, i: int, env: dict[str, Any]) -> str:
        """The name of copy i of a repeated node: its index, or its `names:` pattern ({n} 1-based, {i} 0-based),
        the block parameters in it filled in first."""
        pattern = getattr(n, "pattern", None)
        if pattern is None:
            return str(i)
        name = ""
        for part in pattern.parts if isinstance(pattern, Pattern) else [pattern]:
            if isinstance(part, str):
                name += part.replace("{n}", str(i + 1)).replace("{i}", str(i))
            elif isinstance(part, Field):
                name += str(part.mul * (i + 1 if part.var == "n" else i) + part.add)
            else:
                name += str(self.value(part, env))
        return name

    def chain(self, n: Chain, x: str, prefix: str, env: dict[str, Any]) -> str:
        if n.form == "chain_map":
            assert n.names is not None
            for key, item in zip(n.names, n.items, strict=True):
                x = self.placed(item, x, prefix, key, None, env)
            return x
        index = 0
        for item in n.items:
            while isinstance(item, If):  # docs/language.md: in a list the node an if chooses is the list's item
                item = self.choose(item, env)
            if item is None:  # an if choosing nothing: the identity, which takes its index
                index += 1
                continue
            if isinstance(item, Named):
                x = self.placed(item.node, x, prefix, item.name, None, env)
                index += 1
                continue
            for i in range(self.repeat_of(item, env)):
                pattern = getattr(item, "pattern", None)  # names: the copies' names replace the indices
                if isinstance(item, Chain) and item.repeat is not None:  # a copy of a chain: named like a block instance
                    seg = self.copy_name(item, i, env) if pattern else str(index)
                    copy = lambda x=x, seg=seg, item=item: self.node(item, x, prefix, seg, None, env)  # noqa: E731
                    if self.unit is None and pattern:
                        self.note("names_pattern_rows")
                    x = copy() if self.unit is not None else self.row(_join(prefix, seg), copy)  # a row, as a block's
                elif pattern is not None:
                    x = self.node(item, x, prefix, self.copy_name(item, i, env), None, env)
                else:
                    x = self.node(item, x, prefix, None, index, env)
                index += 1
        return x

    def concat(self, n: Concat, x: str, prefix: str, env: dict[str, Any]) -> str:
        outs = []
        count = 1 if n.count is None else self.value(n.count, env)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise Invalid("a concat's count is a whole number from 1 to 1000")
        if n.index is not None and n.index in env:
            raise Invalid("index hides a parameter")
        m = len(n.branches)
        for k in range(count):  # copy k of the branches: $index is k, list branches at k·m + i
            e = env if n.index is None else {**env, n.index: k}
            for i, b in enumerate(n.branches):
                name, at = (None, k * m + i) if n.names is None else (n.names[i], None)
                outs.append(self.placed(b, x, prefix, name, at, e))
        if len(outs) == 1:
            return outs[0]
        if len(set(outs)) < len(outs):
            self.note("merge_same_input")
        shapes = [self.shapes[o] for o in outs]
        first = shapes[0]
        if any(s.is_map != first.is_map for s in shapes):
            raise Invalid("concat of maps and vectors")
        okh, okw = ALL, ALL
        out = Shape(sum(s.c for s in shapes))
        if first.is_map:
            self.partial = False
            okh, okw = self.agree([s.h for s in shapes]), self.agree([s.w for s in shapes])
            out = Shape(out.c, first.h, first.w)
            self.merge_notes(outs)
        return self.emit("concat", {}, _join(prefix, "concat"), outs, out, _join(prefix, "concat"), okh, okw)

    def agree(self, sizes: list[tuple[int, ...]]) -> tuple[bool, ...]:
        ok = tuple(all(s[i] == sizes[0][i] for s in sizes) for i in range(MAXX))
        valid = [i for i in range(MAXX) if all(s[i] > 0 for s in sizes)]
        if any(not ok[i] for i in valid):
            if self.scaled:  # issue 30: after an upsampling or an up-convolution, merges are compared exactly too
                self.note("scaled_partial_merge")
            self.partial = True
            self.note("partial_merge")
            if not ok[-1]:  # the branches agree only on a bounded range of sizes
                self.note("bounded_merge")
        return ok

    def residual(self, n: Residual, x: str, prefix: str, env: dict[str, Any]) -> str:
        body = self.placed(n.body, x, prefix, None, None, env)
        short = x if n.shortcut is None else self.placed(n.shortcut, x, prefix, None, None, env)
        if body == short:
            self.note("merge_same_input")
        if self._passes_through(body, x):
            self.note("residual_passthrough_body")
        scale = 1.0 if n.scale is None else self.value(n.scale, env)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise Invalid("bad scale")
        sb, ss = self.shapes[body], self.shapes[short]
        big = _broadcast(ss, sb)
        if big is not None:  # docs/language.md, "Global context": one side broadcast onto the other, the larger shape
            self.notes.add("broadcast_residual")
            out = self.emit("add", {"scale": float(scale)}, _join(prefix, "add"), [short, body], big, _join(prefix, "add"))
            return out if n.then is None else self.placed(n.then, out, prefix, "act", None, env)
        if sb.c != ss.c or sb.is_map != ss.is_map:
            raise Invalid("residual shapes differ")
        if sb.is_map and _one_by_one(sb) != _one_by_one(ss):  # a side of 1 where it is valid, not at every size: not
            raise Invalid("a residual broadcasting a 1×1 side at some sizes only: not drawn")  # drawn
        okh, okw = ALL, ALL
        if sb.is_map:
            self.partial = False
            okh, okw = self.agree([ss.h, sb.h]), self.agree([ss.w, sb.w])
            self.merge_notes([short, body])
        out = self.emit("add", {"scale": float(scale)}, _join(prefix, "add"), [short, body], ss, _join(prefix, "add"), okh, okw)
        if n.then is not None:
            out = self.placed(n.then, out, prefix, "act", None, env)
        return out

    def merge_notes(self, inputs: list[str]) -> None:
        """Notes on what meets in a merge (issue 24's miscompilations): a ceil-mode pool in a partial
        merge; a per-pixel op reading, through identities, another per-pixel op's output."""
        prims = [self.prims[int(v[1:])] for v in inputs if v != "input"]
        if self.partial and any(p.op in ("maxpool", "avgpool") and p.params["ceil"] for p in prims):
            self.note("ceil_partial_merge")
        for p in prims:
            if not self._per_pixel(p):
                continue
            v, through = p.inputs[0], 0
            while v != "input" and self.prims[int(v[1:])].op == "identity":
                v, through = self.prims[int(v[1:])].inputs[0], through + 1
            if through and v != "input" and self._per_pixel(self.prims[int(v[1:])]):
                self.note("identity_pixel_merge")

    def _per_pixel(self, p: Prim) -> bool:
        """An op that runs channels last on a map (layer_norm, linear per_pixel)."""
        return p.shape.is_map and (p.op == "layer_norm" or (p.op == "linear" and bool(p.params.get("per_pixel"))))

    def _passes_through(self, v: str, x: str) -> bool:
        """v is x itself, or x through identity / dropout / drop_path / flatten of a vector only."""
        while v != x and v != "input":
            p = self.prims[int(v[1:])]
            if p.op not in ("identity", *TRAIN_MODULES) and not (p.op == "flatten" and not self.shapes[p.inputs[0]].is_map):
                return False
            v = p.inputs[0]
        return v == x

    def use(self, n: Use, x: str, path: str, env: dict[str, Any]) -> str:
        began = len(self.ends)
        out = self.instance(n, x, path, env, lambda body, inner: self.placed(body, x, path, None, None, inner))
        return self.ended(path, out, began)

    def inline(self, n: Use, x: str, prefix: str, seg: str | None, env: dict[str, Any]) -> str:
        """docs/language.md, "Inline blocks": the body stands where the instance stands, at its index in a list,
        its parts named there; an instance takes no name (nor a names: pattern)."""
        if n.pattern is not None or (seg is not None and not seg.isdigit()):
            raise Invalid("an inline block's instance takes no name")
        index = None if seg is None else int(seg)
        return self.instance(n, x, prefix, env, lambda body, inner: self.placed(body, x, prefix, None, index, inner))

    def instance(self, n: Use, x: str, path: str, env: dict[str, Any], expand: Callable[[Any, dict[str, Any]], str]) -> str:
        """One block instance: its environment (parameters, then the names every block defines: block_in,
        block_index and block_count of its counter), its body expanded by ``expand``, its parameters all used."""
        block = self.blocks[n.block]
        if not isinstance(block.body, (Concat, Residual, Chain, Op, Gate, If)):
            raise Invalid("a block body is a concat, residual, chain, gate, op or if")
        if n.block in self.stack:
            raise Invalid("block uses itself")
        inner = dict(block.params)
        outer = {**env, "in": self.shapes[x].c}  # `in` in an argument: the channels the instance is applied to
        for k, v in n.args.items():
            if k not in block.params:
                raise Invalid(f"block {n.block} has no parameter {k}")
            inner[k] = self.value(v, outer)
        # arguments computed from in / block_in carry the width multiplier already (docs/language.md, "Multipliers")
        carried = {"in", "block_in"} | env.get(FROM_INPUT, set())
        counter = block.counter or block.name
        index = self.counts.get(counter, 0) if self.indexing else 0
        self.counts[counter] = self.counts.get(counter, 0) + 1
        count = PROVISIONAL_COUNT if self.totals is None else self.totals[counter]
        inner |= {"block_in": self.shapes[x].c, "block_index": index, "block_count": count}
        inner[FROM_INPUT] = {k for k, v in n.args.items() if _params_in(v) & carried}
        self.stack += (n.block,)
        self.used.append(set())
        self.instances.append(path)
        self.inputs.append(x)
        try:
            out = expand(block.body, inner)
        finally:
            self.stack = self.stack[:-1]
            used = self.used.pop()
            self.instances.pop()
            self.inputs.pop()
        if set(block.params) - used:
            raise Invalid(f"block {n.block}: a parameter is never used")  # docs/language.md: an error
        return out

    def value(self, v: Any, env: dict[str, Any]) -> Any:
        if isinstance(v, Param):
            if v.name not in env:
                raise Invalid(f"undefined ${v.name}")
            if self.used:
                self.used[-1].add(v.name)
            return env[v.name]
        if isinstance(v, Expr):
            base = self.value(Param(v.name), env)
            k = self.value(Param(v.k), env) if isinstance(v.k, str) else v.k
            if isinstance(base, bool) or not isinstance(base, int) or isinstance(k, bool) or not isinstance(k, int):
                raise Invalid("an expression over a non-number")
            return {"*": base * k, "//": base // k, "+": base + k}[v.op]
        if isinstance(v, Sched):
            index, count = self.value(Param("block_index"), env), self.value(Param("block_count"), env)
            return v.scale * (index + v.shift) / count
        if isinstance(v, Pattern):
            return "".join(p if isinstance(p, str) else str(self.value(p, env)) for p in v.parts)
        if isinstance(v, Calc):  # width_mult, depth_mult: the spec's scale.width and scale.depth, whatever apply: says
            a = self.value(v.a, env)
            width, depth = float(self.spec.scale.get("width", 1.0)), float(self.spec.scale.get("depth", 1.0))
            return {
                "int_w": lambda: int(a * width),
                "divisible_w": lambda: make_divisible(a * width, v.d),
                "ceil_d": lambda: math.ceil(a * depth),
                "max_in": lambda: max(env["in"], a),
            }[v.kind]()
        if isinstance(v, (list, tuple)):
            return type(v)(self.value(e, env) for e in v)
        return v

    # -- ops
    def op(self, n: Op, x: str, path: str, env: dict[str, Any]) -> str:
        if set(n.args) - OPTIONS.get(n.name, set()):
            raise Invalid(f"{n.name} has no option {sorted(set(n.args) - OPTIONS.get(n.name, set()))}")
        here = {**env, "in": self.shapes[x].c}  # docs/language.md: `in` is the op's input channels
        written = {**self.spec.defaults.get(n.name, {}), **{k: self.value(v, here) for k, v in n.args.items()}}
        args = {**OP_DEFAULTS.get(n.name, {}), **written}
        if args.get("groups") == "in":  # one group per input channel (docs/language.md: `dw`, `groups=in`)
            args["groups"] = self.shapes[x].c
        carried = _params_in(n.args.get("out")) & ({"in", "block_in"} | env.get(FROM_INPUT, set()))
        if carried and self.width != 1 and "block_in" in _params_in(n.args.get("out")):
            self.notes.add("block_in_width")  # issue 30: was scaled again (fixed)
        if (
            n.name in CHANNEL_OPS
            and self.scale_width
            and not n.fixed
            and path not in self.fixed
            and self.width != 1
            and not carried
        ):
            old = args["out"]
            args["out"] = width_channels(old, self.width, self.divisor)
            if written.get("groups") == old:  # a depthwise conv (groups written equal to out) stays depthwise
                args["groups"] = args["out"]
        if isinstance(args.get("out"), int) and not isinstance(args["out"], bool) and args["out"] < 1:
            raise Invalid("out below 1")  # ${in // 2} on one channel (a repeated copy's input: seeds 10000870, 10001213)
        handler = getattr(self, "op_" + n.name, None)
        began = len(self.ends)
        if handler is None:
            if n.name not in ACTS and n.name != "identity":
                raise Invalid(f"unknown op {n.name}")
            y = self.emit(n.name, {}, path, [x], self.shapes[x], path)
        else:
            try:
                y = handler(args, x, path)
            except Invalid:
                if not self.lenient:
                    raise
                y = self.broken(n.name, path, x)
        return self.ended(path, y, began)

    def broken(self, op: str, path: str, x: str) -> str:
        """An op that cannot be built at this spec's size (lenient mode): a value valid at no input size."""
        never = tuple(False for _ in X)
        return self.emit("broken", {"op": op}, path, [x], self.shapes[x], path, never, never)

    def map_of(self, x: str, what: str) -> Shape:
        xs = self.shapes[x]
        if not xs.is_map:
            raise Invalid(f"{what} on a vector")
        return xs

    def op_conv(self, args: dict[str, Any], x: str, path: str) -> str:
        y = self.conv2d({k: args[k] for k in OP_DEFAULTS["conv2d"]} | {"out": args["out"]}, x, _join(path, "conv"), path)
        if args["bn"]:
            y = self.emit(
                "bn",
                {"eps": args["eps"], "momentum": args["momentum"], "affine": True},
                _join(path, "bn"),
                [y],
                self.shapes[y],
                path,
            )
        if args["act"] != "none":  # docs/language.md, `conv`: act=leaky_relu(0.2) is leaky_relu with slope 0.2
            act, _, number = str(args["act"]).partition("(")
            fields = {CONV_ACT_NUMBERS[act]: float(number.rstrip(")"))} if number else {}
            y = self.emit(act, fields, _join(path, "act"), [y], self.shapes[y], path)
        return y

    def op_conv2d(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.conv2d(args, x, path, path)

    def op_maxpool(self, args: dict[str, Any], x: str, path: str, name: str = "maxpool") -> str:
        xs = self.map_of(x, "pool")
        k, s, p = _pair(args["kernel"]), _pair(args["stride"]), _pair(args["padding"])
        d = _pair(args.get("dilation", 1))  # max pools only (torch's avg_pool2d has none)
        if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
            raise Invalid("pool padding above half the kernel")
        shape = Shape(
            xs.c,
            _every_window_touches(xs.h, _window(xs.h, k[0], s[0], p[0], d[0], args["ceil"]), k[0], s[0], p[0], d[0]),  # type: ignore[arg-type]
            _every_window_touches(xs.w, _window(xs.w, k[1], s[1], p[1], d[1], args["ceil"]), k[1], s[1], p[1], d[1]),
        )  # type: ignore[arg-type]
        params = {"kernel": k, "stride": s, "padding": p, "dilation": d, "ceil": bool(args["ceil"])}
        if name == "avgpool":
            params["exclude_pad"] = bool(args["exclude_pad"])
        return self.emit(name, params, path, [x], shape, path)

    def op_avgpool(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.op_maxpool(args, x, path, "avgpool")

    def op_adaptive_avgpool(self, args: dict[str, Any], x: str, path: str, name: str = "adaptive_avgpool") -> str:
        xs = self.map_of(x, "adaptive pool")
        size = _pair(args["size"])
        return self.emit(name, {"size": size}, path, [x], Shape(xs.c, (size[0],) * MAXX, (size[1],) * MAXX), path)

    def op_adaptive_maxpool(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.op_adaptive_avgpool(args, x, path, "adaptive_maxpool")

    def op_global_avgpool(self, args: dict[str, Any], x: str, path: str, name: str = "global_avgpool") -> str:
        xs = self.map_of(x, "global pool")
        return self.emit(name, {}, path, [x], Shape(xs.c), path, *self.nonempty(xs))

    def op_global_maxpool(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.op_global_avgpool(args, x, path, "global_maxpool")

    def op_channel_mean(self, args: dict[str, Any], x: str, path: str, name: str = "channel_mean") -> str:
        xs = self.map_of(x, name)  # one value per pixel: 1×H×W (docs/language.md, "Gates")
        return self.emit(name, {}, path, [x], Shape(1, xs.h, xs.w), path)

    def op_channel_max(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.op_channel_mean(args, x, path, "channel_max")

    def op_flatten(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.shapes[x]
        if not xs.is_map:
            return self.emit("flatten", {}, path, [x], xs, path)
        # the length is fixed at the spec's input size: other sizes must give the same H×W
        h0, w0 = self.spec.size
        fh, fw = xs.h[h0 - 1], xs.w[w0 - 1]  # type: ignore[index]
        okh = tuple(v == fh for v in xs.h)  # type: ignore[union-attr]
        okw = tuple(v == fw for v in xs.w)  # type: ignore[union-attr]
        return self.emit("flatten", {}, path, [x], Shape(xs.c * fh * fw), path, okh, okw)

    def op_linear(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.shapes[x]
        if xs.is_map and not args["per_pixel"]:
            raise Invalid("linear on a map")
        # per_pixel on a map: one nn.Linear over each pixel's channels, OUT×H×W (docs/language.md)
        shape = Shape(args["out"], xs.h, xs.w) if xs.is_map else Shape(args["out"])
        return self.emit("linear", {"out": args["out"], "bias": args["bias"], "in": xs.c}, path, [x], shape, path)

    def op_layer_norm(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.emit("layer_norm", {"eps": args["eps"], "affine": args["affine"]}, path, [x], self.shapes[x], path)

    def op_channel_conv(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.shapes[x]  # docs/language.md, `channel_conv`: one value per channel, C×1×1 or a vector of C
        if xs.is_map and (set(xs.h) != {1} or set(xs.w) != {1}):  # type: ignore[arg-type]
            raise Invalid("channel_conv of a map")
        if not xs.is_map:
            self.notes.add("channel_conv_on_vector")  # session 11: in SE gates' C×1×1 only before
        k = args["kernel"]
        if k is None:  # ECA's rule as the docs state it: the odd number at or above int(|log2 C + b| / γ), at least 3
            t = int(abs(math.log2(xs.c) + args["beta"]) / args["gamma"])
            k = max(t + 1 - t % 2, 3)
        return self.emit("channel_conv", {"kernel": k, "in": xs.c}, path, [x], xs, path)

    def op_layer_scale(self, args: dict[str, Any], x: str, path: str) -> str:
        params = {"init": float(args["init"]), "flat": bool(args["flat"]), "scalar": bool(args["scalar"])}
        if params["flat"] and params["scalar"]:  # docs/language.md, `layer_scale`: two shapes of γ
            raise Invalid("layer_scale flat and scalar together")
        return self.emit("layer_scale", params, path, [x], self.shapes[x], path)

    def op_channel_slice(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.shapes[x]
        start, stop = args["start"], args["stop"]
        if not 0 <= start < stop <= xs.c:
            raise Invalid("channel_slice outside the channels")
        return self.emit("channel_slice", {"start": start, "stop": stop}, path, [x], Shape(stop - start, xs.h, xs.w), path)

    def op_channel_shuffle(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.map_of(x, "channel_shuffle")
        if xs.c % args["groups"]:
            raise Invalid("channel_shuffle groups do not divide the channels")
        return self.emit("channel_shuffle", {"groups": args["groups"]}, path, [x], xs, path)

    def op_std_conv2d(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.conv2d(args, x, path, path, op="std_conv2d")

    def op_group_norm(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.map_of(x, "group_norm")
        if xs.c % args["groups"]:
            raise Invalid("group_norm groups do not divide the channels")
        return self.emit("group_norm", {k: args[k] for k in ("groups", "eps", "affine")}, path, [x], xs, path)

    def op_prelu(self, args: dict[str, Any], x: str, path: str) -> str:  # docs/language.md, `prelu`: shape kept
        params = {"per_channel": bool(args["per_channel"]), "init": float(args["init"])}
        return self.emit("prelu", params, path, [x], self.shapes[x], path)

    def op_leaky_relu(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.emit("leaky_relu", {"slope": float(args["slope"])}, path, [x], self.shapes[x], path)

    def op_scale(self, args: dict[str, Any], x: str, path: str) -> str:  # docs/language.md, `scale`: x · C
        return self.emit("scale", {"factor": float(args["factor"])}, path, [x], self.shapes[x], path)

    def op_elu(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.emit("elu", {"alpha": float(args["alpha"])}, path, [x], self.shapes[x], path)

    def op_pad(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.map_of(x, "pad")
        ph, pw = _pair(args["padding"])  # one number: every side; [H, W]: top and bottom H, left and right W
        mode = args.get("mode", "constant")
        # torch: a reflection narrower than the map (each side's padding below its extent), a circular padding
        # wrapping around at most once (at most the extent); a map too small is an invalid size (0)
        least = {"reflect": 1, "circular": 0}.get(mode)
        h = tuple(v + 2 * ph if v > 0 and (least is None or v >= ph + least) else 0 for v in xs.h)  # type: ignore[union-attr]
        w = tuple(v + 2 * pw if v > 0 and (least is None or v >= pw + least) else 0 for v in xs.w)  # type: ignore[union-attr]
        params = {"padding": (pw, pw, ph, ph), "value": float(args["value"]), "mode": mode}
        return self.emit("pad", params, path, [x], Shape(xs.c, h, w), path)

    def op_upsample(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.map_of(x, "upsample")
        scale, size = args["scale"], args["size"]
        if (scale is None) == (size is None) or (args["align_corners"] is not None and args["mode"] != "bilinear"):
            raise Invalid("upsample needs one of scale and size; align_corners only bilinear")
        if size is not None:  # a fixed size, where the input is not empty
            hs, ws = _pair(size)
            h = tuple(hs if v > 0 else 0 for v in xs.h)  # type: ignore[union-attr]
            w = tuple(ws if v > 0 else 0 for v in xs.w)  # type: ignore[union-attr]
        else:  # torch: floor(size · scale_factor)
            self.scaled = self.scaled or len(set(xs.h)) > 1 or len(set(xs.w)) > 1  # type: ignore[arg-type]
            h = tuple(math.floor(v * scale) for v in xs.h)  # type: ignore[union-attr]
            w = tuple(math.floor(v * scale) for v in xs.w)  # type: ignore[union-attr]
        params = {
            "scale": scale,
            "size": None if size is None else _pair(size),
            "mode": args["mode"],
            "align_corners": args["align_corners"],
        }
        return self.emit("upsample", params, path, [x], Shape(xs.c, h, w), path)

    def op_frozen_bn(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.map_of(x, "frozen_bn")
        return self.emit("frozen_bn", {"eps": float(args["eps"])}, path, [x], xs, path)

    def op_weighted_sum(self, args: dict[str, Any], x: str, path: str) -> str:
        xs, k = self.shapes[x], args["branches"]  # docs/language.md, `weighted_sum`: K·C channels to C
        if xs.c % k:
            raise Invalid("weighted_sum of channels that are not K branches")
        self.fusion_note(x, k)
        params = {"branches": k, "weights": args["weights"], "eps": float(args["eps"]), "init": float(args["init"])}
        return self.emit("weighted_sum", params, path, [x], Shape(xs.c // k, xs.h, xs.w) if xs.is_map else Shape(xs.c // k), path)

    def fusion_note(self, x: str, k: int) -> None:
        """BiFPN's fusion (docs/language.md, "Weighted fusion of same-shape maps"): a sum over K branches that a
        concat of K branches of one width made, each branch where the op takes it (session 11)."""
        p = self.prims[int(x[1:])] if x != "input" else None
        if k > 1 and p is not None and p.op == "concat" and len(p.inputs) == k:
            if len({self.shapes[v].c for v in p.inputs}) == 1:
                self.notes.add("fusion_of_branches")

    def op_space_to_depth(self, args: dict[str, Any], x: str, path: str) -> str:
        """docs/language.md, `space_to_depth`: B²·C×H/B×W/B, defined where H and W are multiples of B (drawn where
        they are at the spec's size; the other sizes accepted are those where they are)."""
        xs, b = self.map_of(x, "space_to_depth"), args["block"]
        h0, w0 = self.spec.size
        if (xs.h[h0 - 1] % b or xs.w[w0 - 1] % b) and not self.lenient:  # type: ignore[index]
            raise Invalid("space_to_depth of a map whose size is not a multiple of B")
        # lenient (another input size): its shape as at any size, valid where H and W are multiples of B, so that a
        # share: of it follows its own input's sizes (seed 31500192: a copy of an unread part at W = 35)
        okh = tuple(v % b == 0 for v in xs.h)  # type: ignore[union-attr]
        okw = tuple(v % b == 0 for v in xs.w)  # type: ignore[union-attr]
        if b > 2:
            self.notes.add("space_to_depth_wide")  # session 11: blocks of 3 and 4 (only 1 and 2 before)
        shape = Shape(xs.c * b * b, tuple(v // b for v in xs.h), tuple(v // b for v in xs.w))  # type: ignore[union-attr]
        return self.emit("space_to_depth", {"block": b, "order": args["order"]}, path, [x], shape, path, okh, okw)

    def op_affine(self, args: dict[str, Any], x: str, path: str) -> str:  # docs/language.md, `affine`: shape kept
        return self.emit("affine", {"scale": float(args["scale"]), "bias": float(args["bias"])}, path, [x], self.shapes[x], path)

    def op_l2_norm(self, args: dict[str, Any], x: str, path: str) -> str:  # docs/language.md, `l2_norm`: shape kept
        return self.emit("l2_norm", {"eps": float(args["eps"])}, path, [x], self.shapes[x], path)

    def op_grn(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.map_of(x, "grn")
        return self.emit("grn", {"eps": float(args["eps"])}, path, [x], xs, path)

    def op_interpolate(self, args: dict[str, Any], x: str, path: str) -> str:
        """x resized to the H×W of the value size_of names: the network's input (no node is named input), or an
        earlier value (as from: reads it; block_in: the block instance's input)."""
        self.map_of(x, "interpolate")
        if args["size_of"] == "input":
            if any(p == "input" or p.endswith(".input") for p in self.ends_at):
                raise Invalid("interpolate reads the input only where no node is named input")
            ref = "input"
        else:
            ref = self.earlier(args["size_of"])
        return self._interpolate(args, x, ref, path)

    def _interpolate(self, args: dict[str, Any], x: str, ref: str, path: str) -> str:
        xs, rs = self.map_of(x, "interpolate"), self.map_of(ref, "interpolate's size")
        if args["align_corners"] is not None and args["mode"] != "bilinear":
            raise Invalid("align_corners only bilinear")
        h = tuple(v if a > 0 else 0 for v, a in zip(rs.h, xs.h, strict=True))  # type: ignore[arg-type]
        w = tuple(v if a > 0 else 0 for v, a in zip(rs.w, xs.w, strict=True))  # type: ignore[arg-type]
        params = {"size_of": args["size_of"], "mode": args["mode"], "align_corners": args["align_corners"]}
        return self.emit("interpolate", params, path, [x, ref], Shape(xs.c, h, w), path)

    def op_conv_transpose(self, args: dict[str, Any], x: str, path: str) -> str:
        """torch's ConvTranspose2d: (X − 1)·s − 2p + d·(k − 1) + output_padding + 1 (docs/language.md)."""
        xs = self.map_of(x, "conv_transpose")
        k, s, p, op, d = (_pair(args[a]) for a in ("kernel", "stride", "padding", "output_padding", "dilation"))
        g, out = args["groups"], args["out"]
        if not isinstance(out, int) or isinstance(out, bool) or out < 1 or xs.c % g or out % g:
            raise Invalid("groups do not divide the channels")
        if op[0] >= max(s[0], d[0]) or op[1] >= max(s[1], d[1]):
            raise Invalid("output_padding not below stride or dilation")

        def grown(sizes: Any, i: int) -> tuple[int, ...]:
            return tuple(max((v - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1, 0) if v > 0 else 0 for v in sizes)

        if s != (1, 1):
            self.scaled = self.scaled or len(set(xs.h)) > 1 or len(set(xs.w)) > 1  # type: ignore[arg-type]
        params = {"in": xs.c, "out": out, "kernel": k, "stride": s, "padding": p, "output_padding": op, "dilation": d}
        params |= {"groups": g, "bias": bool(args["bias"])}
        return self.emit("conv_transpose", params, path, [x], Shape(out, grown(xs.h, 0), grown(xs.w, 1)), path)

    def op_crop(self, args: dict[str, Any], x: str, path: str) -> str:
        """The centre of x at the H×W of the value `to` names; x at least as large wherever both are non-empty."""
        return self._crop(args, x, self.earlier(args["to"]), path)

    def _crop(self, args: dict[str, Any], x: str, ref: str, path: str) -> str:
        xs, rs = self.map_of(x, "crop"), self.map_of(ref, "crop's size")
        for a, b in ((xs.h, rs.h), (xs.w, rs.w)):
            if any(u > 0 and v > 0 and u < v for u, v in zip(a, b, strict=True)):  # type: ignore[arg-type]
                raise Invalid("crop to a larger map")
        h = tuple(v if u > 0 else 0 for u, v in zip(xs.h, rs.h, strict=True))  # type: ignore[arg-type]
        w = tuple(v if u > 0 else 0 for u, v in zip(xs.w, rs.w, strict=True))  # type: ignore[arg-type]
        return self.emit("crop", {}, path, [x, ref], Shape(xs.c, h, w), path)

    def op_branch_sum(self, args: dict[str, Any], x: str, path: str) -> str:
        """docs/language.md, "Attention over branches": K·C×H×W, K branches one after another, to their sum."""
        xs, k = self.map_of(x, "branch_sum"), args["branches"]
        if xs.c % k:
            raise Invalid("branch_sum of channels that do not split into K")
        return self.emit("branch_sum", {"branches": k}, path, [x], Shape(xs.c // k, xs.h, xs.w), path)

    def op_branch_select(self, args: dict[str, Any], x: str, path: str) -> str:
        """The logits x (K·C×1×1) softmaxed over the K branches of the value `of` names, their weighted sum: C×H×W."""
        return self._branch_select(args, x, self.earlier(args["of"]), path)

    def _branch_select(self, args: dict[str, Any], x: str, ref: str, path: str) -> str:
        k, g = args["branches"], args["groups"]
        ls, bs = self.map_of(x, "branch_select"), self.map_of(ref, "branch_select's branches")
        if bs.c % k or (bs.c // k) % g:
            raise Invalid("branches that do not split into K of G groups")
        if ls.c != bs.c or set(ls.h) - {0, 1} or set(ls.w) - {0, 1}:  # type: ignore[arg-type]
            raise Invalid("logits that are not one per channel of every branch")
        okh = tuple(a > 0 and b > 0 for a, b in zip(ls.h, bs.h, strict=True))  # type: ignore[arg-type]
        okw = tuple(a > 0 and b > 0 for a, b in zip(ls.w, bs.w, strict=True))  # type: ignore[arg-type]
        shape = Shape(bs.c // k, bs.h, bs.w)
        return self.emit("branch_select", {"branches": k, "groups": g}, path, [x, ref], shape, path, okh, okw)

    def op_attention_pool(self, args: dict[str, Any], x: str, path: str) -> str:
        """The logits x (1×H×W or C×H×W) softmaxed over H×W, the map `of` names weighed by them and summed: C×1×1."""
        return self._attention_pool(args, x, self.earlier(args["of"]), path)

    def _attention_pool(self, args: dict[str, Any], x: str, ref: str, path: str) -> str:
        ls, ms = self.map_of(x, "attention_pool"), self.map_of(ref, "attention_pool's map")
        if ls.c not in (1, ms.c) or ls.h != ms.h or ls.w != ms.w:
            raise Invalid("logits that are not 1×H×W or C×H×W of the pooled map's size")
        okh = tuple(a > 0 for a in ms.h)  # type: ignore[union-attr]
        okw = tuple(a > 0 for a in ms.w)  # type: ignore[union-attr]
        return self.emit("attention_pool", {}, path, [x, ref], Shape(ms.c, (1,) * MAXX, (1,) * MAXX), path, okh, okw)

    def op_bn(self, args: dict[str, Any], x: str, path: str) -> str:
        return self.emit("bn", {k: args[k] for k in ("eps", "momentum", "affine")}, path, [x], self.shapes[x], path)

    def op_lrn(self, args: dict[str, Any], x: str, path: str) -> str:
        xs = self.map_of(x, "lrn")
        return self.emit("lrn", {k: args[k] for k in ("size", "alpha", "beta", "k")}, path, [x], xs, path)

    def op_dropout(self, args: dict[str, Any], x: str, path: str) -> str:
        # docs/language.md, `dropout`: channelwise zeroes whole channels of a map (nn.Dropout2d); a vector is an error
        if args.get("channelwise") and not self.shapes[x].is_map:
            raise Invalid("channelwise dropout on a vector")
        params = {"p": float(args["p"]), "channelwise": bool(args.get("channelwise", False))}
        return self.emit("dropout", params, path, [x], self.shapes[x], path)

    def op_drop_path(self, args: dict[str, Any], x: str, path: str) -> str:
        if "p" not in args:
            raise Invalid("drop_path needs p")
        return self.emit("drop_path", {"p": float(args["p"])}, path, [x], self.shapes[x], path)

    def nonempty(self, s: Shape) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
        return tuple(v > 0 for v in s.h), tuple(v > 0 for v in s.w)  # type: ignore[union-attr]

    def conv2d(self, args: dict[str, Any], x: str, path: str, origin: str, op: str = "conv2d") -> str:
        xs = self.shapes[x]
        if not xs.is_map:
            raise Invalid("conv on a vector")
        k, s, d = (_pair(args[a]) for a in ("kernel", "stride", "dilation"))
        same = args["padding"] == "same"  # TensorFlow's: ceil(X / stride) (docs/language.md)
        p = (0, 0) if same else _pair(args["padding"])
        g, out = args["groups"], args["out"]
        if not isinstance(out, int) or isinstance(out, bool) or out < 1 or xs.c % g or out % g:
            raise Invalid("groups do not divide the channels")
        if same:
            shape = Shape(out, tuple(-(-v // s[0]) for v in xs.h), tuple(-(-v // s[1]) for v in xs.w))  # type: ignore[union-attr]
        else:
            shape = Shape(out, _window(xs.h, k[0], s[0], p[0], d[0], False), _window(xs.w, k[1], s[1], p[1], d[1], False))
        params = {
            "in": xs.c,
            "out": out,
            "kernel": k,
            "stride": s,
            "padding": p,
            "dilation": d,
            "groups": g,
            "bias": bool(args["bias"]),
            "same": same,
        }
        if op == "std_conv2d":  # docs/language.md, `std_conv2d`: with gain, timm's ScaledStdConv2d
            params |= {"eps": float(args["eps"]), "gain": bool(args["gain"]), "gamma": float(args["gamma"])}
            if params["gamma"] != 1.0 and not params["gain"]:
                raise Invalid("gamma without gain")
        return self.emit(op, params, path, [x], shape, origin)

    # -- the whole spec
    def run(self) -> Truth:
        spec = self.spec
        self.shapes["input"] = Shape(spec.channels, X, X)
        out = self.chain(spec.network, "input", "", {})
        outputs = {"logits": out} if spec.outputs is None else self.named_outputs(spec.outputs)
        for a in spec.aux:
            if a.name in outputs:
                raise Invalid("an aux head named like an output")
            tap = self.value_at(a.tap)
            if tap is None:
                raise Invalid(f"aux tap {a.tap!r} names nothing")
            self.aux = a.name
            outputs[a.name] = self.row(a.name, lambda a=a, tap=tap: self.node(a.head, tap, "", a.name, None, {}), register=False)
            self.aux = None
        return self.finish(outputs)

    def named_outputs(self, written: list[tuple[str, str]]) -> dict[str, str]:
        """outputs: each name → the value its path names (only paths that name one value: as aux taps)."""
        found: dict[str, str] = {}
        for name, path in written:
            value = self.value_at(path)
            if name in found or value is None:
                raise Invalid(f"outputs: {name!r} → {path!r} names no single value")
            found[name] = value
        return found

    def prune(self, outputs: dict[str, str]) -> None:
        """docs/language.md, "Several outputs": what no output reads is not part of the network; a report
        row left without its output ends at its last op still there."""
        by_id = {p.id: p for p in self.prims}
        keep: set[str] = set()
        todo = list(outputs.values())
        while todo:
            v = todo.pop()
            if v in keep or v == "input":
                continue
            keep.add(v)
            todo.extend(by_id[v].inputs)
        if any(p.path.split(".")[0] in TOP_REFUSED for p in self.prims):  # refused before what is unread goes
            raise Invalid("a top-level part named like a value of the compiled forward")
        # a shared part nothing reads, its copy read: left out (not computed) and not called unread; its modules are
        # its first kept copy's, which later copies share (archspec c0d3b82)
        owners: dict[str, str] = {}
        for p in self.prims:
            if p.id in keep and p.shares is not None and p.shares not in keep:
                self.note("share_unread_part")
                first = owners.setdefault(p.shares, p.id)
                p.shares = None if first == p.id else first
        # parts a kept copy applies again, or a copy of a copy of them (seed 34502162, LANG): not unread
        replayed: set[str] = set()
        for v in keep:
            while v in self.copy_of and self.copy_of[v] not in replayed:
                v = self.copy_of[v]
                replayed.add(v)
        self.unread = tuple(p.path for p in self.prims if p.id not in keep and p.aux is None and p.id not in replayed)
        had = {p.unit for p in self.prims}  # a row of no op (an empty chain) stays while the value it passes on does
        self.prims = [p for p in self.prims if p.id in keep]  # (seeds 520, 1585; archspec a15fedd)
        last = {p.unit: p.id for p in self.prims}
        self.rows = [
            (path, out if out in keep or path not in had else last[path])
            for path, out in self.rows
            if path in last or (path not in had and out in (*keep, "input"))
        ]

    def scheduled(self) -> list[Prim]:
        """docs/language.md, "Auxiliary heads": a head runs right after the value it taps, before the network goes on
        (as GoogLeNet's forward computes it); heads on one value in the spec's order. The order shows where a head's
        `share:` copy calls a module the network calls later: BatchNorm's statistics move in that order (seed 48290)."""
        network = [p for p in self.prims if p.aux is None]
        at = {p.id: i for i, p in enumerate(network)}
        after: dict[int, list[Prim]] = {}
        for a in self.spec.aux:
            head = [p for p in self.prims if p.aux == a.name]
            mine = {p.id for p in head}
            reads = [at.get(v, -1) for p in head for v in p.inputs if v not in mine]  # the tap, and any other value
            after.setdefault(max(reads, default=-1), []).extend(head)
        order = after.get(-1, [])
        for i, p in enumerate(network):
            order += [p, *after.get(i, [])]
        return order

    def _count_lang2(self, p: Prim) -> tuple[int, int]:
        """prelu's slopes (one, or one per channel); attention_pool's MACs: one product per value of the pooled map,
        as fvcore counts timm's matrix product (0 in an aux head)."""
        if p.op == "prelu":
            return (p.shape.c if p.params["per_channel"] else 1), 0
        h0, w0 = self.spec.size
        xs = self.shapes[p.inputs[1]]
        return 0, (xs.c * xs.h[h0 - 1] * xs.w[w0 - 1] if p.aux is None else 0)  # type: ignore[index]

    def _count(self, p: Prim) -> tuple[int, int]:
        """A primitive's parameters, and its MACs at the spec's size (0 in an aux head)."""
        h0, w0 = self.spec.size
        count = macs = 0
        if p.shares is not None:  # a share's copy: its weights are its original's, its MACs its own (each call counts)
            return 0, self._count(replace(p, shares=None))[1]
        if p.op in ("conv2d", "std_conv2d"):
            weights = p.params["out"] * (p.params["in"] // p.params["groups"]) * p.params["kernel"][0] * p.params["kernel"][1]
            count = weights + (p.params["out"] if p.params["bias"] else 0) + (p.params["out"] if p.params.get("gain") else 0)
            if p.aux is None:
                macs = weights * p.shape.h[h0 - 1] * p.shape.w[w0 - 1]  # type: ignore[index]
        elif p.op == "linear":
            count = p.params["in"] * p.params["out"] + (p.params["out"] if p.params["bias"] else 0)
            if p.aux is None:  # on a map, once per pixel
                pixels = p.shape.h[h0 - 1] * p.shape.w[w0 - 1] if p.shape.is_map else 1  # type: ignore[index]
                macs = p.params["in"] * p.params["out"] * pixels
        elif p.op == "conv_transpose":  # fvcore: the weights once per input pixel
            weights = p.params["in"] * (p.params["out"] // p.params["groups"]) * p.params["kernel"][0] * p.params["kernel"][1]
            count = weights + (p.params["out"] if p.params["bias"] else 0)
            if p.aux is None:
                xs = self.shapes[p.inputs[0]]
                macs = weights * xs.h[h0 - 1] * xs.w[w0 - 1]  # type: ignore[index]
        elif p.op in ("bn", "layer_norm", "group_norm") and p.params["affine"]:
            count = 2 * p.shape.c
        elif p.op == "layer_scale":  # scalar: one γ for every channel
            count = 1 if p.params["scalar"] else p.shape.c
        elif p.op == "weighted_sum":  # its K weights
            count = p.params["branches"]
        elif p.op == "channel_conv":  # K weights; C·K MACs, as fvcore counts a Conv1d
            count = p.params["kernel"]
            macs = p.params["in"] * p.params["kernel"] if p.aux is None else 0
        elif p.op == "grn":  # γ and β
            count = 2 * p.shape.c
        elif p.op == "affine":  # one scale, one bias
            count = 2
        elif p.op in ("prelu", "attention_pool"):
            count, macs = self._count_lang2(p)
        return count, macs

    def _note_names(self, outputs: dict[str, str]) -> None:
        for p in self.prims:
            if p.op not in STATEFUL and p.path and (p.path in self.module_paths or p.path in self.containers):
                self.note("nested_list_clash")
            if p.op == "identity":
                self.notes.add("identity")
        returned = set(outputs.values())
        if any(p.op == "relu" and p.inputs[0] in returned for p in self.prims):
            self.note("relu_on_output")
        # build and the standalone file make dropout and drop_path modules too (and interpolate): a dropout whose
        # path is another module's, holds one or sits under one is named apart
        weightless = [p.path for p in self.prims if p.op in (*TRAIN_MODULES, *STATELESS_MODULES)]
        modules = set(weightless) | self.module_paths
        for q in (p.path for p in self.prims if p.op in TRAIN_MODULES):
            nested = any(m.startswith(q + ".") or q.startswith(m + ".") for m in modules)
            if weightless.count(q) > 1 or q in self.module_paths or nested:
                self.note("dropout_module_clash")

    def finish(self, outputs: dict[str, str]) -> Truth:
        main = ("logits",) if self.spec.outputs is None else tuple(name for name, _ in self.spec.outputs)
        # what nothing reads is left out, with outputs: or without (docs/errors.md, unread: check warns then); the
        # generator's scratch realization of a whole network keeps it (aux heads are drawn on it)
        if self.check_paths or self.spec.outputs is not None:
            self.prune(outputs)
        self.prims = self.scheduled()
        params = macs = 0
        per_row: dict[str | None, int] = {}
        for p in self.prims:
            count, m = self._count(p)
            macs += m
            params += count
            per_row[p.unit] = per_row.get(p.unit, 0) + count
        by_id = {p.id: p for p in self.prims}
        self._note_names(outputs)

        def ok(names: list[str]) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
            okh, okw = list(ALL), list(ALL)
            seen: set[str] = set()
            todo = [outputs[n] for n in names]
            while todo:
                v = todo.pop()
                if v in seen or v == "input":
                    continue
                seen.add(v)
                p = by_id[v]
                okh = [a and b for a, b in zip(okh, p.okh, strict=True)]
                okw = [a and b for a, b in zip(okw, p.okw, strict=True)]
                todo.extend(p.inputs)
            return tuple(okh), tuple(okw)

        rows = [(path, out, per_row.get(path, 0)) for path, out in self.rows]
        return Truth(
            self.prims,
            self.shapes,
            outputs,
            self.spec.channels,
            self.spec.size,
            params,
            macs,
            ok(list(main)),
            ok(list(outputs)),
            self.notes,
            rows,
            main,
            self.spec.outputs is not None,
            unread=self.unread,
        )


def _join(prefix: str, seg: str | None) -> str:
    if seg is None:
        return prefix
    return f"{prefix}.{seg}" if prefix else seg


def apply_overrides(spec: Spec) -> Spec:
    """The spec as the `--set` overrides make it (the overrides the generator draws, by meaning). docs/language.md,
    "Families": the chosen variant's values (`variant` of the overrides, else the spec's own `variant:`) are set
    first, as --set sets them; the user's own overrides then win."""
    s = copy.deepcopy(spec)
    chosen = spec.overrides.get("variant", spec.variant)
    if chosen is not None:
        if chosen not in spec.variants:
            raise Invalid(f"no variant {chosen!r}")
        _set_values(s, spec.variants[chosen])
    _set_values(s, {k: v for k, v in spec.overrides.items() if k != "variant"})
    return s


def _set_values(s: Spec, values: dict[str, Any]) -> None:
    for key, value in values.items():
        parts = key.split(".")
        if key == "name":
            s.name = value
        elif key == "frozen":
            s.frozen = list(value)
        elif parts[0] == "input" and parts[1] == "size":
            s.size = tuple(value) if isinstance(value, list) else (value, value)  # type: ignore[assignment]
        elif parts[0] == "scale":
            s.scale[parts[1]] = value
        elif parts[0] == "defaults":
            s.defaults.setdefault(parts[1], {})[parts[2]] = value
        elif parts[0] == "blocks" and parts[2] == "params":
            next(b for b in s.blocks if b.name == parts[1]).params[parts[3]] = value
        elif parts[0] == "network":  # an item of a list network in short form: `.repeat` is its `* N`, else a key=value
            item = s.network.items[int(parts[1])]
            if parts[2] == "repeat":
                item.repeat = value
            else:
                item.args[parts[2]] = value
        else:
            raise ValueError(key)


def realize(
    spec: Spec, check_paths: bool = True, forbid: set[str] | frozenset[str] = frozenset(), lenient: bool = False
) -> Truth:
    """The meaning of a spec tree (after its overrides): raises Invalid when it is not a valid spec.

    ``lenient``: an op that cannot be built at the spec's size makes the spec invalid only where an output reads
    it; the generator draws trees valid in full, but another input size (``check --set input.size=…``) may break a
    part that nothing reads and that is left out (under ``outputs:``, or skipped by a later ``from:``)."""
    s = apply_overrides(spec)
    check_names(s)
    if s.size[0] > MAXX or s.size[1] > MAXX:
        raise Invalid("input size beyond the tracked range")
    fixed: frozenset[str] = frozenset()
    totals: dict[str, int] | None = None
    if float(s.scale.get("width", 1.0)) != 1 or s.blocks:  # a first expansion: output ops, block counts
        counting = Realizer(s, scale_width=False, check_paths=False, lenient=lenient)
        first = counting.run()
        fixed = output_ops(first) if float(s.scale.get("width", 1.0)) != 1 else frozenset()
        totals = dict(counting.counts)
    final = Realizer(s, fixed=fixed, check_paths=check_paths, forbid=forbid, lenient=lenient)
    final.totals = totals
    truth = final.run()
    if s.frozen:
        truth.frozen = tuple(frozen_patterns(s.frozen, truth))
    if any(
        k.split(".")[0] == "network"
        and not k.endswith(".repeat")
        and getattr(spec.network.items[int(k.split(".")[1])], "repeat", None) is not None
        for k in spec.overrides
    ):
        truth.notes.add("set_arg_on_repeat")  # an argument of a repeated item set by --set
        if "set_arg_on_repeat" in forbid:
            raise Invalid("switched off: set_arg_on_repeat")
    if any(p.path.split(".")[0] in TOP_REFUSED for p in truth.prims):  # a top-level part (through unnamed containers)
        raise Invalid("a top-level part named like a value of the compiled forward")
    if not truth.accepts(*s.size):
        raise Invalid("the spec's own input size is not accepted")
    if not truth.accepts(*s.size, train=True):
        raise Invalid("aux heads refuse the spec's own input size")
    return truth


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def frozen_patterns(patterns: list[str], truth: Truth) -> list[str]:
    """docs/language.md, "Frozen parameters": each entry (a module path or an fnmatch pattern of one) must name
    a module holding parameters or one above such a module (a layer scale's tensor by its own path)."""
    holders = {p.path for p in truth.prims if truth_count(p)}
    reachable = {q for h in holders for q in _prefixes(h)}
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(q, pattern) for q in reachable):
            raise Invalid(f"frozen: {pattern!r} matches no module with parameters")
    return patterns


def truth_count(p: Prim) -> int:
    """Whether a primitive holds parameters (their number, by docs/language.md's counts)."""
    if p.op in ("conv2d", "std_conv2d", "conv_transpose", "linear"):
        return 1
    if p.op in ("bn", "layer_norm", "group_norm"):
        return int(bool(p.params["affine"]))
    return int(p.op in ("layer_scale", "channel_conv", "weighted_sum", "prelu", "affine"))


def check_names(spec: Spec) -> None:
    """docs/language.md, "Names": refused module names, anywhere, and names refused at the top level."""
    net = spec.network
    top = list(net.names or []) if net.form == "chain_map" else [i.name for i in net.items if isinstance(i, Named)]
    if set(top + [a.name for a in spec.aux]) & TOP_REFUSED:
        raise Invalid("a top-level part or aux head named like a value of the compiled forward")
    for root in [net] + [b.body for b in spec.blocks] + [a.head for a in spec.aux]:
        for n in _walk(root):
            names = [n.name] if isinstance(n, Named) else list(getattr(n, "names", None) or [])
            if set(names) & REFUSED_NAMES:
                raise Invalid(f"refused module name in {names}")


def output_ops(truth: Truth) -> frozenset[str]:
    """Origins of the ops deciding an output's channels: walk back through ops without `out`."""
    by_id = {p.id: p for p in truth.prims}
    found: set[str] = set()
    todo = list(truth.outputs.values())
    seen: set[str] = set()
    while todo:
        v = todo.pop()
        if v in seen or v == "input":
            continue
        seen.add(v)
        p = by_id[v]
        if p.op in ("conv2d", "std_conv2d", "conv_transpose", "linear"):
            found.add(p.origin)
        else:
            todo.extend(p.inputs)
    return frozenset(found)


# ---- rendering ------------------------------------------------------------------------------------


def _num(v: float) -> str:
    s = repr(float(v))
    return s if "e" not in s else f"{v:.10f}".rstrip("0")


def _val(v: Any) -> str:
    if isinstance(v, Param):
        return f"${v.name}"
    if isinstance(v, (Expr, Sched, Pattern, Calc)):
        return v.text()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, tuple):
        return f"[{v[0]},{v[1]}]"
    return str(v)


def _yaml_value(v: Any, rng: random.Random | None = None) -> Any:
    if isinstance(v, Param):
        return f"${v.name}"
    if isinstance(v, (Expr, Sched, Pattern, Calc)):
        return v.text()
    if isinstance(v, tuple):  # a pair: [h, w], or one number when both are equal
        return list(v) if v[0] != v[1] or rng is None or rng.random() < 0.5 else v[0]
    return v


FLAGS = {  # (op, arg, value) → the bare word that sets it
    ("conv", "bias", True): "bias",
    ("conv", "bias", False): "no_bias",
    ("conv", "bn", False): "no_bn",
    ("conv", "act", "none"): "linear",
    ("conv2d", "bias", True): "bias",
    ("conv2d", "bias", False): "no_bias",
    ("linear", "bias", True): "bias",
    ("linear", "bias", False): "no_bias",
    ("bn", "affine", False): "no_affine",
    ("maxpool", "ceil", True): "ceil",
    ("avgpool", "ceil", True): "ceil",
    ("avgpool", "exclude_pad", True): "exclude_pad",
    ("conv", "groups", "in"): "dw",
    ("conv2d", "groups", "in"): "dw",
    ("layer_norm", "affine", False): "no_affine",
    ("linear", "per_pixel", True): "per_pixel",
    ("conv", "padding", "same"): "same",
    ("conv2d", "padding", "same"): "same",
    ("std_conv2d", "padding", "same"): "same",
    ("std_conv2d", "bias", True): "bias",
    ("std_conv2d", "bias", False): "no_bias",
    ("std_conv2d", "groups", "in"): "dw",
    ("std_conv2d", "gain", True): "gain",
    ("group_norm", "affine", False): "no_affine",
    ("layer_scale", "flat", True): "flat",
    ("layer_scale", "scalar", True): "scalar",
    ("weighted_sum", "weights", "fast"): "fast",
    ("weighted_sum", "weights", "softmax"): "softmax",
    ("weighted_sum", "weights", "plain"): "plain",
    ("space_to_depth", "order", "block"): "block_major",
    ("space_to_depth", "order", "channel"): "channel_major",
    ("prelu", "per_channel", True): "per_channel",
    ("dropout", "channelwise", True): "channelwise",
    ("pad", "mode", "reflect"): "reflect",
    ("pad", "mode", "replicate"): "replicate",
    ("pad", "mode", "circular"): "circular",
    ("upsample", "mode", "bilinear"): "bilinear",
    ("upsample", "mode", "nearest"): "nearest",
    ("upsample", "align_corners", True): "align_corners",
    ("interpolate", "mode", "bilinear"): "bilinear",
    ("interpolate", "mode", "nearest"): "nearest",
    ("interpolate", "align_corners", True): "align_corners",
    ("conv_transpose", "bias", True): "bias",
    ("conv_transpose", "bias", False): "no_bias",
}
POSITIONAL = {
    "lrn": ("size",),
    "dropout": ("p",),
    "drop_path": ("p",),
    "layer_scale": ("init",),
    "weighted_sum": ("branches",),
    "space_to_depth": ("block",),
    "channel_slice": ("start", "stop"),
    "channel_shuffle": ("groups",),
    "branch_sum": ("branches",),
    "branch_select": ("branches",),
    "channel_conv": ("kernel",),
    "scale": ("factor",),
}
LETTERS = {"stride": "s", "padding": "p", "dilation": "d", "groups": "g"}


def _onto(small: Shape, big: Shape) -> bool:
    """docs/language.md, "Global context" (as a gate's): ``small`` broadcasts onto the map ``big``, each of its C, H
    and W ``big``'s or 1 (H and W: 1 at every input size, or equal to ``big``'s at every one)."""
    if not (small.is_map and big.is_map) or small.c not in (1, big.c):
        return False
    return all(set(a) == {1} or a == b for a, b in ((small.h, big.h), (small.w, big.w)))  # type: ignore[arg-type]


def _broadcast(short: Shape, body: Shape) -> Shape | None:
    """A residual sum's shape where one side broadcasts onto the other and not back (the larger side), else None."""
    onto, back = _onto(body, short), _onto(short, body)
    return None if onto == back else short if onto else body


def _one_by_one(s: Shape) -> tuple[bool, bool]:
    """Whether a map's H and W are 1 at every input size (an adaptive pool's 1×1, a global context)."""
    return all(v in (0, 1) for v in s.h), all(v in (0, 1) for v in s.w)  # type: ignore[union-attr]


def short_form(n: Op) -> str:
    rng = random.Random(n.style)
    tokens = [n.name]
    args = dict(n.args)
    if n.name in ("conv", "conv2d", "std_conv2d", "conv_transpose", "linear") and rng.random() < 0.8:
        tokens.append(_val(args.pop("out")))
    first = POSITIONAL.get(n.name, ())  # the op's positional fields, written bare
    if first and all(f in args for f in first) and rng.random() < 0.7:
        tokens += [_val(args.pop(f)) for f in first]
    # channel_conv's kernel is one number (ECA's K), never written as a grid `3x3` (seed 16500058)
    grid = "size" if n.name in ("adaptive_avgpool", "adaptive_maxpool") else "kernel" if n.name != "channel_conv" else ""
    if grid in args and not isinstance(args[grid], Param) and rng.random() < 0.8:
        k = _pair(args.pop(grid))
        tokens.append(f"{k[0]}x{k[1]}")
    for key in list(args):
        v = args[key]
        word = FLAGS.get((n.name, key, v)) if not isinstance(v, VALUES) else None
        if word and rng.random() < 0.7:
            tokens.append(word)
        elif key in LETTERS and not isinstance(v, VALUES) and v not in ("in", "same") and rng.random() < 0.7:
            if key == "groups":
                tokens.append(f"g{v}")
            else:
                a, b = _pair(v)
                tokens.append(f"{LETTERS[key]}{a}" if a == b else f"{LETTERS[key]}{a},{b}")
        elif isinstance(v, bool) and v and rng.random() < 0.5 and not word:
            tokens.append(key)  # a boolean parameter's name sets it true
        else:
            tokens.append(f"{key}={_val(v)}")
    if n.fixed:
        tokens.insert(rng.randint(1, len(tokens)), "fixed")
    if n.repeat is not None:
        tokens += ["*", _val(n.repeat)] if rng.random() < 0.7 or isinstance(n.repeat, VALUES) else [f"*{n.repeat}"]
    return " ".join(tokens)


def _op_data(n: Op) -> Any:
    if not n.long or n.repeat is not None:
        return short_form(n)
    rng = random.Random(n.style)
    d: dict[str, Any] = {"op": n.name}
    for k, v in n.args.items():
        d[k] = _yaml_value(v, rng)
    if n.fixed:
        d["fixed"] = True
    return d


def _use_data(n: Use) -> Any:
    if n.long:
        d: dict[str, Any] = {"block": n.block}
        if n.args:
            d["params"] = {k: _yaml_value(v) for k, v in n.args.items()}
        if n.repeat is not None:
            d["repeat"] = _yaml_value(n.repeat)
        if n.pattern is not None:
            d["names"] = _yaml_value(n.pattern)
        return d
    parts = [n.block] + [f"{k}={_val(v)}" for k, v in n.args.items()]
    if n.repeat is not None:
        parts += ["*", _val(n.repeat)]
    return " ".join(parts)


def _chain_data(n: Chain) -> Any:
    if n.form == "chain_map":
        assert n.names is not None
        d: dict[str, Any] = {"chain": {k: to_data(v) for k, v in zip(n.names, n.items, strict=True)}}
    else:
        items = [to_data(v) for v in n.items]
        if n.form == "list" and n.repeat is None:
            return items
        d = {"chain": items}
    if n.repeat is not None:
        d["repeat"] = _yaml_value(n.repeat)
    if n.pattern is not None:
        d["names"] = _yaml_value(n.pattern)
    return d


def _concat_data(n: Concat) -> Any:
    if n.names is not None:
        d: dict[str, Any] = {"concat": {k: to_data(v) for k, v in zip(n.names, n.branches, strict=True)}}
    else:
        d = {"concat": [to_data(v) for v in n.branches]}
    if n.count is not None:  # docs/language.md, "Nodes": the branches count times side by side, $index in each copy
        d["count"] = _yaml_value(n.count)
    if n.index is not None:
        d["index"] = n.index
    return d


def _residual_data(n: Residual) -> Any:
    r: dict[str, Any] = {"body": to_data(n.body)}
    if n.shortcut is not None:
        r["shortcut"] = to_data(n.shortcut)
    if n.scale is not None:
        r["scale"] = _yaml_value(n.scale)
    if n.then is not None:
        r["then"] = short_form(n.then)
    return {"residual": r}


def _if_data(n: If) -> Any:
    d = {"if": _yaml_value(n.cond), "then": to_data(n.then)}
    if n.other is not None:
        d["else"] = to_data(n.other)
    return d


_DATA: dict[type, Any] = {
    Op: _op_data,
    Use: _use_data,
    Chain: _chain_data,
    Concat: _concat_data,
    Residual: _residual_data,
    If: _if_data,
    Named: lambda n: {n.name: to_data(n.node)},
    Gate: lambda n: {"gate": to_data(n.body)},
    Take: lambda n: {"from": n.source},
    Share: lambda n: {"share": n.source},
}


def to_data(n: Any) -> Any:
    """The tree as plain YAML data."""
    return _DATA[type(n)](n)


def _block_data(b: Block) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for key, value in (("label", b.label), ("doc", b.doc), ("inline", b.inline or None), ("counter", b.counter)):
        if value:
            d[key] = value
    if b.params:
        d["params"] = dict(b.params)
    body = b.body
    if isinstance(body, Op):
        d["op"] = short_form(body)
    elif isinstance(body, If) and body.as_op:  # docs/language.md, "Blocks and parameters": op: takes an if: too
        d["op"] = to_data(body)
    elif isinstance(body, Chain):
        d["chain"] = to_data(body)["chain"] if body.form != "list" else to_data(body)
    else:
        d.update(to_data(body))
    return d


def render(spec: Spec) -> str:
    """The spec tree as YAML text (without its overrides, which go to archspec as `overrides=`)."""
    data: dict[str, Any] = {
        "archspec": 1,
        "name": spec.name,
        "doc": f"generated case {spec.name}",
        "input": {
            "channels": spec.channels,
            "size": spec.size[0] if spec.size_as_int and spec.size[0] == spec.size[1] else list(spec.size),
        },
    }
    if spec.defaults:
        data["defaults"] = spec.defaults
    if spec.scale:
        data["scale"] = dict(spec.scale)
    if spec.variants:
        data["variants"] = copy.deepcopy(spec.variants)
    if spec.variant is not None:
        data["variant"] = spec.variant
    if spec.frozen is not None:
        data["frozen"] = list(spec.frozen)
    if spec.blocks:
        data["blocks"] = {b.name: _block_data(b) for b in spec.blocks}
    net = spec.network
    data["network"] = (
        {k: to_data(v) for k, v in zip(net.names, net.items, strict=True)}
        if net.form == "chain_map" and net.names
        else [to_data(v) for v in net.items]
    )
    if spec.outputs is not None:
        data["outputs"] = {n: p for n, p in spec.outputs} if spec.outputs_map else [p for _, p in spec.outputs]
    if spec.aux:
        data["aux"] = {}
        for a in spec.aux:
            d = {"tap": a.tap, "head": to_data(a.head)}
            if a.weight is not None:
                d["weight"] = a.weight
            data["aux"][a.name] = d
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


# ---- the generator ------------------------------------------------------------------------------


class Gen:
    """Draws one valid spec tree from a seed; every fragment is tried with :class:`Realizer` as it
    is drawn, so channels and sizes always fit. ``faults``: the switched-off constructs."""

    def __init__(self, seed: int, faults: set[str] | frozenset[str] = frozenset(KNOWN_FAULTS), size: int = 1) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = set(faults)
        self.size = size  # 0 small … 2 larger networks
        # x, self, output, check_input are fine nested and refused at the top level (the truth says Invalid there);
        # REFUSED_NAMES are refused everywhere: tests/test_differential.py's MUST_REFUSE checks the refusal
        self.names = NAMES + ODD_NAMES + tuple(sorted(TOP_REFUSED))

    # -- helpers
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq: Any) -> Any:
        return self.rng.choice(list(seq))

    def style(self) -> int:
        return self.rng.getrandbits(32)

    def try_node(self, n: Any, v: str, env: dict[str, Any]) -> str:
        """Realize a fragment at the path "g" (raises Invalid); the paths it names are forgotten afterwards, so
        that one tried again, or another, does not find its own names twice (`{from: enc}` in a block: "g.enc")."""
        ends, ends_at = list(self.r.ends), {k: list(v) for k, v in self.r.ends_at.items()}
        try:
            return self.r.placed(n, v, "g", None, None, env)
        finally:
            self.r.ends, self.r.ends_at = ends, ends_at

    def fresh_names(self, k: int) -> list[str]:
        return self.rng.sample(self.names, k)

    def inline(self, n: Any) -> bool:
        """Whether n is an instance of an inline block (it takes no name, nor a names: pattern)."""
        return isinstance(n, Use) and any(b.name == n.block and b.inline for b in self.spec_.blocks)

    def draw_pattern(self, env: dict[str, Any], p: float = 0.6) -> str | Pattern:
        """A names: pattern; inside a block sometimes (p) holding a parameter or block_index (issue 30:
        torchvision's RegNet `block${k}-{i}`), filled in before the copies are named."""
        field = self.pick([Field("n", 1, 1), Field("i", 2, 1), Field("i", 1, 0), Field("n", 3, 0)])
        if self.param_ctx is None or not self.chance(p):
            if self.chance(0.3):  # issue 30 (LANG): fields computed from n or i, `conv{n + 1}`, `layer{2 * i + 1}`
                return Pattern([self.pick(["conv", "layer", "unit"]), field])
            return str(self.pick(["unit{n}", "layer{i}", "denselayer{n}"]))
        if self.chance(0.4):
            return Pattern(["b", Expr("block_index", "+", 1), self.pick(["-", "_"]), self.pick(["{i}", "{n}", field])])
        pname = f"k{len(self.param_ctx)}"
        self.param_ctx[pname] = self.rng.randint(1, 4)
        env[pname] = self.param_ctx[pname]
        value: Any = self.pick([Param(pname), Expr(pname, "+", 1), Expr(pname, "*", 2)])
        # after $k a name character would lengthen the name: a hyphen (a ${...} may take anything)
        return Pattern(["s", value, self.pick(["-{i}", "-{n}"]) if isinstance(value, Param) else self.pick(["_{n}", "{i}"])])

    # -- the whole spec
    def spec(self) -> tuple[Spec, Truth]:
        for _ in range(200):
            sub = self.rng.getrandbits(32)
            try:
                return self._spec(random.Random(sub))
            except Invalid:
                continue
        raise RuntimeError(f"seed {self.seed}: no valid spec in 200 draws")

    def _spec(self, rng: random.Random) -> tuple[Spec, Truth]:
        self.rng = rng
        size = rng.randint(8, 40)
        hw = (size, size) if self.chance(0.7) else (size, rng.randint(8, 40))
        spec = Spec(
            name=self.pick(["net", "tiny_net", "Model2", "fuzz_case"]),
            channels=rng.randint(1, 5),
            size=hw,
            network=Chain([]),
            size_as_int=self.chance(0.5),
        )
        if self.chance(0.3):
            spec.defaults = self.draw_defaults()
        spec.scale = self.draw_scale()
        self.spec_ = spec
        self.r = Realizer(spec, check_paths=False, forbid=self.faults)
        self.r.indexing = False  # fragments are tried many times: every instance is a first one here
        self.r.shapes["input"] = Shape(spec.channels, X, X)
        self.param_ctx: dict[str, Any] | None = None
        self.in_block = 0
        self.budget = [10, 24, 48][self.size] + rng.randint(0, 10)
        v = "input"
        items: list[Any] = []
        stem = [b for b in (2, 3, 4) if hw[0] % b == 0 and hw[1] % b == 0]
        if stem and self.chance(0.06):  # TResNet's stem: space_to_depth 4 first (docs/language.md, "Space to depth")
            first = Op("space_to_depth", {"block": self.pick(stem)} | self.other_args("space_to_depth", {}), style=self.style())
            v = self.try_node(first, v, {})
            items.append(first)
        n_items = rng.randint(1, 3 + self.size)
        for _ in range(n_items):
            n, v = self.gen(v, depth=rng.randint(1, 4), env={}, in_list=True, top=True)
            items.append(n)
        if self.chance(0.75):
            for n in self.classifier(v):
                v = self.try_node(n, v, {})
                items.append(n)
        if self.chance(0.35) and not any(self.inline(i) for i in items):  # a mapping of named parts
            names = self.fresh_names(len(items))
            items = [i.node if isinstance(i, Named) else i for i in items]
            spec.network = Chain(items, "chain_map", names)
        else:
            spec.network = Chain(items)
        if UNREAD_CHANCE and self.chance(UNREAD_CHANCE):
            self.draw_unread(spec)
        if self.chance(0.2):
            self.draw_top_share(spec)
        if self.chance(0.25):
            self.draw_aux(spec)
        if self.chance(OUTPUTS_CHANCE):
            self.draw_outputs(spec)
        truth = realize(spec, forbid=self.faults)
        if self.chance(0.35):
            self.draw_overrides(spec)
            truth = realize(spec, forbid=self.faults)
        if self.chance(0.15):
            self.draw_variants(spec)
            truth = realize(spec, forbid=self.faults)
        if self.chance(0.15):
            self.draw_frozen(spec, truth)
            truth = realize(spec, forbid=self.faults)
        if truth.macs > MAX_CASE_MACS:
            raise Invalid("too much work for a quick case")
        return spec, truth

    def draw_unread(self, spec: Spec) -> None:
        """A part nothing reads (docs/errors.md, unread): after a named row, a side part, then `{from: NAME}` back to
        the row's value; the side part is left out with its weights, and check warns."""
        net = spec.network
        named = [i for i in range(len(net.items)) if net.names or isinstance(net.items[i], Named)]
        if not named:
            return
        i = self.pick(named)
        name = net.names[i] if net.names else net.items[i].name
        sides = [Op("conv2d", {"out": self.rng.randint(1, 6)}), Op("linear", {"out": 3}), Op("bn")]
        sides.append(Op("maxpool", {"kernel": (2, 2)}))
        for side in self.rng.sample(sides, 4):
            old = list(net.items), None if net.names is None else list(net.names)
            net.items[i + 1 : i + 1] = [Named("side", side) if net.names is None and self.chance(0.5) else side, Take(name)]
            if net.names is not None:
                net.names[i + 1 : i + 1] = [n for n in ("side", "back", "skipped", "again", "3") if n not in net.names][:2]
            try:
                realize(spec, forbid=self.faults)
                return
            except Invalid:
                net.items, net.names = old

    def draw_top_share(self, spec: Spec) -> None:
        """`{share: NAME}` among the rows, NAME a named part written before it (docs/language.md, "Shared weights"):
        a few places tried, the first the truth accepts kept (its input must have the part's channels)."""
        net = spec.network
        named = [
            (i, net.names[i] if net.names else net.items[i].name)
            for i in range(len(net.items))
            if (net.names or isinstance(net.items[i], Named)) and _weighted(net.items[i])
        ]
        for _ in range(4 if named else 0):
            i, name = self.pick(named)
            j = self.rng.randint(i + 1, len(net.items))
            old = list(net.items), None if net.names is None else list(net.names)
            named_share = net.names is None and self.chance(0.4)
            net.items.insert(j, Named(self.pick(["again", "copy"]), Share(name)) if named_share else Share(name))
            if net.names is not None:
                net.names.insert(j, self.pick([m for m in ("again", "copy", "shared", "9") if m not in net.names]))
            try:
                realize(spec, forbid=self.faults)
                return
            except Invalid:
                net.items, net.names = old

    def draw_scale(self) -> dict[str, Any]:
        scale: dict[str, Any] = {}
        if self.chance(0.15):
            scale = {"width": self.pick([0.5, 0.75, 1.5, 2.0]), "divisor": self.pick([1, 2, 4])}
        if self.chance(0.15):
            scale["depth"] = self.pick([1.5, 2.0])
        if scale and self.chance(0.3):  # issue 30: the depth rule's rounding, which rules apply
            scale["depth_rounding"] = self.pick(["ceil", "round", "floor"])
        if scale and self.chance(0.2):
            scale["apply"] = self.pick([[], ["width"], ["depth"], ["width", "depth"]])
        return scale

    def classifier(self, v: str) -> list[Any]:
        s = self.r.shapes[v]
        out: list[Any] = []
        if s.is_map:
            if self.chance(0.2):
                out.append(Op("adaptive_avgpool", {"size": (1, 1)}, style=self.style()))
                out.append(Op("flatten"))
            else:
                out.append(Op("global_avgpool", long=self.chance(0.2)))
        if self.chance(0.3):
            out.append(Op("dropout", {"p": self.pick([0.0, 0.0, 0.2])}, style=self.style()))
        out.append(
            Named(
                self.pick(["fc", "classifier", "last_linear", "logits_fc"]),
                Op("linear", {"out": self.rng.randint(2, 10)}, style=self.style()),
            )
        )
        return out

    def draw_defaults(self) -> dict[str, dict[str, Any]]:
        d: dict[str, dict[str, Any]] = {}
        if self.chance(0.6):
            conv: dict[str, Any] = {}
            for _ in range(self.rng.randint(1, 2)):
                k = self.pick(["eps", "act", "momentum", "bias"])
                conv[k] = {"eps": 0.001, "act": self.pick(["relu", "silu", "none", "gelu"]), "momentum": 0.3, "bias": True}[k]
            d["conv"] = conv
        if self.chance(0.3):
            d["bn"] = {"eps": 0.01} if self.chance(0.5) else {"momentum": 0.05}
        if self.chance(0.3):
            d["avgpool"] = {"exclude_pad": True}
        if self.chance(0.2):
            d["dropout"] = {"p": 0.0}
        if self.chance(0.2):
            d["conv2d"] = {"bias": False}
        return d or {"conv": {"eps": 0.001}}

    @staticmethod
    def taps(spec: Spec, scratch: Realizer) -> list[str]:
        """Paths naming one value each, inside inline blocks too: an inline instance's value has no path of its
        own (its row is PREFIX[INDEX]; the truth records no value at a copy's index, `Realizer.node`)."""
        return [p for p in scratch.ends_at if p and len(scratch.values_at(p)) == 1]

    def draw_outputs(self, spec: Spec) -> None:
        """outputs: one to three values of the network (paths naming one value each), by path or named."""
        scratch = Realizer(apply_overrides(spec), check_paths=False, forbid=self.faults)
        try:
            scratch.run()
        except Invalid:
            return
        taps = self.taps(spec, scratch)
        if not taps:
            return
        paths = self.rng.sample(taps, min(len(taps), self.rng.randint(1, 3)))
        spec.outputs_map = self.chance(0.5)
        names = self.rng.sample(["0", "1", "2", "out", "pool", "p2", "feat.a", "c-3"], len(paths))
        spec.outputs = list(zip(names, paths, strict=True)) if spec.outputs_map else [(p, p) for p in paths]

    def draw_aux(self, spec: Spec) -> None:
        scratch = Realizer(apply_overrides(spec), check_paths=False, forbid=self.faults)
        try:
            scratch.run()
        except Invalid:
            return
        taps = self.taps(spec, scratch)
        if not taps:
            return
        main, self.r = self.r, scratch  # the head is drawn on the values of the whole network
        try:
            self._draw_heads(spec, scratch, taps)
        finally:
            self.r = main

    def _draw_heads(self, spec: Spec, scratch: Realizer, taps: list[str]) -> None:
        for i in range(self.rng.randint(1, 2)):
            tap = self.pick(taps)
            v = scratch.values_at(tap)[0]
            head: list[Any] = []
            for part in self.rng.sample(taps, min(3, len(taps))) if self.chance(0.3) else []:
                try:  # a part of the network applied again to the tap (session 10): its weights shared with the head
                    v = self.try_node(Share(part), v, {})
                    head.append(Share(part))
                    break
                except Invalid:
                    continue
            s = self.r.shapes[v]
            if s.is_map and self.chance(0.5):
                n, v2 = self.gen(v, 1, {}, in_list=True)
                head.append(n)
            else:
                v2 = v
            for n in self.classifier(v2):
                v2 = self.try_node(n, v2, {})
                head.append(n)
            name = f"aux{i + 1}" if self.chance(0.7) else self.pick(["side", "aux_head", "deep_sup"]) + str(i)
            node: Any = Chain(head, "chain_list") if self.chance(0.2) else Chain(head)
            spec.aux.append(Aux(name, tap, node, self.pick([None, 0.3, 1.0])))

    def draw_variants(self, spec: Spec) -> None:
        """issue 30: the spec's family (`variants:`), each member's values drawn as overrides are (with `name`), and
        one member chosen by the spec's `variant:` or the override `variant`, or none; each member is valid."""
        base = copy.deepcopy(spec)
        base.overrides = {}
        keys = ["input.size", "scale.width", "scale.depth", "defaults", "block_param"]
        if spec.network.form == "list":
            keys.append("item")
        for member in self.rng.sample(["s", "m", "l", "b1", "wide", "tiny"], self.rng.randint(1, 3)):
            values: dict[str, Any] = {}
            for key in self.rng.sample(keys, self.rng.randint(1, 2)):
                values |= self._member_value(base, key)
            if self.chance(0.3):
                values["name"] = f"{spec.name}_{member}"
            if not values:
                continue
            spec.variants[member] = values
            trial = copy.deepcopy(spec)
            trial.overrides = {**spec.overrides, "variant": member}
            try:
                realize(trial, forbid=self.faults)
            except Invalid:
                del spec.variants[member]
        if not spec.variants:
            return
        chosen, how = self.pick(sorted(spec.variants)), self.rng.random()
        if how < 0.4:
            spec.variant = chosen
        elif how < 0.8:
            spec.overrides["variant"] = chosen
        if how < 0.2 and len(spec.variants) > 1:  # written in the spec, another chosen on the command line
            spec.overrides["variant"] = self.pick([m for m in spec.variants if m != chosen])

    def _member_value(self, base: Spec, key: str) -> dict[str, Any]:
        """One --set value for a family member (empty where the spec has nothing to set)."""
        if key == "block_param":
            ints = [(b.name, p) for b in base.blocks for p, v in b.params.items() if type(v) is int and p.startswith("c")]
            if not ints:
                return {}
            b, p = self.pick(ints)
            return {f"blocks.{b}.params.{p}": self.rng.randint(2, 12)}
        return self._override(base, key) or {}

    def draw_frozen(self, spec: Spec, truth: Truth) -> None:
        """issue 30: `frozen:` — module paths holding parameters or above them, as written or as fnmatch patterns
        (`layer*`, `stag[e]`); sometimes emptied again by `--set frozen=[]`."""
        holders = [p.path for p in truth.prims if truth_count(p)]
        if not holders:
            return
        entries: list[str] = []
        for _ in range(self.rng.randint(1, 2)):
            parts = self.pick(holders).split(".")
            path = ".".join(parts[: self.rng.randint(1, len(parts))])
            how = self.rng.random()
            if how < 0.25 and len(path) > 1:
                path = path[:-1] + "*"
            elif how < 0.4:
                path = f"{path[:-1]}[{path[-1]}{self.pick('0a_')}]"
            entries.append(path)
        spec.frozen = list(dict.fromkeys(entries))
        if self.chance(0.25):
            spec.overrides["frozen"] = []
        try:
            realize(spec, forbid=self.faults)
        except Invalid:
            spec.frozen = None
            spec.overrides.pop("frozen", None)

    def draw_overrides(self, spec: Spec) -> None:
        choices = ["input.size", "scale.width", "scale.depth", "defaults", "block_param"]
        keys = self.rng.sample(choices, self.rng.randint(1, 2))
        if spec.network.form == "list" and self.chance(0.5):
            keys.append("item")
        if any(b.params for b in spec.blocks) and self.chance(0.5):
            keys.append("block_param")
        for key in dict.fromkeys(keys):
            if key == "block_param":
                self._override_block_param(spec)
                continue
            trial = self._override(spec, key)
            if trial is None:
                continue
            old = spec.overrides
            spec.overrides = trial
            try:
                realize(spec, forbid=self.faults)
            except Invalid:
                spec.overrides = old

    def _override(self, spec: Spec, key: str) -> dict[str, Any] | None:
        """The spec's overrides with one more drawn for ``key``; None where there is nothing to override."""
        trial = dict(spec.overrides)
        if key == "input.size":
            s = self.rng.randint(8, 40)
            trial["input.size"] = [s, s] if self.chance(0.7) else [s, self.rng.randint(8, 40)]
        elif key == "scale.width":
            trial["scale.width"] = self.pick([0.5, 1.5, 2.0])
            trial["scale.divisor"] = self.pick([1, 2, 4])
        elif key == "scale.depth":
            trial["scale.depth"] = self.pick([1.5, 2.0, 3.0])
        elif key == "defaults":
            trial[self.pick(["defaults.conv.eps", "defaults.bn.eps"])] = 0.01
        elif key == "item":
            return self._override_item(spec, trial)
        return trial

    def _override_item(self, spec: Spec, trial: dict[str, Any]) -> dict[str, Any] | None:
        items = [
            (i, n)
            for i, n in enumerate(spec.network.items)
            if isinstance(n, (Op, Use)) and not n.long and (n.repeat is not None or n.args)
        ]
        if not items:
            return None
        i, n = self.pick(items)
        if n.repeat is not None and not isinstance(n.repeat, Param) and self.chance(0.5):
            trial[f"network.{i}.repeat"] = self.pick([1, 2, 3])
            return trial
        ints = (
            [k for k in n.args if k in ("out", "p")]
            if isinstance(n, Op)
            else [k for k, v in n.args.items() if k[0] == "c" and k[1:].isdigit()]
        )
        if not ints:
            return None
        k = self.pick(ints)
        trial[f"network.{i}.{k}"] = 0.0 if k == "p" else self.rng.randint(2, 9)
        return trial

    def _override_block_param(self, spec: Spec) -> None:
        trial = dict(spec.overrides)
        ints = [
            (b.name, p)
            for b in spec.blocks
            for p, val in b.params.items()
            if isinstance(val, int) and not isinstance(val, bool) and p.startswith("c")
        ]
        if not ints:
            return
        b, p = self.pick(ints)
        for value in (self.rng.randint(2, 12), 4, 8, 2):
            trial[f"blocks.{b}.params.{p}"] = value
            spec.overrides, old = trial, spec.overrides
            try:
                realize(spec, forbid=self.faults)
                break
            except Invalid:
                spec.overrides = old

    # -- nodes
    def gen(
        self, v: str, depth: int, env: dict[str, Any], in_list: bool = False, align: int | None = None, top: bool = False
    ) -> tuple[Any, str]:
        """A node applied to value v; ``align``: only ops mapping size X to floor((X-1)/align)+1
        (so that parallel branches agree at every size)."""
        self.budget -= 1
        if depth <= 0 or self.budget <= 0:
            kinds = ["op"]
        else:
            kinds = ["op"] * 5 + ["chain"] * 2 + ["concat"] * 2 + ["residual"] * 2 + ["block"] * 2 + ["if", "empty", "fusion"]
            if in_list and not align and not top:
                kinds.append("gate")
            if self.in_block and self.spec_.blocks:  # a block using an earlier block (drawn often enough to cover)
                kinds += ["block"] * 6
            if not align and self.r.shapes[v].is_map:  # issue 24: merges the differential tester missed
                kinds += ["ceil_merge", "pixel_merge", "pixel_merge"]
            if not align and not self.in_block and self.r.shapes[v].is_map and len(self.spec_.blocks) < 3:
                kinds += ["skip", "skip"]  # issue 30: from: and crop to= inside a block
                kinds.append("select")  # issue 30: softmax over branches (SKNet, ResNeSt)
                kinds.append("attnpool")  # session 11: GCNet's attention pooling
            if not align and not self.in_block and len(self.spec_.blocks) < 3:
                kinds += ["share", "share"]  # session 10: a part applied again with the same modules
        for _ in range(8):
            kind = self.pick(kinds)
            blocks = len(self.spec_.blocks)
            try:
                n = self.make(kind, v, depth, env, in_list, align)
                if n is None:
                    continue
                if kind == "chain" and not top and isinstance(n, Chain) and n.form != "list" and self.chance(0.25):
                    n.repeat = self.pick([1, 2, 2])  # {chain: [...], repeat: N}
                if (
                    kind != "op"
                    and in_list
                    and isinstance(n, (Chain, Use))
                    and n.repeat is not None
                    and not self.inline(n)
                    and self.chance(0.5)
                ):
                    n.pattern = self.draw_pattern(env)  # names: (long forms, under a name)
                    if isinstance(n, Use):
                        n.long = True
                    if self.chance(0.3):  # an unnamed item of a list: the pattern's names replace the indices
                        return n, self.try_node(n, v, env)
                    out = self.try_node(Named("t", n), v, env)
                    return Named(self.pick([m for m in self.names if m not in KEYWORDS and not m.isdigit()]), n), out
                out = self.try_node(n, v, env)
                if kind != "op" and in_list and not self.inline(n) and self.chance(0.15):
                    # {concat: …} is a concat; a numbered name takes the list's index anyway: only in mappings
                    name = self.pick([m for m in self.names if m not in KEYWORDS and not m.isdigit()])
                    return Named(name, n), out
                return n, out
            except Invalid:
                self.drop_blocks(kind, blocks)
                continue
        n = Op(self.pick(["identity", "gelu", "bn"]) if align is None or True else "identity")
        return n, self.try_node(n, v, env)

    def drop_blocks(self, kind: str, since: int) -> None:
        """After an invalid skip or select node: the blocks drawn for it, unused now."""
        if kind in ("skip", "select", "share", "attnpool"):
            for b in self.spec_.blocks[since:]:
                del self.r.blocks[b.name]
            del self.spec_.blocks[since:]

    def make(self, kind: str, v: str, depth: int, env: dict[str, Any], in_list: bool, align: int | None) -> Any:
        if kind == "op":
            return self.make_op(v, env, in_list, align)
        if kind == "gate":
            return self.make_gate(v, env)
        if kind == "ceil_merge":
            return self.make_ceil_merge(v)
        if kind == "pixel_merge":
            return self.make_pixel_merge(v, env)
        if kind == "skip":
            return self.make_skip(v, env)
        if kind == "select":
            return self.make_select(v)
        if kind == "attnpool":
            return self.make_attention_pool(v)
        if kind == "share":
            return self.make_share(v, depth)
        if kind == "empty":  # an empty chain: the identity
            return Chain([], self.pick(["list", "chain_list"]))
        if kind == "chain":
            return self.make_chain(v, depth, env, align)
        merges: dict[str, Callable[[str, int, dict[str, Any], int | None], Any]] = {
            "concat": self.make_concat,
            "fusion": self.make_fusion,
            "residual": self.make_residual,
            "block": self.make_use,
            "if": self.make_if,
        }
        if kind in merges:
            return merges[kind](v, depth, env, align)
        raise ValueError(kind)

    def make_gate(self, v: str, env: dict[str, Any]) -> Gate | None:
        """Squeeze-and-excitation: [adaptive_avgpool 1x1, conv2d r 1x1, act, conv2d C 1x1, sigmoid]; or a spatial
        gate: [channel_mean or channel_max, conv2d 1 KxK keeping the size, sigmoid]."""
        s = self.r.shapes[v]
        if not s.is_map:
            return None
        c = self.r.shapes[v].c
        if self.chance(0.25):  # a spatial gate (CBAM): one value per pixel, the size kept
            k = self.pick([1, 3])
            spatial = [
                Op(self.pick(["channel_mean", "channel_max"])),
                Op("conv2d", {"out": 1, "kernel": k, "padding": k // 2}, style=self.style(), fixed=True),
                Op(self.pick(["sigmoid", "hardsigmoid"])),
            ]
            return Gate(Chain(spatial, self.pick(["list", "chain_list"])))
        body = [
            Op("adaptive_avgpool", {"size": (1, 1)}, style=self.style()),
            Op(
                self.pick(["conv2d", "conv"]),
                {"out": self.free_channel(env, c, self.rng.randint(1, 4))},
                style=self.style(),
                fixed=True,
            ),
            Op(self.pick(["relu", "silu"])),
            Op("conv2d", {"out": c}, style=self.style(), fixed=True),
            Op(self.pick(["sigmoid", "hardsigmoid"])),
        ]
        if self.chance(0.2):  # ECA (docs/language.md, `channel_conv`): one conv across the pooled channels
            args = self.pick([{}, {"kernel": self.pick([1, 3, 5])}, {"gamma": 3.0}, {"beta": 3.0}, {"gamma": 1.5, "beta": 0.5}])
            body = [body[0], Op("channel_conv", args, style=self.style()), body[-1]]
        elif self.chance(0.3):
            body = body[1:]  # one value per element: C×H×W (on a 1×1 map, a channel gate)
        return Gate(Chain(body, self.pick(["list", "chain_list"])))

    def make_chain(self, v: str, depth: int, env: dict[str, Any], align: int | None) -> Chain | None:
        items = []
        x = v
        for _ in range(self.rng.randint(1, 3)):
            n, x = self.gen(x, depth - 1, env, in_list=True, align=1 if align else None)
            items.append(n)
        if align and align > 1:
            first = self.make_op(v, env, False, align, strided=True)
            if first is None:
                return None
            items.insert(0, first)
        form = self.pick(["list", "list", "chain_list", "chain_map"])
        if form == "chain_map" and any(self.inline(i) for i in items):
            form = "list"  # an inline block's instance takes no name
        if form == "chain_map":
            items = [i.node if isinstance(i, Named) else i for i in items]
            return Chain(items, form, self.fresh_names(len(items)))
        return Chain(items, form)

    def make_if(self, v: str, depth: int, env: dict[str, Any], align: int | None) -> If:
        saved, self.param_ctx = self.param_ctx, None
        try:
            then, _ = self.gen(v, depth - 1, env, align=align)
            other = None
            if self.chance(0.5):
                other, _ = self.gen(v, depth - 1, env, align=align)
        finally:
            self.param_ctx = saved
        return If(self.maybe_param("flag", self.chance(0.5), env, 0.5), then, other)

    def channel(self, env: dict[str, Any], value: int) -> Any:
        """A channel count, sometimes as a block parameter."""
        return self.maybe_param("c", value, env, 0.35)

    def free_channel(self, env: dict[str, Any], c: int, value: int) -> Any:
        """A channel count where any will do: sometimes from the input's channels `in` (c here), in a block from
        its instance's input channels `block_in` or its index `block_index` (issue 30), else as :meth:`channel`."""
        if self.chance(0.08):
            return self.pick([Param("in"), Expr("in", "*", 2), Expr("in", "+", 1)] + ([Expr("in", "//", 2)] if c > 1 else []))
        if self.chance(0.06):  # a spec scaling itself (docs/language.md, "Families"), or at least A channels
            kind = self.pick(["int_w", "divisible_w", "max_in"])
            return Calc(kind, self.channel(env, value), self.pick([1, 2, 4]) if kind == "divisible_w" else 1)
        if self.param_ctx is not None and self.chance(0.25):
            block_in = env["block_in"]
            some = [Param("block_in"), Expr("block_in", "+", 1), Expr("block_index", "+", value)]
            return self.pick(some + ([Expr("block_in", "//", 2)] if block_in > 1 else []))
        return self.channel(env, value)

    def schedule(self, value: Any, shift: int = 0) -> Any:
        """In a block, sometimes a depth schedule (issue 30: ``${S * block_index / block_count}``) instead of value."""
        if self.param_ctx is None or not self.chance(0.5):
            return value
        return Sched(self.pick([0.1, 0.2, 0.3]), self.pick([shift, 1]))

    def make_op(self, v: str, env: dict[str, Any], in_list: bool, align: int | None, strided: bool = False) -> Op | None:
        s = self.r.shapes[v]
        name = self.op_name(s, align, strided)
        if name in ("pad", "upsample", "interpolate", "conv_transpose") and align:
            return None  # they change the size: not where branches must stay aligned
        args = self.op_args(name, s, env, align, strided)
        if args is None:
            return None
        n = Op(name, args, long=self.chance(0.2), style=self.style())
        if name in CHANNEL_OPS and self.chance(0.1):
            n.fixed = True
        if self.chance(0.12) and not n.long and not strided:
            count = self.pick([1, 2, 2, 3])
            n.repeat = self.maybe_param("n", count, env, 0.3)
            if self.chance(0.15):  # ceil(n · depth_mult), as torchvision's EfficientNet rounds its stages
                n.repeat = Calc("ceil_d", n.repeat)
        return n

    def op_name(self, s: Shape, align: int | None, strided: bool) -> str:
        if strided:
            return str(self.pick(["conv", "conv2d", "maxpool", "avgpool"]))
        if not s.is_map:
            return str(self.pick(VEC_OPS + ("linear", "channel_conv", "channel_conv")))
        h0, w0 = self.spec_.size
        wide = any(s.h[h0 - 1] % b == 0 and s.w[w0 - 1] % b == 0 for b in (3, 4))  # type: ignore[index]
        name = self.pick(MAP_OPS + ("conv", "conv2d", "conv") * 2 + ("space_to_depth",) * 3 * wide)  # B > 2 fits here too
        if set(s.h) == {1} and set(s.w) == {1} and self.chance(0.15):  # type: ignore[arg-type]
            name = "channel_conv"  # a C×1×1 map at every size (after `adaptive_avgpool 1x1`), outside a gate too
        if not align and self.chance(0.06):
            name = self.pick(TO_VEC)
            if name == "flatten" and s.c * s.h[h0 - 1] * s.w[w0 - 1] > 256:  # type: ignore[index]
                name = "global_avgpool"  # keep vectors (and the linears after them) small
        return str(name)

    def op_args(self, name: str, s: Shape, env: dict[str, Any], align: int | None, strided: bool) -> dict[str, Any] | None:
        """An op's drawn arguments; None where the input allows none."""
        args: dict[str, Any] = {}
        if name in ("conv", "conv2d", "std_conv2d", "maxpool", "avgpool"):
            args = self.window_args(name, align, strided)
        if name in ("conv", "conv2d", "std_conv2d"):
            return self.conv_args(name, s, env, args)
        if name in ("group_norm", "pad", "upsample", "interpolate"):
            return self.resize_args(name, s)
        if name in ("channel_slice", "channel_shuffle"):
            return self.channel_args(name, s)
        if name == "conv_transpose":
            return self.transpose_args(s, env)
        if name == "space_to_depth":  # docs/language.md, `space_to_depth`: B of 1 to 4, one dividing H and W here
            h0, w0 = self.spec_.size
            fits = [b for b in (1, 2, 2, 3, 4) if s.h[h0 - 1] % b == 0 and s.w[w0 - 1] % b == 0]  # type: ignore[index]
            wide = [b for b in fits if b > 2]
            block = self.pick(wide) if wide and self.chance(0.7) else self.pick([b for b in fits if b <= 2])
            return {"block": block} | self.other_args(name, env, s.c)
        if name == "weighted_sum":  # docs/language.md, `weighted_sum`: K divides the channels
            return {"branches": self.pick([k for k in (1, 2, 3) if s.c % k == 0])} | self.other_args(name, env, s.c)
        if name == "drop_path":  # p has no default; in a block sometimes the stochastic-depth schedule
            return {"p": self.schedule(self.maybe_param("p", self.pick([0.0, 0.0, 0.1, 0.3]), env, 0.2))}
        if name in ("maxpool", "avgpool"):
            if self.chance(0.25) and not align:
                args["ceil"] = True
            if name == "avgpool" and self.chance(0.3):
                args["exclude_pad"] = self.chance(0.7)
            return args
        args = self.other_args(name, env, s.c)
        if name == "leaky_relu":  # a slope rising with depth (issue 30's schedules)
            slope = self.schedule(None)
            args |= {} if slope is None else {"slope": slope}
        if name == "linear" and s.is_map:
            args["per_pixel"] = True
        return args

    def maybe_param(self, prefix: str, value: Any, env: dict[str, Any], p: float) -> Any:
        """value, or (inside a block, with probability p) a new block parameter holding it."""
        if self.param_ctx is None or not self.chance(p):
            return value
        pname = f"{prefix}{len(self.param_ctx)}"
        expr: Expr | None = None
        if prefix == "c" and self.chance(0.3):  # ${c * 2}, ${c // 2}, ${c + 1}: the parameter holds what makes value
            expr = self.pick(
                [e for e in (Expr(pname, "*", 2), Expr(pname, "//", 2), Expr(pname, "+", 1)) if e.op != "*" or value % 2 == 0]
            )
            value = {"*": value // 2, "//": value * 2, "+": value - 1}[expr.op]
            if value < 1:
                return value + 1 if expr.op == "+" else value
        self.param_ctx[pname] = value
        env[pname] = value
        return expr if expr is not None else Param(pname)

    def channel_args(self, name: str, s: Shape) -> dict[str, Any] | None:
        """channel_slice's start and stop, channel_shuffle's groups; None where the channels allow none."""
        if name == "channel_slice":
            if s.c < 2:
                return None
            start = self.rng.randint(0, s.c - 2)
            return {"start": start, "stop": self.rng.randint(start + 1, s.c)}
        groups = [g for g in (2, 3, 4) if s.c % g == 0]
        return {"groups": self.pick(groups)} if groups else None

    def resize_args(self, name: str, s: Shape) -> dict[str, Any]:
        """group_norm's groups, pad's sides, upsample's factor or fixed size."""
        if name == "group_norm":
            args: dict[str, Any] = {"groups": self.pick([g for g in (1, 2, 4, s.c) if s.c % g == 0])}
            return args | self.other_args(name, {})
        if name == "interpolate":  # to the input's size (no node is named input: the realizer checks)
            args = {"size_of": "block_in" if self.r.inputs and self.chance(0.5) else "input"}  # or the block's input
            if self.chance(0.5):
                args["mode"] = self.pick(["bilinear", "nearest"])
                if args["mode"] == "bilinear" and self.chance(0.5):
                    args["align_corners"] = self.chance(0.5)
            return args
        if name == "pad":
            args = {"padding": self.pick([0, 1, 2, (1, 0), (0, 2)])}
            if self.chance(0.35):  # docs/language.md: value only with constant padding
                return args | {"mode": self.pick(["reflect", "replicate", "circular"])}
            return args | ({"value": self.pick([0.0, -1.0, 0.5])} if self.chance(0.3) else {})
        args = {"scale": self.pick([2, 3, 0.5])} if self.chance(0.6) else {"size": self.pick([(2, 3), (5, 5)])}
        if self.chance(0.5):
            args["mode"] = self.pick(["bilinear", "bilinear", "nearest"])
            if args["mode"] == "bilinear" and self.chance(0.8):  # 0.5 drew it in none of 1000 specs once affine came
                args["align_corners"] = self.chance(0.5)
        return args

    def window_args(self, name: str, align: int | None, strided: bool) -> dict[str, Any]:
        """kernel, stride, padding, dilation of a conv or pool (aligned: size X → floor((X-1)/align)+1)."""
        pool = name in ("maxpool", "avgpool")
        k = (self.pick([1, 3, 3, 5]), self.pick([1, 3, 3, 5])) if self.chance(0.3) else (self.pick([1, 2, 3, 5]),) * 2
        if pool and self.chance(0.7) and not strided:
            k = (self.pick([2, 3]),) * 2
        d = (2, 2) if not pool and self.chance(0.15) else (1, 1)
        if name == "maxpool" and not align and self.chance(0.4):  # a dilated max pool keeps 2p <= k
            d = (2, 2)
        if align:
            k = (k[0] | 1, k[1] | 1)
            p = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
            st = (align, align) if strided else (1, 1)
        else:
            st = (self.pick([1, 1, 2, 3]),) * 2 if self.chance(0.8) else (self.pick([1, 2]), self.pick([1, 2]))
            p = (self.pick([0, 0, 1, 2]),) * 2 if self.chance(0.8) else (self.pick([0, 1]), self.pick([0, 1]))
            if pool:
                p = (min(p[0], k[0] // 2), min(p[1], k[1] // 2))
        args: dict[str, Any] = {"kernel": k}
        if st != (1, 1) or self.chance(0.2):
            args["stride"] = st
        if p != (0, 0) or self.chance(0.1):
            args["padding"] = p
        if d != (1, 1):
            args["dilation"] = d
        if not pool and self.chance(0.12):  # TensorFlow's: ceil(X / stride), aligned too (stride 1 or align)
            args["padding"] = "same"
        return args

    def conv_args(self, name: str, s: Shape, env: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
        out = self.rng.randint(2, 12)
        args: dict[str, Any] = {}
        if self.chance(0.3 if name == "std_conv2d" else 0.15):  # (std_conv2d is drawn less often)
            g = self.pick([g for g in (2, 3, 4) if s.c % g == 0] or [1])
            if self.chance(0.4):  # depthwise
                g = s.c
            out = g * self.rng.randint(1, max(1, 12 // g))
            if g != 1:
                window["groups"] = g
            if g == s.c and self.chance(0.6):  # depthwise as `dw` / `groups=in`
                window["groups"] = "in"
        args = {"out": self.channel(env, out) if "groups" in window else self.free_channel(env, s.c, out), **window}
        if self.chance(0.3):
            args["bias"] = self.chance(0.5)
        if name == "std_conv2d" and self.chance(0.4):
            args["eps"] = self.pick([1e-8, 1e-3])
        if name == "std_conv2d" and self.chance(0.4):  # timm's ScaledStdConv2d (NF-Nets)
            args["gain"] = True
            if self.chance(0.6):
                args["gamma"] = self.pick([1.7139588594436646, 0.5])
        if name == "conv":
            for key, p, values in (
                ("bn", 0.15, [False]),
                ("act", 0.3, [*ACTS, "none", "leaky_relu(0.2)", "elu(0.5)"]),
                ("eps", 0.15, [0.001, 0.01]),
                ("momentum", 0.1, [0.0, 0.3, 1.0]),
            ):
                if self.chance(p):
                    args[key] = self.pick(values)
        return args

    OTHER_ARGS: dict[str, tuple[tuple[str, float, list[Any]], ...]] = {  # op → (option, probability, values)
        "bn": (("eps", 0.2, [0.001]), ("momentum", 0.2, [0.0, 0.5, 1.0]), ("affine", 0.2, [False])),
        "frozen_bn": (("eps", 0.3, [0.001]),),
        "grn": (("eps", 0.4, [0.001, 0.1]),),
        "l2_norm": (("eps", 0.4, [1e-6, 0.5]),),
        "prelu": (("per_channel", 0.5, [True]), ("init", 0.3, [0.1, -0.5])),
        "affine": (("scale", 0.4, [0.5, -2.0]), ("bias", 0.4, [0.25, -1.0])),
        "channel_conv": (("kernel", 0.5, [1, 3, 5]), ("gamma", 0.2, [3.0, 1.5]), ("beta", 0.2, [3.0, 0.5])),
        "space_to_depth": (("order", 0.6, ["channel", "block"]),),
        "weighted_sum": (("weights", 0.6, ["fast", "softmax", "plain"]), ("eps", 0.3, [0.01, 0.5]), ("init", 0.5, [0.5, 2.0])),
        "lrn": (("size", 0.5, [1, 2, 3, 5]), ("alpha", 0.3, [0.001, 0.1]), ("beta", 0.3, [0.5, 0.75]), ("k", 0.3, [1.0, 2.0])),
        "dropout": (("p", 0.8, [0.0, 0.0, 0.0, 0.25]), ("channelwise", 0.2, [True])),
        "linear": (("bias", 0.3, [True, False]), ("per_pixel", 0.05, [True])),
        "layer_norm": (("eps", 0.3, [1e-6, 0.001]), ("affine", 0.2, [False])),
        "layer_scale": (("init", 0.8, [0.5, 2.0, 1e-6]), ("flat", 0.3, [True]), ("scalar", 0.2, [True])),
        # eps always 1e-3 or more: a group of near-equal values (after a layer scale of 1e-6) is normalised by
        # 1/sqrt(var + eps), which turns rounding differences between layouts (optimize's channels_last) into
        # errors of 1e-3 at eps 1e-5 (seed 9026): conditioning, not a miscompilation
        "group_norm": (("eps", 1.0, [1e-3, 1e-2]), ("affine", 0.2, [False])),
        "leaky_relu": (("slope", 0.6, [0.0, 0.1, 0.2]),),
        "elu": (("alpha", 0.6, [0.5, 2.0]),),
        "scale": (("factor", 1.0, [0.5, 2.0, -1.0, 0.9805806756909201]),),
    }

    def other_args(self, name: str, env: dict[str, Any], c: int = 1) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if name == "linear":
            args["out"] = self.free_channel(env, c, self.rng.randint(2, 12))
        if name in ("adaptive_avgpool", "adaptive_maxpool"):
            args["size"] = (self.rng.randint(1, 3), self.rng.randint(1, 3))
        for key, p, values in self.OTHER_ARGS.get(name, ()):
            if self.chance(p):
                args[key] = self.pick(values)
        return args

    def branch(self, v: str, depth: int, env: dict[str, Any], stride: int) -> Any:
        """One branch of a merge, mapping size X to floor((X-1)/stride)+1."""
        if stride == 1:
            n, _ = self.gen(v, depth - 1, env, align=1)
            return n
        first = self.make_op(v, env, False, stride, strided=True)
        if first is None:
            raise Invalid("no strided op")
        if self.chance(0.5):
            return first
        x = self.try_node(first, v, env)
        rest, _ = self.gen(x, depth - 1, env, in_list=True, align=1)
        return Chain([first, rest], self.pick(["list", "chain_list"]))

    def make_concat(self, v: str, depth: int, env: dict[str, Any], align: int | None) -> Concat:
        s = self.r.shapes[v]
        stride = 1 if (align == 1 or not s.is_map) else (align or self.pick([1, 1, 2]))
        k = self.rng.randint(1, 3) if self.chance(0.1) else self.rng.randint(2, 3)
        if not align and s.is_map and self.chance(0.2):  # free branches: must agree at every size anyway
            branches = [self.gen(v, depth - 1, env)[0] for _ in range(k)]
        else:
            branches = [self.branch(v, depth, env, stride) for _ in range(k)]
        if s.is_map and not align and self.chance(0.12):  # count: N, index: grp (MixNet's groups)
            return self.make_counted_concat(v, env)
        if self.chance(0.5):
            return Concat([b.node if isinstance(b, Named) else b for b in branches], self.fresh_names(k))
        return Concat(branches)

    def make_fusion(self, v: str, depth: int, env: dict[str, Any], align: int | None) -> Chain:
        """BiFPN's fusion (docs/language.md, "Weighted fusion of same-shape maps"): K branches brought to one width
        (a 1×1 conv, or a linear on a vector, ending each branch whose width differs), side by side, then
        `weighted_sum K` over them, or on a map sometimes `branch_sum K` (SKNet's sum): [concat: [...], weighted_sum K]."""
        s = self.r.shapes[v]
        stride = 1 if (align == 1 or not s.is_map) else (align or self.pick([1, 1, 2]))
        k, width = self.pick([2, 2, 3, 4]), self.rng.randint(1, 6)
        branches: list[Any] = []
        fixed = False
        for _ in range(k):
            b = self.branch(v, depth, env, stride)
            b = b.node if isinstance(b, Named) else b
            if self.r.shapes[self.try_node(b, v, env)].c != width:
                fix = Op(self.pick(["conv2d", "conv"]) if s.is_map else "linear", {"out": width}, style=self.style())
                b = Chain([*(b.items if isinstance(b, Chain) and b.form == "list" and b.repeat is None else [b]), fix], "list")
                fixed = True
            branches.append(b)
        # branches by name where a 1×1 conv ends them (unnamed, the list branches' items share the concat's prefix:
        # every fix would stand at one path); the concat and the sum named (by index, a list restarting its indices
        # among the rows would put the sum at another row's path)
        concat = Concat(branches, self.fresh_names(k) if fixed or self.chance(0.5) else None)
        if s.is_map and self.chance(0.25):
            fuse = Op("branch_sum", {"branches": k}, long=self.chance(0.2), style=self.style())
        else:
            fuse = Op("weighted_sum", {"branches": k} | self.other_args("weighted_sum", env), long=self.chance(0.2))
            fuse.style = self.style()
        return Chain([concat, fuse], "chain_map", self.pick([["cat", "fuse"], ["inputs", "w"], self.fresh_names(2)]))

    def make_counted_concat(self, v: str, env: dict[str, Any]) -> Concat:
        """docs/language.md, "Nodes": one op branch written once, count times side by side, its copy's index
        read as $grp: [conv2d ${grp + c} 1x1] (conv `k` at the copy's index) or a weightless op."""
        count = self.maybe_param("n", self.pick([1, 2, 3]), env, 0.4)
        op = Op("conv2d", {"out": Expr("grp", "+", self.rng.randint(1, 3))}, style=self.style())
        branch = self.pick([op, op, Op(self.pick(["identity", "relu", "maxpool"]), style=self.style())])
        if branch.name == "maxpool":
            branch.args = {"kernel": (3, 3), "padding": (1, 1)}
        return Concat([branch], count=count, index="grp" if branch is op or self.chance(0.5) else None)

    def make_ceil_merge(self, v: str) -> Concat:
        """Two windows of one stride, one a ceil-mode pool: they agree at some sizes only (a partial
        merge), e.g. concat: [avgpool 1x1 s3 ceil, maxpool 2x2 s3]."""
        stride = self.pick([2, 3])
        branches: list[Any] = []
        for ceil in (True, self.chance(0.3)):
            name = self.pick(["maxpool", "avgpool"]) if ceil else self.pick(["maxpool", "avgpool", "conv2d"])
            k = self.pick([1, 2, 3])
            args: dict[str, Any] = {"kernel": (k, k), "stride": (stride, stride), "padding": (self.pick([0, k // 2]),) * 2}
            if name == "conv2d":
                args["out"] = self.rng.randint(1, 4)
            elif ceil:
                args["ceil"] = True
            branches.append(Op(name, args, long=self.chance(0.2), style=self.style()))
        return Concat(branches)

    def make_pixel_merge(self, v: str, env: dict[str, Any]) -> Chain:
        """A per-pixel op, then a merge whose branch reads its output through an identity and applies
        another per-pixel op: [layer_norm, residual: {body: [identity, layer_norm]}] and its kin."""
        c = self.r.shapes[v].c

        def pixel() -> Op:
            if self.chance(0.5):
                return Op("layer_norm", self.other_args("layer_norm", env), style=self.style())
            return Op("linear", {"out": c, "per_pixel": True}, style=self.style())

        through: Any = self.pick([Op("identity"), Chain([Op("identity")], self.pick(["list", "chain_list"]))])
        branch = Chain([through, pixel()], self.pick(["list", "chain_list"]))
        other: Any = self.pick([Op("identity"), Chain([], "list"), pixel()])
        merge: Any = (
            Residual(branch, None, None, None) if self.chance(0.5) else Concat(self.pick([[other, branch], [branch, other]]))
        )
        return Chain([pixel(), merge], "list")

    def make_residual(self, v: str, depth: int, env: dict[str, Any], align: int | None) -> Residual:
        s = self.r.shapes[v]
        stride = 1 if (align == 1 or not s.is_map) else (align or self.pick([1, 1, 2]))
        if s.is_map and stride == 1 and self.chance(0.15):
            return self.make_broadcast_residual(s)
        body = self.branch(v, depth, env, stride)
        out = self.try_node(body, v, env)
        shortcut: Any = None
        fix_c = s.c
        if stride == 1 and self.r.inputs and self.r.inputs[-1] == v and self.chance(0.25):
            shortcut = Take("block_in")  # issue 30: the block's own input by name (the same value here)
        elif stride != 1 or self.chance(0.3):
            shortcut = self.branch(v, depth, env, stride)
            fix_c = self.r.shapes[self.try_node(shortcut, v, env)].c
        if self.r.shapes[out].c != fix_c:  # end the body with the channels the sum needs
            fix = Op(
                self.pick(["conv", "conv2d"]) if s.is_map else "linear", {"out": self.channel(env, fix_c)}, style=self.style()
            )
            body = Chain([body, fix], "list") if not isinstance(body, Chain) else Chain(body.items + [fix], body.form, None)
            if body.form == "chain_map":
                body.form = "list"
        scale: Any = None
        if self.chance(0.5):
            scale = self.schedule(self.maybe_param("s", self.pick([0.1, 0.5, 1.0, 2.0, -1.0]), env, 0.3), shift=1)
        then = None
        if self.chance(0.6):
            name = self.pick(["relu", "relu", "relu6", "silu", "tanh", "identity", "bn", "dropout", "leaky_relu"])
            slope = self.schedule(None) if name == "leaky_relu" else None  # in a block, a slope rising with depth
            then = Op(
                name,
                {} if slope is None else {"slope": slope},
                style=self.style(),
                repeat=self.pick([None, None, None, 1, 2]),
            )
        return Residual(body, shortcut, scale, then)

    def make_broadcast_residual(self, s: Shape) -> Residual:
        """A sum broadcasting one side onto the other (docs/language.md, "Global context"): a C×1×1 (or 1×1×1) context,
        `[adaptive_avgpool 1x1, conv2d C]`, or a 1×H×W map, `[channel_mean, conv2d 1 3x3 p1]`, added at every pixel
        (or channel) of x; as the body, or as the shortcut beside a body keeping x's shape."""
        if self.chance(0.6):
            pool = Op(self.pick(["adaptive_avgpool", "adaptive_maxpool"]), {"size": (1, 1)}, style=self.style())
            small = [pool, Op("conv2d", {"out": self.pick([s.c, s.c, 1])}, style=self.style(), fixed=True)]
        else:
            pad = {"kernel": (3, 3), "padding": (1, 1)} if self.chance(0.5) else {}
            small = [
                Op(self.pick(["channel_mean", "channel_max"])),
                Op("conv2d", {"out": 1} | pad, style=self.style(), fixed=True),
            ]
        side = Chain(small, self.pick(["list", "chain_list"]))
        scale = self.pick([None, None, 0.5, -1.0])
        then = self.pick([None, Op("relu"), Op("silu")])
        if self.chance(0.7):
            return Residual(side, None, scale, then)
        body = self.pick([Op("identity"), Op("bn"), Op("conv2d", {"out": s.c, "kernel": (3, 3), "padding": (1, 1)}, fixed=True)])
        return Residual(body, side, scale, then)

    def reuse(self) -> Use:
        """A use of an existing block, with some of its parameters passed."""
        b = self.pick(self.spec_.blocks)
        use = Use(b.name, long=self.chance(0.3), style=self.style())
        if self.in_block:
            use.repeat = self.pick([2, 3]) if self.chance(0.25) else None  # copies a names: pattern may name
            return use
        for p, val in b.params.items():
            if self.chance(0.4) and p.startswith("c"):  # sometimes from the channels the instance is applied to
                use.args[p] = self.pick([Param("in"), Expr("in", "+", 1)]) if self.chance(0.2) else self.rng.randint(2, 12)
            elif self.chance(0.4) and p.startswith("flag"):
                use.args[p] = not val
        if not use.args and b.params and self.chance(0.8):  # a value as its default: the use still fits
            p = self.pick(sorted(b.params))
            use.args[p] = b.params[p]
        if use.args and self.chance(0.3):
            use.long = True  # {block: b, params: {...}}
        if self.chance(0.15):
            use.repeat = self.pick([1, 2, 3])
        return use

    def transpose_args(self, s: Shape, env: dict[str, Any]) -> dict[str, Any]:
        """conv_transpose: output (X − 1)·s − 2p + d·(k − 1) + output_padding + 1 on each axis."""
        groups = self.pick([g for g in (1, 2, 3) if s.c % g == 0])
        out = groups * self.rng.randint(1, 4)
        args: dict[str, Any] = {"out": self.channel(env, out) if groups == 1 else out}
        args["kernel"] = self.pick([(1, 1), (2, 2), (3, 3), (2, 3)])
        stride = self.pick([(1, 1), (2, 2), (3, 1)])
        args |= {"stride": stride} if stride != (1, 1) or self.chance(0.3) else {}
        if groups > 1 or self.chance(0.2):
            args["groups"] = groups
        if self.chance(0.4):
            args["padding"] = self.pick([(0, 0), (1, 1), (0, 1)])
        if self.chance(0.3):
            args["output_padding"] = (min(1, stride[0] - 1), 0)
        if self.chance(0.45):
            args["dilation"] = (2, 2)
        if self.chance(0.45):
            args["bias"] = False
        return args

    def make_skip(self, v: str, env: dict[str, Any]) -> Use:
        """A block reading earlier values (docs/language.md, "Reading earlier values"): a U-Net level — a named
        value, a 2×2 pool, an up-convolution to twice the pooled size, and the named value cropped to it
        beside it (`crop to=up`) — or a residual whose shortcut is `{from: enc}`."""
        spec = self.spec_
        enc = Op(self.pick(["conv2d", "conv"]), {"out": self.rng.randint(1, 6), "kernel": self.pick([(1, 1), (3, 3)])})
        enc.style = self.style()
        how = self.rng.random()
        if how < 0.3 and len(spec.blocks) < 2:
            return self.make_nested_skip(v, env, enc)
        if how < 0.75:  # issue 30 (LANG): a skip merged with an upsampled map, by a whole or a non-whole factor
            k, scale, other = self.pick(self.upsampled_skips(v, enc))
            pool = Op(self.pick(["maxpool", "avgpool"]), {"kernel": (k, k), "stride": (k, k)}, style=self.style())
            mode = (
                ({"mode": "bilinear"} | ({"align_corners": self.chance(0.5)} if self.chance(0.3) else {}))
                if self.chance(0.5)
                else {}
            )
            up = Op("upsample", {"scale": scale} | mode, style=self.style())  # align_corners: rare otherwise (session 11)
            skip: Any = Take("enc")
            if other is not None:  # LANG's example: the skip pooled by another factor
                skip = Chain([Take("enc"), Op("maxpool", {"kernel": (other, other), "stride": (other, other)})])
            cat = Concat(self.pick([[skip, Op("identity")], [Op("identity"), skip]]))
            items, names = [enc, pool, up, cat], ["enc", "down", "up", "cat"]
            return self.new_blocks(v, env, [Block(f"level{len(spec.blocks)}", {}, Chain(items, "chain_map", names))])
        if how < 0.85:
            ups = [((2, 2), (0, 0), (0, 0)), ((3, 3), (1, 1), (1, 1)), ((4, 4), (1, 1), (0, 0))]  # each gives 2·X
            kernel, padding, output_padding = self.pick(ups)
            up = {"out": self.rng.randint(1, 6), "kernel": kernel, "stride": (2, 2), "padding": padding}
            up |= {"output_padding": output_padding} if output_padding != (0, 0) else {}
            skip = Chain([Take("enc"), Op("crop", {"to": "up"}, long=self.chance(0.3), style=self.style())])
            cat = Concat([skip, Op("identity")], self.pick([None, ["skip", "up"]]))
            pool = Op("maxpool", {"kernel": (2, 2), "stride": (2, 2)}, style=self.style())
            items = [enc, pool, Op("conv_transpose", up, long=self.chance(0.3), style=self.style()), cat]
            names = ["enc", "down", "up", "cat"]
        else:
            mid = Op("conv", {"out": enc.args["out"], "kernel": (3, 3), "padding": (1, 1)}, style=self.style())
            items, names = [enc, mid, Residual(Op("identity"), Take("enc"))], ["enc", "mid", "res"]
        return self.new_blocks(v, env, [Block(f"level{len(spec.blocks)}", {}, Chain(items, "chain_map", names))])

    def upsampled_skips(self, v: str, enc: Op) -> list[tuple[int, float, int | None]]:
        """(k, s, m): the level pools by k and upsamples by s; its skip, pooled by m (or not), is beside: they agree
        where floor(floor(X/k)·s) = floor(X/m), at some sizes only. Those that agree at the spec's own size (else the
        whole spec is refused, which drew these merges in 1 of 150 specs), or all of them if none does."""
        options: list[tuple[int, float, int | None]] = [(2, 2, None), (3, 3, None), (3, 1.5, 2), (5, 2.5, 2), (6, 1.5, 4)]
        xs, (h0, w0) = self.r.shapes[v], self.spec_.size
        shrink = enc.args["kernel"][0] - 1  # enc is unpadded
        sides = [xs.h[h0 - 1] - shrink, xs.w[w0 - 1] - shrink]  # type: ignore[index]

        def agree(k: int, s: float, m: int | None) -> bool:
            return all(x // k > 0 and math.floor(x // k * s) == (x if m is None else x // m) for x in sides)

        return [o for o in options if agree(*o)] or options

    def new_blocks(self, v: str, env: dict[str, Any], blocks: list[Block]) -> Use:
        """Add blocks (each using only those before it); a use of the last. Not tried at v here: gen places the use
        once (placed twice at one path, the blocks' own names would be ambiguous: no network ever used them) and
        drops the blocks when that placement is invalid (:meth:`drop_blocks`)."""
        spec = self.spec_
        for block in blocks:
            spec.blocks.append(block)
            self.r.blocks[block.name] = block
        return Use(blocks[-1].name, style=self.style())

    def make_select(self, v: str) -> Use:
        """A block weighing K branches by the softmax over them (docs/language.md, "Attention over branches"): the
        branches (size-keeping convs, concatenated), their sum pooled and squeezed into K·C logits (ordered group,
        branch, channel when G groups), `branch_select K of=paths`."""
        spec, k, g = self.spec_, self.pick([1, 2, 2, 3]), self.pick([1, 1, 2])
        c = g * self.rng.randint(1, 3)
        paths = []
        for i in range(k):  # 3×3 dilated i + 1, padded to keep the size, or 1×1
            d = i + 1 if self.chance(0.7) else 0
            shape = {"kernel": (3, 3), "padding": (d, d), "dilation": (d, d)} if d else {"kernel": (1, 1)}
            paths.append(Op(self.pick(["conv2d", "conv"]), {"out": c} | shape, style=self.style(), fixed=True))
        attn = [
            Op("branch_sum", {"branches": k}, long=self.chance(0.3), style=self.style()),
            Op("adaptive_avgpool", {"size": (1, 1)}, style=self.style()),
            Op("conv2d", {"out": self.rng.randint(1, 4)}, style=self.style(), fixed=True),
            Op(self.pick(["relu", "silu"])),
            Op("conv2d", {"out": k * c, "groups": g} if g > 1 else {"out": k * c}, style=self.style(), fixed=True),
        ]
        select = {"branches": k, "of": "paths"} | ({"groups": g} if g > 1 or self.chance(0.3) else {})
        items = [
            Concat(paths, self.pick([None, [f"p{i}" for i in range(k)]])),
            Chain(attn, self.pick(["list", "chain_list"])),
            Op("branch_select", select, long=self.chance(0.3), style=self.style()),
        ]
        return self.new_blocks(
            v, {}, [Block(f"select{len(spec.blocks)}", {}, Chain(items, "chain_map", ["paths", "attn", "select"]))]
        )

    def make_attention_pool(self, v: str) -> Use:
        """A block pooling a map by attention (docs/language.md, "Global context"): the map (a size-keeping conv), its
        logits (a 1×1 conv to 1 or C channels), `attention_pool of=m`: C×1×1."""
        spec, c = self.spec_, self.rng.randint(1, 4)
        shape = {"kernel": (3, 3), "padding": (1, 1)} if self.chance(0.5) else {"kernel": (1, 1)}
        items = [
            Op(self.pick(["conv2d", "conv"]), {"out": c} | shape, style=self.style(), fixed=True),
            Op("conv2d", {"out": self.pick([1, 1, c])}, style=self.style(), fixed=True),
            Op("attention_pool", {"of": "m"}, long=self.chance(0.3), style=self.style()),
        ]
        body: Any = Chain(items, "chain_map", ["m", "logits", "pool"])
        if self.chance(0.5):  # GCNet's block: x + fc(attention_pool of its own input), the context broadcast onto x
            x = self.r.shapes[v].c
            ctx = [
                Op("conv2d", {"out": self.pick([1, 1, x])}, style=self.style(), fixed=True),
                Op("attention_pool", {"of": "block_in"}, long=self.chance(0.3), style=self.style()),
                Op("conv2d", {"out": x}, style=self.style(), fixed=True),
            ]
            body = Residual(Chain(ctx, "chain_map", ["conv_attn", "pool", "fc"]), None, None, self.pick([None, Op("relu")]))
        return self.new_blocks(v, {}, [Block(f"attnpool{len(spec.blocks)}", {}, body)])

    def make_share(self, v: str, depth: int) -> Use | None:
        """A block applying one of its parts again with the same modules (docs/language.md, "Shared weights"), named
        inside the instance: twice in a row (the part ends with the block's input channels, `${block_in}`), after a
        pool or an upsampling (the copy at other sizes), once more or twice (`{chain: [{share: p}], repeat: 2}`),
        or beside the part in a merge, another op first (CBAM's MLP on the max-pooled map: `{concat: {a: part, b:
        [maxpool 3x3 p1, {share: m.a}]}}`, or the part as a residual's body and its copy as the shortcut)."""
        s, spec = self.r.shapes[v], self.spec_
        params: dict[str, Any] = {}
        saved, self.param_ctx = self.param_ctx, params
        self.in_block += 1
        inner: dict[str, Any] = {"block_in": s.c, "block_index": 0, "block_count": PROVISIONAL_COUNT}
        self.r.inputs.append(v)
        try:
            part, out = self.gen(v, depth - 1, inner, in_list=True)
        finally:
            self.param_ctx = saved
            self.in_block -= 1
            self.r.inputs.pop()
        part = part.node if isinstance(part, Named) else part
        if self.inline(part) or isinstance(part, Take):
            return None
        if not _weighted(part):  # weights to share (a weightless part applied again shows nothing of the modules called twice)
            conv = Op("conv" if self.chance(0.5) else "conv2d", {"out": self.rng.randint(1, 6)}, style=self.style())
            if self.r.shapes[out].is_map and self.chance(0.5):
                conv.args |= {"kernel": (3, 3), "padding": (1, 1)}
            if not self.r.shapes[out].is_map:
                conv = Op(self.pick(["linear", "bn", "layer_norm"]), style=self.style())
                conv.args = {"out": self.rng.randint(1, 6)} if conv.name == "linear" else {}
            part = Chain([part, conv], self.pick(["list", "chain_list"]))
            out = self.try_node(conv, out, {})
        again: Any = Share("p")
        if self.chance(0.2):
            again = Chain([again], "chain_list", repeat=self.pick([1, 2]))
        how = self.rng.random()
        if how < 0.45 or not s.is_map:  # the part keeps the channels (a 1×1 projection to them last), then again
            if self.r.shapes[out].c != s.c or self.r.shapes[out].is_map != s.is_map:
                fix = Op("conv2d" if self.r.shapes[out].is_map else "linear", {"out": Param("block_in")}, style=self.style())
                part = Chain([part, fix], self.pick(["list", "chain_list"]))
            items, names = [part, again], ["p", "q"]
            if how < UNREAD_CHANCE:  # the part's own value read by nothing, its copy (on the block's input) read
                items, names = [part, Take("block_in"), again], ["p", "back", "q"]
            elif how > 0.3 and s.is_map:  # at other sizes
                scale = self.pick([Op("maxpool", {"kernel": (2, 2), "stride": (2, 2)}), Op("upsample", {"scale": 2})])
                items, names = [part, scale, again], ["p", "resize", "q"]
        else:  # beside the part in a merge, after an op keeping the channels and the size
            pre = self.pick(
                [Op("maxpool", {"kernel": (3, 3), "padding": (1, 1)}), Op("avgpool", {"kernel": (3, 3), "padding": (1, 1)})]
                + [Op(self.pick(["bn", "relu", "tanh"])), Op("channel_shuffle", {"groups": 1}), Chain([], "list")]
            )
            other = Chain([pre, Share("m.a")], self.pick(["list", "chain_list"]))
            merge: Any = Concat([part, other], ["a", "b"])
            if self.chance(0.5):
                merge = Residual(Chain([part], "chain_map", ["a"]), other, None, self.pick([None, Op("relu")]))
            items, names = [merge], ["m"]
        written = _params_in(Chain(items))
        body = Chain(items, "chain_map", names)
        block = Block(f"shared{len(spec.blocks)}", {k: v for k, v in params.items() if k in written}, body)
        return self.new_blocks(v, {}, [block])

    def make_nested_skip(self, v: str, env: dict[str, Any], enc: Op) -> Use:
        """A block inside a block reading the outer instance's value (issue 30, LANG: from:, crop to= and
        interpolate size_of= look in each enclosing instance): `dec: [up: interpolate size_of=enc, concat:
        [identity, {from: enc}]]` used in `level: {enc: conv, down: pool, dec: dec}`; or the inner block's own
        input as a value (`{from: block_in}`)."""
        n = len(self.spec_.blocks)
        up = Op("interpolate", {"size_of": "enc"} | ({"mode": "bilinear"} if self.chance(0.5) else {}), style=self.style())
        cat = Concat(self.pick([[Op("identity"), Take("enc")], [Take("enc"), Op("identity")]]))
        items, names = [up, cat], ["up", "cat"]
        if self.chance(0.4):  # the inner instance's input (the pooled map), brought to enc's size, beside it
            items.append(Concat([Op("identity"), Chain([Take("block_in"), Op("interpolate", {"size_of": "enc"})])]))
            names.append("side")
        dec = Block(f"dec{n}", {}, Chain(items, "chain_map", names))
        pool = Op(self.pick(["maxpool", "avgpool"]), {"kernel": (2, 2), "stride": (2, 2)}, style=self.style())
        level = Block(f"level{n + 1}", {}, Chain([enc, pool, Use(dec.name)], "chain_map", ["enc", "down", "dec"]))
        return self.new_blocks(v, env, [dec, level])

    def block_body(self, v: str, depth: int, inner: dict[str, Any], align: int | None) -> Any:
        """A block's body: a concat, residual, chain, gate, op or if (None: none fits here)."""
        kind = self.pick(["concat", "residual", "chain", "op", "gate", "if"])
        if kind == "gate":
            return self.make_gate(v, inner)
        if kind == "if":  # docs/language.md, "Blocks and parameters": the body is an if, the chosen op at the instance's
            # path; both branches ops (an instance choosing nothing keeps its row in archspec, the truth drops rows
            # without ops: seed 2600168, left to FUZZ)
            then, other = self.make_op(v, inner, False, align), self.make_op(v, inner, False, align)
            if then is None or other is None:
                return None
            return If(self.maybe_param("flag", self.chance(0.5), inner, 0.5), then, other, as_op=self.chance(0.5))
        if kind == "op":
            body = self.make_op(v, inner, False, align)
            return None if body is None or body.long else body
        if kind == "chain":
            items, x = [], v
            for _ in range(self.rng.randint(1, 3)):
                n, x = self.gen(x, depth - 1, inner, in_list=True, align=1 if align else None)
                items.append(n)
            body = Chain(items, self.pick(["list", "chain_list"]))
            if self.chance(0.3) and not align:  # its last item repeated, the copies named by a pattern with a parameter
                last = Chain([items[-1]], "chain_list", repeat=2, pattern=self.draw_pattern(inner, p=1.0))
                named = Chain(items[:-1] + [Named(self.pick(["stage", "layer"]), last) if self.chance(0.5) else last])
                try:
                    self.try_node(named, v, inner)
                    return Chain(named.items, body.form)
                except Invalid:
                    pass
            return body
        if kind == "concat":
            return self.make_concat(v, depth, inner, align)
        return self.make_residual(v, depth, inner, align)

    def make_use(self, v: str, depth: int, env: dict[str, Any], align: int | None) -> Use | None:
        spec = self.spec_
        if self.in_block or (spec.blocks and self.chance(0.5)):  # an earlier block (inside a block: always)
            return self.reuse() if spec.blocks else None
        if len(spec.blocks) >= 3:
            return None
        params: dict[str, Any] = {}
        saved, self.param_ctx = self.param_ctx, params
        self.in_block += 1
        # what the body's fragments are tried with: the parameters (maybe_param adds to both) and the names every
        # block defines, as at a first instance (the truth works out each instance's own)
        inner: dict[str, Any] = {"block_in": self.r.shapes[v].c, "block_index": 0, "block_count": PROVISIONAL_COUNT}
        self.r.inputs.append(v)  # block_in as a value, while the body is drawn
        try:
            body = self.block_body(v, depth, inner, align)
        finally:
            self.param_ctx = saved
            self.in_block -= 1
            self.r.inputs.pop()
        if body is None:
            return None
        name = (
            f"blk{len(spec.blocks)}"
            if self.chance(0.5)
            else self.pick(["inception_a", "reduction", "stem_block", "res_unit"]) + str(len(spec.blocks))
        )
        written = _params_in(body)
        for p in list(params):  # drawn for fragments that were thrown away
            if p not in written:
                del params[p]
        block = Block(name, params, body, label=self.pick([None, "Some Block"]), doc=self.pick([None, None, "a block"]))
        if self.chance(0.2):  # issue 30: an instance adds no path segment
            block.inline = True
        shared = [b.counter for b in spec.blocks if b.counter is not None]
        if self.chance(0.7 if shared else 0.4):  # issue 30: block_index/block_count over the blocks naming one counter
            block.counter = self.pick(shared or ["depth", "units"])
            if isinstance(body, Chain) and body.form != "chain_map" and not _params_in(body) & {"block_index", "block_count"}:
                # a schedule over the counter: a stochastic-depth rate, or a slope the outputs show
                rate = Sched(self.pick([0.1, 0.2, 0.3]), self.pick([0, 1]))
                body.items.append(Op(self.pick(["drop_path", "leaky_relu"]), {"p": rate}, style=self.style()))
                if body.items[-1].name == "leaky_relu":
                    body.items[-1].args = {"slope": rate}
        spec.blocks.append(block)
        self.r.blocks[name] = block
        use = Use(name, long=self.chance(0.3), style=self.style())
        if params and self.chance(0.3):  # a parameter passed its default value: the use fits as drawn
            p = self.pick(sorted(params))
            use.args[p] = params[p]
        if self.chance(0.15):
            use.repeat = self.pick([1, 2])
        try:
            self.try_node(use, v, env)
        except Invalid:
            spec.blocks.pop()
            del self.r.blocks[name]
            raise
        return use


def _weighted(n: Any) -> bool:
    """Whether a node may hold weights: an op with state under it, or a block instance or gate (a part that shares
    none shows nothing of a module called twice)."""
    return any(isinstance(m, (Use, Gate)) or (isinstance(m, Op) and m.name in (*STATEFUL, "conv")) for m in _walk(n))


def _params_in(n: Any) -> set[str]:
    """The parameters and defined names (in, block_in, block_index, block_count) a node or value reads."""
    if isinstance(n, Param):
        return {n.name}
    if isinstance(n, Expr):
        return {n.name} | ({n.k} if isinstance(n.k, str) else set())
    if isinstance(n, Sched):
        return {"block_index", "block_count"}
    if isinstance(n, Pattern):
        return _params_in(n.parts)
    if isinstance(n, Calc):
        names = {"int_w": "width_mult", "divisible_w": "width_mult", "ceil_d": "depth_mult", "max_in": "in"}
        return _params_in(n.a) | {names[n.kind]}
    if isinstance(n, (list, tuple)):
        return set().union(*(_params_in(e) for e in n)) if n else set()
    if isinstance(n, dict):
        return _params_in(list(n.values()))
    if isinstance(n, (Op, Use, Chain, Named, Concat, Residual, If, Gate)):
        return _params_in(list(vars(n).values()))
    return set()


def generate(seed: int, faults: set[str] | frozenset[str] = frozenset(KNOWN_FAULTS), size: int = 1) -> tuple[Spec, Truth]:
    """One valid spec tree and its truth, from a seed."""
    return Gen(seed, faults, size).spec()


def specs(faults: set[str] | frozenset[str] = frozenset(KNOWN_FAULTS), size: int = 1) -> Any:
    """A hypothesis strategy of (seed, spec tree, truth)."""
    from hypothesis import strategies as st

    return st.integers(0, 2**32 - 1).map(lambda seed: (seed, *generate(seed, faults, size)))


def _cover_op(n: Op, seen: set[str]) -> None:
    seen.add(f"op:{n.name}")
    seen.update(f"opt:{n.name}.{k}" for k in n.args)
    if n.args.get("groups") == "in":
        seen.add("node:groups-in")
    if any(isinstance(v, Expr) for v in n.args.values()):
        seen.add("node:expr")
    for flag, key in (
        (n.long, "op-long"),
        (n.repeat is not None, "op-repeat"),
        (n.fixed, "op-fixed"),
        (bool(_params_in(n)), "param"),
    ):
        if flag:
            seen.add(f"node:{key}")


def _cover_use(n: Use, seen: set[str]) -> None:
    seen.add("node:use-long" if n.long else "node:use-short")
    if n.pattern is not None:
        seen.add("node:repeat-names")
    if n.args:
        seen.add("node:use-args")
    if n.repeat is not None:
        seen.add("node:use-repeat")


def _cover_residual(n: Residual, seen: set[str]) -> None:
    seen.update({"node:residual", "op:add"})
    if n.shortcut is not None:
        seen.add("node:residual-shortcut")
    if n.scale is not None:
        seen.update({"node:residual-scale", "opt:add.scale"})
        if isinstance(n.scale, Param):
            seen.add("node:param")
    if n.then is not None:
        seen.add("node:residual-then")


def _cover_node(n: Any, seen: set[str]) -> None:
    if isinstance(n, Op):
        _cover_op(n, seen)
    elif isinstance(n, Use):
        _cover_use(n, seen)
    elif isinstance(n, (Named, Take, Share)):
        seen.add({Named: "node:named", Take: "node:from", Share: "node:share"}[type(n)])
    elif isinstance(n, Gate):
        seen.update({"node:gate", "op:mul"})
    elif isinstance(n, Chain):
        seen.add(f"node:chain-{n.form}")
        if n.repeat is not None:
            seen.add("node:chain-repeat")
        if n.pattern is not None:
            seen.add("node:repeat-names")
        if not n.items:
            seen.add("node:empty-chain")
    elif isinstance(n, Concat):
        seen.add("node:concat-map" if n.names else "node:concat-list")
        if len(n.branches) > 1:
            seen.add("op:concat")
    elif isinstance(n, Residual):
        _cover_residual(n, seen)
    elif isinstance(n, If):
        seen.add("node:if-param" if isinstance(n.cond, Param) else f"node:if-{str(n.cond).lower()}")
        if n.other is not None:
            seen.add("node:if-else")


def _children(n: Any) -> list[Any]:
    if isinstance(n, (Named, Gate)):
        return [n.node] if isinstance(n, Named) else [n.body]
    if isinstance(n, Chain):
        return list(n.items)
    if isinstance(n, Concat):
        return list(n.branches)
    if isinstance(n, Residual):
        return [c for c in (n.body, n.shortcut, n.then) if c is not None]
    if isinstance(n, If):
        return [c for c in (n.then, n.other) if c is not None]
    return []


def _walk(n: Any) -> list[Any]:
    """n and every node under it (not into blocks)."""
    out = [n]
    for c in _children(n):
        out += _walk(c)
    return out


def _cover_issue30(spec: Spec, roots: list[Any], seen: set[str]) -> None:
    """issue 30's constructs: block_in, block_index …, inline blocks, counters, families, frozen parameters."""
    for root in roots:  # the names every block defines, depth schedules, names: with parameters
        for n in _walk(root):
            names = _params_in([v for k, v in vars(n).items() if k not in ("items", "branches", "body", "node", "then")])
            seen.update(f"node:{b}" for b in BUILTIN if b in names)
            pattern = getattr(n, "pattern", None)
            if isinstance(pattern, Pattern) and _params_in(pattern):
                seen.add("node:names-param")
            if isinstance(pattern, Pattern) and any(isinstance(p, Field) for p in pattern.parts):
                seen.add("node:names-field")
    counters = [b.counter for b in spec.blocks if b.counter is not None]
    seen.update({"node:inline"} if any(b.inline for b in spec.blocks) else set())
    seen.update({"node:counter"} if counters else set())
    seen.update({"node:counter-shared"} if len(counters) > len(set(counters)) else set())
    if spec.variants:
        seen.add("node:variants")
        seen.update({"node:variant-written"} if spec.variant is not None else set())
    if spec.frozen:
        seen.add("node:frozen")
        seen.update({"node:frozen-pattern"} if any(c in f for f in spec.frozen for c in "*[") else set())


def coverage(spec: Spec) -> set[str]:
    """What a spec tree uses: ops, options, node kinds and spellings, overrides (for coverage tests)."""
    seen: set[str] = set()
    roots = [spec.network] + [b.body for b in spec.blocks] + [a.head for a in spec.aux]
    for root in roots:
        for n in _walk(root):
            _cover_node(n, seen)
    seen.add("node:network-map" if spec.network.form == "chain_map" else "node:network-list")
    for root in roots:
        for n in _walk(root):
            if any(k.isdigit() for k in getattr(n, "names", None) or []):
                seen.add("node:numbered-name")
    _cover_issue30(spec, roots, seen)
    for b in spec.blocks:
        seen.add(f"node:block-{'op' if isinstance(b.body, Op) else type(b.body).__name__.lower()}")
        if any(isinstance(u, Use) for u in _walk(b.body)):
            seen.add("node:block-nested")
    if spec.aux:
        seen.add("node:aux")
    if spec.outputs is not None:
        seen.add("node:outputs-map" if spec.outputs_map else "node:outputs-list")
    if spec.defaults:
        seen.add("node:defaults")
        seen.update(f"opt:{op}.{k}" for op, d in spec.defaults.items() for k in d)
    seen.update(f"node:scale-{k}" for k in ("width", "depth") if k in spec.scale)
    for k in spec.overrides:
        seen.add("set:" + (k if k.split(".")[0] in ("input", "scale") else k.split(".")[0]))
    return seen | language_keys(render(spec))


# ---- the language's keys and names in the text (tests/test_differential.py checks every one is drawn) ----------

_NODE_KEYS = {  # a mapping holding this key and only keys of its kind (docs/language.md) is that kind of node
    "residual": ("residual", {"residual"}),
    "chain": ("chain", {"chain", "repeat", "names"}),
    "block": ("blockref", {"block", "params", "repeat", "names"}),
    "if": ("if", {"if", "then", "else"}),
    "from": ("from", {"from"}),
    "share": ("share", {"share"}),
    "gate": ("gate", {"gate"}),
    "concat": ("concat", {"concat", "count", "index"}),
}
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _walk_data(d: Any, seen: set[str]) -> None:
    """The keys of every node of the YAML data of a network, a block body or an aux head."""
    if isinstance(d, list):
        for e in d:
            _walk_data(e, seen)
        return
    if not isinstance(d, dict):
        return
    kind = next((_NODE_KEYS[k][0] for k in d if k in _NODE_KEYS and set(d) <= _NODE_KEYS[k][1]), None)
    if kind == "residual" and isinstance(d["residual"], dict):
        seen.update(f"key:residual.{k}" for k in d["residual"])
        d = d["residual"]
    elif kind is not None:
        seen.update(f"key:{kind}.{k}" for k in d)
    if kind is None and "op" in d:
        seen.add("key:op.op")
        return
    for k, v in d.items():
        if kind is None or k in ("chain", "concat", "body", "shortcut", "then", "else", "gate"):
            _walk_data(v, seen)


def language_keys(text: str) -> set[str]:
    """What a spec's YAML text uses of the language: its keys at the top level, under input:, scale:, each
    block and aux head and in every node (``key:WHERE.KEY``), and the names every expression may read
    (``name:block_index`` …: in ``$NAME`` or ``${...}``)."""
    import re

    data = yaml.safe_load(text)
    seen = {f"key:spec.{k}" for k in data}
    seen |= {f"key:input.{k}" for k in data.get("input", {})} | {f"key:scale.{k}" for k in data.get("scale", {})}
    for b in (data.get("blocks") or {}).values():
        seen |= {f"key:block.{k}" for k in b}
        for body in ("chain", "concat", "gate", "op", "then", "else"):
            _walk_data(b.get(body), seen)
        if "residual" in b:
            _walk_data({"residual": b["residual"]}, seen)
    for a in (data.get("aux") or {}).values():
        seen |= {f"key:aux.{k}" for k in a}
        _walk_data(a["head"], seen)
    _walk_data(data["network"], seen)
    exprs = re.findall(r"\$\{([^}]*)\}", text) + re.findall(r"\$(" + _NAME + ")", text)
    seen |= {f"name:{n}" for e in exprs for n in re.findall(r"(?<![\w.])" + _NAME, e)}
    return seen
