"""The op registry: one entry per op, owning everything about it.

An entry is a subclass of :class:`Op` decorated with :func:`register`. It declares its
parameters as a pydantic model (which is also its long form and its JSON Schema), how its
short form maps onto those parameters, its shape rule, its parameter and MAC counts, and its
PyTorch builder. No other stage branches on op names.

Nothing here imports torch: checking, summarising and rendering must stay torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from archspec.symbolic import Dim, Shape


class OpParams(BaseModel):
    """Base of every op's parameter model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no NaN or infinite values


class OpShapeError(Exception):
    """Raised by a shape rule; the shapes stage turns it into a located SpecError."""

    def __init__(self, message: str, hint: str | None = None, code: str = "shape") -> None:
        super().__init__(message)
        self.hint = hint
        self.code = code


class Call(Protocol):
    """What `archspec import` saw: a module (its attributes) or a call (its arguments after the input)."""

    def get(self, name: str, default: Any = None) -> Any: ...


class Unreadable(Exception):
    """Raised by a reader: the torch form holds something the op cannot express (the importer locates it)."""


@dataclass(frozen=True)
class Reader:
    """One torch form an op is read from by `archspec import` (see :attr:`Op.readers`).

    ``target`` is the dotted name of an ``nn.Module`` class or a function (imported only by the
    importer, and only when the package is installed), or ``Tensor.NAME`` for a tensor method.
    ``args`` names a function's or method's parameters after the input tensor, in order, so that
    :meth:`Op.read` asks for them by name as it asks a module for its attributes. ``structural``
    names the importer's method for forms that are not one op with parameters (a merge, a reshape, a
    pass-through): ``read_<structural>`` of ``archspec.importer.convert.Converter`` or of its form readers
    (``archspec.importer.forms``).
    ``sets`` fixes fields whatever the form's attributes say: timm's ``Conv2dSame`` is an
    ``nn.Conv2d`` whose ``padding`` attribute is 0 and which pads ``same`` at run time.
    """

    target: str
    args: tuple[str, ...] = ()
    structural: str | None = None
    sets: tuple[tuple[str, Any], ...] = ()


class Op:
    """Base class of registry entries. Subclasses set the class attributes and override rules."""

    name: ClassVar[str]
    Params: ClassVar[type[OpParams]] = OpParams
    doc: ClassVar[str] = ""
    kind: ClassVar[str] = "misc"  # family, for colours and legends: conv, pool, norm, act, linear, merge, misc
    positional: ClassVar[tuple[str, ...]] = ()  # fields filled by bare numbers, in order
    grid: ClassVar[str | None] = None  # field filled by an AxB token
    flags: ClassVar[dict[str, tuple[str, Any]]] = {}  # bare word -> (field, value)
    arity: ClassVar[int | None] = 1  # inputs it takes; None for any number >= 1
    stateful: ClassVar[bool] = False  # has parameters or buffers: built as a module at its path
    channels: ClassVar[str | None] = None  # the field setting the output channels; the width multiplier scales it
    # Its output is a new tensor (never a view or one of its inputs) that its own backward does not
    # read: the only outputs the compiler may overwrite in place (ReLU in place, a residual sum
    # accumulated into its body). An op whose backward reads its output (sigmoid, tanh, relu) or that
    # may return its input or a view (identity, dropout and drop_path in eval, flatten) must leave this False.
    fresh_output: ClassVar[bool] = False
    standalone: ClassVar[bool] = True  # False for merges, which only the concat and residual nodes create
    # How the compiler calls a stateless op, when not simply ``function(p)(*inputs)``:
    # its output has its input's shape whatever its parameters, and what it accepts does not depend on a number
    # (an activation, dropout): parameters read from block_index may differ between copies of one block instance
    # (graph/instances.py), a shape worked out in one holds in all
    keeps_shape: ClassVar[bool] = False
    passthrough: ClassVar[bool] = False  # the output is the input itself (identity): no call at all
    variadic: ClassVar[bool] = False  # the function takes its inputs as one list (torch.cat)
    train_module: ClassVar[bool] = False  # no state, but follows train()/eval(): built as a module (dropout)
    # no state, but called as a module (``train_module_of`` builds it; a standalone file defines its class):
    # ``interpolate``, whose call reads the size of a second input
    stateless_module: ClassVar[bool] = False
    # Inputs that merged branches must agree on, checked (and located) by the shapes stage:
    # "hw" (concat: H and W), "chw" (a residual sum: everything); None: the op's own rule checks.
    agreement: ClassVar[str | None] = None
    # What autograd keeps for this op's backward, for the activation-memory estimate of summary:
    # "in" its (first) input, "out" its output, "w" its weight, "stats" (BatchNorm's γ and statistics),
    # "ln" (LayerNorm's weight and bias, and its mean and 1/σ per normalised group),
    # "indices" (max pool), "mask" (dropout), "lrn" (local response norm's intermediates); () for sizes only.
    saved_for_backward: ClassVar[tuple[str, ...]] = ("in",)
    view: ClassVar[bool] = False  # its output shares its input's memory (flatten, identity, a channel slice)
    # The torch.nn layer computing what ``function`` does, built from the same keyword arguments
    # (``MaxPool2d`` for ``F.max_pool2d``): the standalone file writes it where a numbered container
    # (an nn.Sequential) needs a layer. None: the op is always written as a function call.
    layer: ClassVar[str | None] = None
    # Its module acts on the last axis (nn.Linear, nn.LayerNorm): on a C×H×W map the compiler calls it with
    # the channels moved last (x.permute(0, 2, 3, 1)) and moves them back after, as torchvision's ConvNeXt does
    # (then .contiguous() where the layout would reach other ops, see compile._stays_channels_last).
    channels_last_on_maps: ClassVar[bool] = False
    # Its torch kernel must not be given a channels-last map (GroupNorm's sums x and x² in one pass on one, and
    # its variance cancels): where its input may be channels-last (after a residual sum whose body a per-pixel
    # layer ends, see compile._stays_channels_last), the compiler hands it a channels-first copy.
    channels_first_input: ClassVar[bool] = False
    # Its state is one tensor at its path, an ``nn.Parameter`` of the enclosing module (torchvision's
    # ``CNBlock.layer_scale``), not a module: the compiler reads it and calls ``function(p)(*inputs, tensor)``.
    parameter_only: ClassVar[bool] = False
    # Its module's constructor sets constants only (a norm's γ=1, β=0 and statistics), nothing drawn: the
    # compiler builds its prototype plainly on the CPU, in half the time of the meta device under SkipInit.
    constant_init: ClassVar[bool] = False
    # How `archspec import` reads it back from torch (the inverse of its builder): the modules, functions and
    # tensor methods it comes from, each read by :meth:`read`. An op with none says why in ``not_imported``.
    readers: ClassVar[tuple[Reader, ...]] = ()
    # Fields that name an earlier value (a module path, as ``from:`` does): each becomes one more input,
    # after the op's own, in order (``crop to=up``, ``interpolate size_of=up`` read the value at ``up`` for its size).
    reads_values: ClassVar[tuple[str, ...]] = ()
    # An activation's one number (leaky_relu's slope): the field a composite conv's ``act=NAME(V)`` sets
    # (archspec/ops/conv.py); None for an op that takes no number there.
    number: ClassVar[str | None] = None
    not_imported: ClassVar[str | None] = None

    # ---- its documentation: ``doc`` may end its first sentence with "Short form: SYNOPSIS" -------
    @property
    def short_form(self) -> str | None:
        """The short-form synopsis from the doc's "Short form:" clause, or None when it has none."""
        _, found, rest = self.doc.partition("Short form: ")
        return rest.split("; ")[0].split(". ")[0].rstrip(". ") if found else None

    @property
    def description(self) -> str:
        """The doc without its "Short form:" clause, ending in a full stop."""
        before, found, rest = self.doc.partition("Short form: ")
        if not found:
            return self.doc.rstrip(".") + "."
        tail = next((rest.split(sep, 1)[1] for sep in ("; ", ". ") if sep in rest), "")
        return (before.strip() + " " + tail.strip()).strip().rstrip(".") + "."

    # ---- rules -----------------------------------------------------------------------------
    def expand(self, p: Any) -> list[tuple[str, str, dict[str, Any]]] | None:
        """Composite ops return their primitive chain as (child name, op, params); others None."""
        return None

    def infer(self, p: Any, inputs: list[Shape]) -> Shape:
        """Output shape from input shapes, or OpShapeError."""
        raise NotImplementedError

    def least_input(self, p: Any) -> tuple[int, int]:
        """The least input height and width at which every output value is defined, where that is more
        than a non-empty output needs (a dilated max pool whose first window can straddle a small map)."""
        return (1, 1)

    def agreeing_sizes(self, p: Any, inputs: list[Shape]) -> list[tuple[int, Dim, Dim, str]]:
        """Pairs of sizes (axis 0: H, 1: W) that must be equal for the op to be defined, as a merge's branches
        must agree (space_to_depth's H = B·floor(H/B)), each with what that asks in words ("a multiple of 4"):
        the input sizes where they differ are refused, by ``check`` at the spec's size (a located error) and by
        the built network's input guard at others."""
        return []

    def param_count(self, p: Any, inputs: list[Shape], out: Shape) -> int:
        return 0

    def macs(self, p: Any, inputs: list[Shape], out: Shape, h: int, w: int) -> int:
        """Multiply-accumulates for one image of size h×w."""
        return 0

    def macs_formula(self, p: Any, inputs: list[Shape], out: Shape) -> str:
        return "0"

    def module(self, p: Any, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        """The torch module holding this op's state (stateful ops only), its tensors on ``device``.

        It may depend on the shapes' channels and rank, never on their sizes: the compiler builds
        one module per distinct (params, channels, rank) on the ``meta`` device and copies it for
        every use.
        """
        raise NotImplementedError

    def function(self, p: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
        """For stateless ops (and ``parameter_only`` ones): the torch function and its keyword arguments."""
        raise NotImplementedError

    def parameter(self, p: Any, inputs: list[Shape], out: Shape) -> tuple[tuple[int, ...], float]:
        """For ``parameter_only`` ops: the tensor's shape and the value it starts at (torch-free)."""
        raise NotImplementedError

    def in_place(self, p: Any) -> Callable[..., Any] | None:
        """An in-place form of this op, called ``fn(the input named by in_place_input, *the others)``;
        the compiler uses it only when that input may be overwritten (see ``fresh_output``). Imports torch."""
        return None

    def in_place_input(self, p: Any) -> int | None:
        """Which input :meth:`in_place` overwrites, without importing torch (None: no in-place form)."""
        return None

    def train_module_of(self, p: Any) -> Any:
        """For ``train_module`` and ``stateless_module`` ops: the stateless torch module to build."""
        raise NotImplementedError

    def read(self, call: Call) -> dict[str, Any] | None:
        """Its parameters from a torch form one of its :attr:`readers` names (a module's attributes or a
        call's arguments, by name); :class:`Unreadable` when the form holds something it cannot express;
        None when the form computes nothing (an ``nn.Dropout(0.0)``): the importer reads it as no op."""
        return {}

    def short(self, p: Any, defaults: Mapping[str, Any] | None = None) -> str:
        """The op written back in short form (the generic writer, archspec/ops/write.py), leaving out
        what equals its defaults (``defaults``: the spec's for this op, else the model's)."""
        from archspec.ops.write import write

        return write(self, p, defaults=defaults)

    def label(self, p: Any) -> str:
        """A label like the papers' figures use."""
        return self.short(p)


REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    if cls.name in REGISTRY:
        raise RuntimeError(f"op {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def map_size(x: Shape, hint: str | None = None, what: str = "") -> tuple[Dim, Dim]:
    """The height and width of ``x``, which an op needs as a C×H×W feature map; an OpShapeError naming the
    vector it got otherwise. ``what`` names the input (`` as size_of=c2``) where an op has several, ``hint``
    is the op's own advice (a conv's: convolutions come before flatten)."""
    if x.height is None or x.width is None:
        raise OpShapeError(f"needs a C×H×W feature map, got a vector of {x.channels}{what}", hint=hint)
    return x.height, x.width


def pair(v: Any) -> tuple[int, int]:
    """An int or a pair of ints (a torch module's kernel_size, stride, ...) as a pair."""
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def fmt_pair(v: tuple[int, int], sep: str = ",") -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}{sep}{v[1]}"
