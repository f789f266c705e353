"""An op's parameters: defaults, the width multiplier, validation (cached) and its error mapping.

``args`` lays the spec's ``defaults:`` under the arguments written, then applies the width
multiplier (``scale.width``) to the op's channel field (``Op.channels``) unless the op is
``fixed``, decides a network output's channels (``fixed_paths``), or took the value from ``in``
(already scaled). ``validate`` turns arguments into the op's frozen pydantic model: equal
arguments share one model, so a composite's primitive chain and its short form are worked out
once per distinct op (a zoo network writes a few dozen distinct convs hundreds of times).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.language.load import Source
from archspec.language.resolve import Resolved
from archspec.language.shortform import Ref
from archspec.ops import REGISTRY
from archspec.ops.registry import Op

Chain = list[tuple[str, str, Any]]  # a composite's primitives: (child name, op, params)


class OpParams:
    """Validated op parameters of one expansion, and the caches that make them cheap."""

    def __init__(self, resolved: Resolved, scale_width: bool = True) -> None:
        self.resolved = resolved
        scale = resolved.spec.scale
        self.scale_width = scale_width and scale.width != 1 and "width" in scale.apply
        self._params: dict[tuple[str, str], BaseModel] = {}  # validated params by (op, repr of the arguments)
        self._chains: dict[tuple[str, int], tuple[Any, Chain | None]] = {}  # (op, id of params) → (params, chain)
        self._shorts: dict[tuple[str, int, str], tuple[Any, ShortText]] = {}  # (op, id of params, file) → (params, text)
        # (id of a parsed reference, file, fixed) → (the reference, its params, their chain, scaled): ShortForms
        # hands out one Ref per short form and set of values read, so a block's instances meet the same ones
        self._refs: dict[tuple[int, str, bool], tuple[Ref, Any, Chain | None, bool]] = {}

    def scaled(self, op: Op, ref: Ref, args: dict[str, Any]) -> bool:
        """Whether the width multiplier changes this op's arguments (before ``fixed_paths``)."""
        field_name = op.channels
        return (
            self.scale_width
            and field_name is not None
            and not ref.fixed
            and isinstance(args.get(field_name), int)
            and field_name not in ref.from_input  # computed from `in`, the already scaled input channels
        )

    def args(self, op: Op, ref: Ref, source: Source, fixed: bool = False) -> tuple[dict[str, Any], bool]:
        """The op's arguments: defaults, then the spec's, then the width multiplier (not when ``fixed``);
        and whether the multiplier changed them."""
        args = {**self.resolved.defaults(op.name, source), **ref.args}
        if fixed or not self.scaled(op, ref, args):
            return args, False
        field_name = op.channels
        assert field_name is not None
        old = args[field_name]
        args[field_name] = self.resolved.spec.scale.channels(old)
        if args.get("groups") == old:  # depthwise stays depthwise
            args["groups"] = args[field_name]
        return args, True

    def of(self, op: Op, ref: Ref, source: Source, fixed: bool = False) -> tuple[Any, Chain | None, bool]:
        """The op's validated params (:meth:`args`, :meth:`validate`), their primitive chain (:meth:`chain`) and
        whether the width multiplier changed them; worked out once per parsed reference, file and ``fixed``."""
        key = (id(ref), source.file, fixed)
        hit = self._refs.get(key)
        if hit is not None and hit[0] is ref:
            return hit[1:]
        args, scaled = self.args(op, ref, source, fixed)
        params = self.validate(op, args, ref.token_locs, ref.loc)
        chain = self.chain(op, params, ref.loc)
        self._refs[key] = (ref, params, chain, scaled)
        return params, chain, scaled

    def validate(self, op: Op, args: dict[str, Any], token_locs: dict[str, Loc], loc: Loc) -> Any:
        key = (op.name, repr(args))  # arguments are plain YAML data, so repr tells them apart (1, 1.0, True)
        cached = self._params.get(key)
        if cached is not None:  # params are frozen models: equal arguments can share one
            return cached
        try:
            params = op.Params.model_validate(args)
        except ValidationError as e:
            raise params_error(op, e, token_locs, loc) from None
        self._params[key] = params
        return params

    def chain(self, op: Op, params: Any, loc: Loc) -> Chain | None:
        """A composite op's primitive chain with validated params; None for a primitive op."""
        key = (op.name, id(params))
        hit = self._chains.get(key)
        if hit is not None and hit[0] is params:
            return hit[1]
        chain = op.expand(params)
        if chain is not None:
            chain = [
                (child, child_op, self.validate(REGISTRY[child_op], child_args, {}, loc)) for child, child_op, child_args in chain
            ]
        self._chains[key] = (params, chain)
        return chain

    def short(self, op: Op, params: Any, source: Source) -> str:
        """The op's short form, as written back under the `defaults:` of the file it is written in
        (``conv 96 3x3 s2``, not ``conv 96 3x3 s2 eps=0.001`` under ``defaults: {conv: {eps: 0.001}}``)."""
        return self.text(op, params, source)()

    def text(self, op: Op, params: Any, source: Source) -> ShortText:
        """:meth:`short`, written when first called (a node's text: ``Node.text``)."""
        key = (op.name, id(params), source.file)
        hit = self._shorts.get(key)
        if hit is None or hit[0] is not params:
            hit = self._shorts[key] = (params, ShortText(op.name, params, self.resolved.defaults(op.name, source)))
        return hit[1]


class ShortText:
    """An op's short form, written when first asked for, then kept (plain data: it pickles with a model's report)."""

    __slots__ = ("op", "params", "defaults", "text")

    def __init__(self, op: str, params: Any, defaults: dict[str, Any]) -> None:
        self.op, self.params, self.defaults = op, params, defaults
        self.text: str | None = None

    def __call__(self) -> str:
        if self.text is None:
            self.text = REGISTRY[self.op].short(self.params, self.defaults)
        return self.text

    def __eq__(self, other: object) -> bool:  # equal to the text it stands for (nodes compare by their text)
        if isinstance(other, ShortText):
            other = other()
        return self() == other if isinstance(other, str) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self())


def check_standalone(op: Op, ref: Ref) -> None:
    """A merging op (add, concat, mul) is written through its container, never alone."""
    if not op.standalone:
        raise SpecError(
            f"{op.name!r} cannot stand alone: it merges branches",
            ref.loc,
            code="bad-op-args",
            hint="write a residual sum as 'residual: {body: [...]}' and a concatenation as 'concat: [branch, ...]'",
        )


def params_error(op: Op, e: ValidationError, token_locs: dict[str, Loc], loc: Loc) -> SpecError:
    """pydantic's first complaint about an op's arguments, as a SpecError at the token it is about."""
    err = e.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    where = token_locs.get(field, loc)
    if err["type"] == "extra_forbidden":
        fields = list(op.Params.model_fields) + list(op.flags)
        hint = did_you_mean(field, [*fields, "repeat"]) or f"{op.name} takes: {', '.join(fields) or 'no arguments'}"
        if hint == "did you mean 'repeat'?":  # `repat=6` meant the repeat count, not an option
            hint += f" (the number of copies: {op.name} ... * N, or --set PATH.repeat=N)"
        return SpecError(f"{op.name} has no option {field!r}", where, code="bad-op-args", hint=hint)
    if err["type"] == "missing":
        return SpecError(
            f"{op.name} needs {field!r}",
            loc,
            code="bad-op-args",
            hint=f"short form: {op.short_form}" if op.short_form else None,
        )
    msg = err["msg"].removeprefix("Value error, ")
    return SpecError(f"{op.name} {field}: {msg}", where, code="bad-op-args")
