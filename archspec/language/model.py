"""The spec language as pydantic models: the models are the schema (and the JSON Schema).

A node of the branch graph is one of:

* a string — an op or block in short form: ``conv 96 3x3 s2``, ``inception_a * 4``;
* a list — a chain of nodes applied in order;
* ``{chain: [...] | {name: node, ...}}`` — a chain, its elements optionally named;
* ``{concat: [...] | {name: node, ...}}`` — parallel branches concatenated along channels;
* ``{residual: {body, shortcut, scale, then}}`` — ``then(shortcut(x) + scale * body(x))``;
* ``{gate: node}`` — ``x * node(x)``, the node's output broadcast onto x (C×1×1: SE; 1×H×W; C×H×W);
* ``{if: COND, then: node, else: node}`` — ``then`` when COND (true/false or a ``$param``) holds,
  else ``else`` (the identity when absent): optional parts of parameterised blocks;
* ``{op: NAME, ...params}`` — an op in long form;
* ``{block: NAME, params: {...}, repeat: N}`` — a block in long form;
* ``{NAME: node}`` — a one-key mapping gives its node a module name.

Op parameters are validated per op (``archspec.ops``) once ``$params`` are substituted.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from archspec.errors import did_you_mean
from archspec.language.expr import ExprError, evaluate

KEYWORDS = ("chain", "concat", "residual", "gate", "if", "op", "block", "from", "share")
# One pattern for every name that becomes a Python identifier, class name or module path segment:
# ASCII only, anchored with \A and \Z (``$`` would let a trailing newline through).
NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
NAME_JSON_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"  # the same, for JSON Schema (ECMA regex, no \Z; no newline trap there)
NUMBERED_RE = re.compile(r"\A(?:0|[1-9][0-9]{0,5})\Z")  # a numbered child, as nn.Sequential names them
HYPHENATED_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)+\Z")  # torchvision's RegNet: block1-0
# a module name, for JSON Schema: an identifier, a number, or hyphenated words
MODULE_NAME_JSON_PATTERN = "^([A-Za-z_][A-Za-z0-9_]*|0|[1-9][0-9]{0,5}|[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_]+)+)$"
# Names a module (a node's key, an aux head) cannot take: they would shadow what torch's nn.Module,
# its containers, torch.fx's GraphModule, archspec's compiled model (timm's classifier methods and configs,
# save_pretrained) or the generated forward use.
# Kept as text so that checking stays torch-free; tests/test_security.py compares it with torch's.
PYTHON_KEYWORDS = frozenset(keyword.kwlist)
MODULE_ATTRIBUTES = frozenset(
    """
    T_destination add_module add_submodule append apply bfloat16 buffers call_super_init children clear code
    compile cpu cuda delete_all_unused_submodules delete_submodule double dump_patches eval extend extra_repr
    float forward get_buffer get_extra_state get_parameter get_submodule graph half insert ipu items keys
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters pop
    print_readable recompile register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule
    share_memory state_dict to to_empty to_folder train training type update values xpu zero_grad
    meta inference train_code aux_weights archspec_report
    archspec_source default_cfg feature_info get_classifier pretrained_cfg reset_classifier save_pretrained
""".split()
)
# the names of the compiled forward's own values and of what it calls (refused for top-level parts
# and aux heads, whose paths are the names of values in torch.fx's code)
CODEGEN_NAMES = frozenset({"x", "self", "output", "check_input"})
TAGS = (
    "<map>",
    "<short>",
    "<list>",
    "<chain>",
    "<concat>",
    "<residual>",
    "<gate>",
    "<if>",
    "<op>",
    "<block>",
    "<share>",
    "<named>",
    "<init-name>",
    "<init-distribution>",
    "<init-tensor>",
)
MAX_REPEAT = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _node_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return "<short>"
    if isinstance(v, list):
        return "<list>"
    if isinstance(v, dict):
        for k in KEYWORDS:
            if k in v:
                return f"<{k}>"
        return "<named>"
    if isinstance(v, BaseModel):  # already validated (model_construct / round trips)
        return getattr(v, "_tag", None)
    return None


def _check_named(v: dict[str, Any]) -> dict[str, Any]:
    if len(v) == 1:
        ((key, value),) = v.items()
        # (the close-match search only where the value could not be a node: it costs more than the rest)
        shaped = isinstance(value, dict) and len(value) != 1 and not any(k in value for k in KEYWORDS)
        guess = did_you_mean(key, KEYWORDS) if shaped else None
        if guess:
            # `concta: {a: ..., b: ...}` would name a node holding an invalid mapping: a typo'd keyword
            raise PydanticCustomError("misspelt_keyword", "unknown key {key!r}; {guess}", {"key": key, "guess": guess})
    if len(v) != 1:
        keys = list(v)
        guesses = [g for g in (did_you_mean(k, KEYWORDS) for k in keys) if g]
        raise ValueError(
            "a mapping here must have one of the keys "
            + ", ".join(KEYWORDS)
            + f", or a single key that names its value (got keys {', '.join(map(repr, keys[:4]))})"
            + (
                f"; {guesses[0]}"
                if len(guesses) == 1  # one misspelt keyword; several alike (block1 … block4) are names
                else "; to name several parts in order, write chain: {" + ", ".join(f"{k}: ..." for k in keys[:3]) + "}"
            )
        )
    name = next(iter(v))
    problem = None if computed_name(name) else module_name_problem(name)
    if problem:
        raise PydanticCustomError("module_name", "{problem}", {"problem": problem, "key": name})
    return v


def check_name(name: str, what: str = "name") -> str:
    """A name that becomes a Python identifier: ASCII letters, digits and _, not starting with a digit."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a valid {what} (ASCII letters, digits and _, not starting with a digit)")
    return name


def module_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a module (a node's key, an aux head), or None when it can.

    Besides identifiers, a module may be numbered as ``nn.Sequential`` numbers its children
    (``"8"``: torchvision's ``layers.8.0``, ``features.1.block.0.0``) or be hyphenated words
    (torchvision's RegNet: ``block1-0``); generated code reaches both through getattr/quoted keys."""
    if isinstance(name, str) and (NUMBERED_RE.match(name) or HYPHENATED_RE.match(name)):
        return None
    if not isinstance(name, str) or not NAME_RE.match(name):
        return (
            f"{name!r} is not a valid module name (ASCII letters, digits and _, not starting with a digit; "
            "or a number without leading zeros, as nn.Sequential numbers its children; or words joined by "
            "hyphens, such as block1-0)"
        )
    if name.startswith("_"):
        return f"{name!r} cannot name a module: names starting with '_' are reserved for PyTorch's internals"
    if name in PYTHON_KEYWORDS:
        return f"{name!r} cannot name a module: it is a Python keyword"
    if name in MODULE_ATTRIBUTES:
        return f"{name!r} cannot name a module: it is an attribute of torch's nn.Module or of the compiled model"
    return None


def top_level_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a top-level part of the network or an aux head (whose names are also
    the names of values in the compiled forward), or None when it can."""
    if name in CODEGEN_NAMES:
        return f"{name!r} cannot name a top-level module or an aux head: the compiled forward uses that name"
    return None


_PATTERN_FIELD = re.compile(r"\{([^{}]*)\}")
_PATTERN_PARAMS = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")  # $param and ${expression}: filled in first


def _copy_field(field: str, k: int) -> int:
    """One ``{...}`` field of a names pattern for copy ``k`` (0-based): ``n`` (k + 1), ``i`` (k), or an
    integer expression of them as ``${...}`` takes (``{n + 1}``, ``{2 * i}``)."""
    if field == "n":
        return k + 1
    if field == "i":
        return k

    def lookup(name: str) -> int:
        if name in ("n", "i"):
            return k + 1 if name == "n" else k
        raise ExprError(f"a names field may use n (1, 2, …) and i (0, 1, …), not {name!r}")

    value = evaluate(field, lookup)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExprError(f"the names field {{{field}}} gives {value!r}, not a whole number (use // to divide)")
    return value


def _fields_problem(pattern: str) -> str | None:
    """Why the ``{...}`` fields of a names pattern cannot number copies, or None."""
    if not _PATTERN_FIELD.findall(pattern):
        return f"a names pattern uses {{n}} (1, 2, …), {{i}} (0, 1, …) or an expression of them ({{n + 1}}), got {pattern!r}"
    try:
        name_of_copy(pattern, 0)
    except ExprError as e:
        return f"{e} (in names: {pattern!r})"
    return None


def names_pattern_problem(pattern: str) -> str | None:
    """Why a repeat's naming pattern (its block parameters filled in) cannot name copies, or None:
    fields {n}, {i} and integer expressions of them ({n + 1}), every name it makes a valid module name."""
    problem = _fields_problem(pattern)
    for k in (0, 1):
        problem = problem or module_name_problem(name_of_copy(pattern, k))
    return problem


def check_names_pattern(pattern: str | None) -> str | None:
    """A repeat's naming pattern: fields {n}, {i} or integer expressions of them ({n + 1}), block
    parameters as ``$name`` or ``${expression}`` (``block${k}-{i}``); with parameters, the names it makes
    are checked where it is expanded."""
    if pattern is None:
        return None
    problem = _fields_problem(_PATTERN_PARAMS.sub("0", pattern)) if "$" in pattern else names_pattern_problem(pattern)
    if problem:
        raise ValueError(problem)
    return pattern


def name_of_copy(pattern: str, k: int) -> str:
    """The name of copy ``k`` (0-based) of a repeat named by ``pattern``; an ExprError where a field
    is not an integer expression of n and i."""
    return _PATTERN_FIELD.sub(lambda m: str(_copy_field(m.group(1).strip(), k)), pattern)


def computed_name(name: str) -> bool:
    """A node's name written with a parameter (``"$i"``, ``"conv${i + 1}"``): checked where it is expanded."""
    return isinstance(name, str) and "$" in name


def check_node_name(name: str) -> str:
    """A key naming a node: a module name, or one computed from parameters (checked where it is expanded)."""
    return name if computed_name(name) else check_module_name(name)


def check_module_name(name: str) -> str:
    problem = module_name_problem(name)
    if problem:
        raise ValueError(problem)
    return name


def check_aux_name(name: str) -> str:
    check_module_name(name)
    if name == "logits":
        raise ValueError("an aux head cannot be named 'logits': that is the name of the main output")
    return name


Name = Annotated[str, AfterValidator(lambda v: check_node_name(v))]  # a module name (or one with $params): names a node
AuxName = Annotated[str, AfterValidator(lambda v: check_aux_name(v))]
BlockName = Annotated[str, AfterValidator(lambda v: check_name(v, "block name"))]


def _list_or_map(v: Any) -> str | None:
    return "<list>" if isinstance(v, list) else "<map>" if isinstance(v, dict) else None


if TYPE_CHECKING:  # what the two recursive aliases mean to a type checker (pydantic reads the ones below)
    Members: TypeAlias = Union[list["Node"], dict[str, "Node"]]
    Node: TypeAlias = Union[
        str,
        list["Node"],
        "ChainNode",
        "ConcatNode",
        "ResidualNode",
        "GateNode",
        "IfNode",
        "OpLong",
        "BlockRef",
        dict[str, "Node"],
    ]

Members = TypeAliasType(  # type: ignore[misc]
    "Members",
    Annotated[
        Union[Annotated[list["Node"], Tag("<list>")], Annotated[dict["Name", "Node"], Tag("<map>")]],
        Discriminator(
            _list_or_map,
            custom_error_type="members_type",
            custom_error_message="expected a list of nodes, or a mapping from names to nodes",
        ),
    ],
)


class ChainNode(_Strict):
    """{chain: [...], repeat: N}: nodes applied in order; as a mapping, each element is named by its key."""

    chain: Members = Field(description="the nodes, in order (a list, or a mapping from names to nodes)")
    repeat: Union[int, str] = Field(
        1, description="the whole chain this many times in a row, each copy with its own weights (a number or $param)"
    )
    names: Union[str, None] = Field(
        None,
        description="how repeated copies are named: a pattern with {n} (1, 2, …), {i} (0, 1, …) or an integer "
        "expression of them ({n + 1}), and block parameters ($name, ${expression}), e.g. 'denselayer{n}', "
        "'conv{n + 1}', 'block${k}-{i}'",
    )
    flat: bool = Field(
        False,
        description="the items of every copy numbered on in one list, as nn.Sequential(*[conv, relu] * 8) numbers "
        "them (keypoint_head.0 … .15), not each copy under its own index; a list chain only",
    )
    _tag = "<chain>"

    @field_validator("names")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        return check_names_pattern(v)


class ConcatNode(_Strict):
    """{concat: ..., count: N, index: i}: parallel branches on the same input, concatenated along channels;
    with ``count``, the written branches N times side by side, ``$i`` their copy's index (MixNet's groups)."""

    concat: Members = Field(description="branches, concatenated along channels")
    count: Union[int, str, None] = Field(
        None,
        description="the written branches this many times side by side (a number or $param; copy 0's first), "
        "e.g. one branch per channel group: MixNet's mixed conv, HRNet's fusions",
    )
    index: Union[Annotated[str, AfterValidator(lambda v: check_name(v, "index name"))], None] = Field(
        None,
        description="with count: a name for the copy's index (0, 1, …), read as $NAME or in ${...} inside the "
        "branches, their keys included ('${i}': conv ...)",
    )
    _tag = "<concat>"

    @field_validator("concat")
    @classmethod
    def _not_empty(cls, v: Any) -> Any:
        if len(v) == 0:
            raise ValueError("a concat needs at least one branch")
        return v

    @model_validator(mode="after")
    def _index_needs_count(self) -> ConcatNode:
        if self.index is not None and self.count is None:
            raise ValueError("index: names the copy's index of a count: write count: N beside it")
        return self


class ResidualBody(_Strict):
    """then(shortcut(x) + scale · body(x))."""

    body: Node = Field(description="the residual branch")
    shortcut: Union[Node, None] = Field(None, description="projection shortcut; identity when absent")
    scale: Union[float, str] = Field(1.0, description="scale on the residual branch (a number or $param)")
    then: Union[str, None] = Field(None, description="op applied after the sum, e.g. relu")


class ResidualNode(_Strict):
    """{residual: {body, shortcut, scale, then}}: a residual block."""

    residual: ResidualBody
    _tag = "<residual>"


class GateNode(_Strict):
    """{gate: node}: x · node(x), the node's output broadcast onto x: C×1×1 (squeeze-and-excitation),
    1×H×W (a spatial gate), C×H×W (one value per element); each of its C, H and W x's or 1."""

    gate: Node = Field(
        description="computes the gate from x (or from an earlier value, starting with from:), broadcast onto x "
        "(each of its C, H and W x's or 1): e.g. [adaptive_avgpool 1x1, fc1: conv2d 16 1x1, relu, fc2: conv2d 64 "
        "1x1, sigmoid]"
    )
    _tag = "<gate>"


class FromNode(_Strict):
    """{from: NAME}: the value of an earlier named node (a skip connection, a lateral input), in place of
    the value the node would be applied to; NAME is a module path, looked up inside the enclosing block
    instances (innermost first), then in the whole network; in a block, ``block_in`` is its input."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    source: str = Field(
        alias="from",
        min_length=1,
        max_length=1000,
        description="the module path of an earlier node, e.g. layer2 or enc.1, looked up in the enclosing "
        "block instances first (innermost first), then in the network; in a block, block_in is the block's input",
    )
    _tag = "<from>"


class ShareNode(_Strict):
    """{share: NAME}: the earlier part NAME names (an op with weights, or a named chain, block instance or
    branch), applied again to the value the node is applied to, with the same modules: its weights are
    shared, not copied (CBAM's channel MLP on the average- and the max-pooled vector). NAME is looked up as
    ``from:`` looks names up."""

    share: str = Field(
        min_length=1,
        max_length=1000,
        description="the module path of an earlier part, looked up as from: looks names up; the part is applied "
        "again to this node's input with the same modules (their weights shared)",
    )
    _tag = "<share>"


class IfNode(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    cond: Union[bool, str] = Field(alias="if", description="true, false or a $param holding one")
    then: Node = Field(description="the node used when the condition holds")
    otherwise: Union[Node, None] = Field(None, alias="else", description="used otherwise; identity if absent")
    _tag = "<if>"


class OpLong(BaseModel):
    """An op in long form: {op: NAME, ...parameters}."""

    model_config = ConfigDict(extra="allow")
    op: str = Field(description="op name; the other keys are its parameters")
    _tag = "<op>"


class BlockRef(_Strict):
    """A block in long form: {block: NAME, params: {...}, repeat: N}."""

    block: str = Field(description="the block's name (defined under blocks: or in a used library)")
    params: dict[str, Any] = Field(default_factory=dict, description="values for the block's parameters")
    repeat: Union[int, str] = Field(1, description="consecutive instances, each with its own weights")
    names: Union[str, None] = Field(
        None,
        description="how repeated instances are named: a pattern with {n} (1, 2, …), {i} (0, 1, …) or an integer "
        "expression of them ({n + 1}), and block parameters ($name, ${expression}), e.g. 'denselayer{n}', "
        "'conv{n + 1}', 'block${k}-{i}'",
    )
    _tag = "<block>"

    @field_validator("names")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        return check_names_pattern(v)


Node = TypeAliasType(  # type: ignore[misc]
    "Node",
    Annotated[
        Union[
            Annotated[str, Tag("<short>")],
            Annotated[list["Node"], Tag("<list>")],
            Annotated[ChainNode, Tag("<chain>")],
            Annotated[ConcatNode, Tag("<concat>")],
            Annotated[ResidualNode, Tag("<residual>")],
            Annotated[GateNode, Tag("<gate>")],
            Annotated[IfNode, Tag("<if>")],
            Annotated[OpLong, Tag("<op>")],
            Annotated[BlockRef, Tag("<block>")],
            Annotated[FromNode, Tag("<from>")],
            Annotated[ShareNode, Tag("<share>")],
            Annotated[dict[str, "Node"], BeforeValidator(_check_named), Tag("<named>")],
        ],
        Discriminator(
            _node_kind,
            custom_error_type="node_type",
            custom_error_message="expected an op (a string), a list of nodes, or a mapping",
        ),
    ],
)

for _m in (ChainNode, ConcatNode, ResidualBody, ResidualNode, GateNode, IfNode, OpLong, BlockRef):
    _m.model_rebuild()


Scalar = Union[bool, int, float, str, list[int], None]


class InputSpec(_Strict):
    """The network's input: channels, and the size reports use (shapes hold for every size)."""

    channels: int = Field(3, ge=1, le=4096, strict=True, description="input channels (3 for RGB)")
    size: tuple[int, int] = Field((224, 224), description="[H, W] used for numbers in reports")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return (v, v)
        return v

    @field_validator("size")
    @classmethod
    def _positive(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 1 or max(v) > 16384:
            raise ValueError("sizes must be between 1 and 16384")
        return v


ScaleRule = Literal["width", "depth"]
SCALE_RULES: tuple[ScaleRule, ...] = ("width", "depth")


class ScaleSpec(_Strict):
    """Network-level multipliers, as in compound scaling (EfficientNet, MobileNet).

    ``width`` multiplies the output channels of every op that sets them (``conv``, ``conv2d``,
    ``linear``), rounded to the nearest multiple of ``divisor``, never below ``divisor`` and never
    more than 10 % below the exact product. Ops that decide the channels of a network output (the
    classifier's logits, an aux head's logits) and ops marked ``fixed`` keep their width.
    ``depth`` multiplies every repeat count written in the spec (``* N`` or ``repeat: N``),
    rounded by ``depth_rounding`` (up by default); members without a repeat count stay single.
    ``apply`` names the rules archspec applies by itself; a spec that computes its widths and depths
    from ``width_mult`` and ``depth_mult`` (its reference's rounding) turns them off.
    """

    width: float = Field(1.0, gt=0, le=16, description="multiplier of output channels (1.5 = 50% wider)")
    depth: float = Field(1.0, gt=0, le=16, description="multiplier of written repeat counts, rounded up")
    divisor: int = Field(8, ge=1, le=256, strict=True, description="scaled channels are multiples of this")
    depth_rounding: Literal["ceil", "round", "floor"] = Field(
        "ceil", description="how n·depth becomes a repeat count: up (EfficientNet's ceil), to nearest, down (never below 1)"
    )
    apply: list[ScaleRule] = Field(
        default_factory=lambda: list(SCALE_RULES),
        description="the rules archspec applies by itself: width to every channel count, depth to every written "
        "repeat count; a spec that scales itself with width_mult and depth_mult in expressions turns them off ([])",
    )

    def channels(self, c: int) -> int:
        """Output channels under the width multiplier (unchanged when width is 1)."""
        if self.width == 1:
            return c
        exact = c * self.width
        new = max(self.divisor, int(exact / self.divisor + 0.5) * self.divisor)
        return new + self.divisor if new < 0.9 * exact else new

    def repeats(self, n: int) -> int:
        """A written repeat count under the depth multiplier: n·depth rounded as ``depth_rounding`` says
        (up by default), never below 1; unchanged when the spec does its own depth scaling."""
        if self.depth == 1 or "depth" not in self.apply:
            return n
        exact = round(n * self.depth, 9)  # 2·1.1 is 2.2, not 2.2000000000000002
        rounded = {"ceil": math.ceil, "floor": math.floor, "round": lambda v: math.floor(v + 0.5)}[self.depth_rounding](exact)
        return max(1, int(rounded))


BODIES = ("concat", "residual", "gate", "chain", "op", "if")

InitName = Literal["default", "zeros", "ones", "kaiming_normal_fan_out", "kaiming_normal_fan_in", "xavier_uniform"]


class Distribution(_Strict):
    """A weight drawn from a (truncated) normal distribution with this standard deviation, or uniformly."""

    trunc_normal: Union[float, None] = Field(None, gt=0, le=100, description="std of N(0, std²) truncated to [-2, 2]")
    normal: Union[float, None] = Field(None, gt=0, le=100, description="std of N(0, std²)")
    uniform: Union[float, None] = Field(None, gt=0, le=100, description="bound b of U(-b, b)")

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        if sum(v is not None for v in (self.trunc_normal, self.normal, self.uniform)) != 1:
            raise ValueError("give exactly one of trunc_normal: STD, normal: STD or uniform: BOUND")
        return self


def _init_kind(v: Any) -> str:
    """Which form an ``init:`` entry takes, so an error names the bound that failed (``uniform: -1``)
    rather than listing the scheme names: a name, a distribution, or (in a table) weight/bias."""
    if isinstance(v, str):
        return "<init-name>"
    if isinstance(v, TensorInit) or (isinstance(v, dict) and ("weight" in v or "bias" in v)):
        return "<init-tensor>"  # a model instance too: serialising (the spec's digest) asks again
    return "<init-distribution>"


InitValue = Annotated[
    Union[Annotated[InitName, Tag("<init-name>")], Annotated[Distribution, Tag("<init-distribution>")]],
    Discriminator(lambda v: "<init-name>" if isinstance(v, str) else "<init-distribution>"),
]


class TensorInit(_Strict):
    """How an op's weight and bias start (BatchNorm: its γ and β)."""

    weight: InitValue = Field("default", description="the weight (BatchNorm: γ)")
    bias: InitValue = Field("default", description="the bias (BatchNorm: β)")


# op name (conv2d, linear, bn) → its scheme; a bare scheme is the weight's
InitTable = dict[
    str,
    Annotated[
        Union[
            Annotated[InitName, Tag("<init-name>")],
            Annotated[Distribution, Tag("<init-distribution>")],
            Annotated[TensorInit, Tag("<init-tensor>")],
        ],
        Discriminator(_init_kind),
    ],
]


class BlockDef(_Strict):
    """A named, reusable block: exactly one body (concat, residual, gate, chain, op or if) plus parameters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    params: dict[str, Scalar] = Field(default_factory=dict, description="parameters with their defaults, used as $name")
    label: Union[str, None] = Field(None, description="display name, e.g. 'Inception-A'")
    doc: Union[str, None] = None
    counter: Union[Annotated[str, AfterValidator(lambda v: check_name(v, "counter name"))], None] = Field(
        None,
        description="a counter shared with the other blocks naming it: block_index and block_count number the "
        "instances of all of them together, in network order (a depth schedule over several kinds of block)",
    )
    inline: bool = Field(
        False,
        description="its instances add no segment to module paths: the body's parts are named where the block is "
        "used, as if written there (a deep stem's conv1, bn1, act1 at the top level); an instance takes no name",
    )
    concat: Union[Members, None] = None
    count: Union[int, str, None] = Field(
        None, description="with concat: the written branches this many times side by side (as a concat node's count:)"
    )
    index: Union[Annotated[str, AfterValidator(lambda v: check_name(v, "index name"))], None] = Field(
        None, description="with concat and count: a name for the copy's index, as a concat node's index:"
    )
    residual: Union[ResidualBody, None] = None
    gate: Union[Node, None] = Field(None, description="x · gate(x): a squeeze-and-excitation gate")
    chain: Union[Members, None] = None
    op: Union[Node, None] = Field(
        None,
        description="one node standing at the instance's own path: an op in short or long form, a block, or an "
        "if: choosing one (op: {if: $hs, then: hardswish, else: relu})",
    )
    cond: Union[bool, str, None] = Field(
        None, alias="if", description="the body is an if: then when this (true, false or a $param) holds, else else"
    )
    then: Union[Node, None] = Field(None, description="with if: the body when the condition holds")
    otherwise: Union[Node, None] = Field(
        None, alias="else", description="with if: the body when it does not (the identity when absent)"
    )
    init: InitTable = Field(
        default_factory=dict,
        description="initialisation of the ops in this block's instances, per op name (over the spec's init)",
    )

    @model_validator(mode="after")
    def _one_body(self) -> BlockDef:
        if self.cond is None and (self.then is not None or self.otherwise is not None):
            raise ValueError("then: and else: are the branches of an if: body; write if: CONDITION beside them")
        if self.cond is not None and self.then is None:
            raise ValueError("an if: body needs then: (the body when the condition holds; else: is optional)")
        if (self.count is not None or self.index is not None) and self.concat is None:
            raise ValueError("count: and index: repeat the branches of a concat: body; write concat: beside them")
        if self.index is not None and self.count is None:
            raise ValueError("index: names the copy's index of a count: write count: N beside it")
        bodies = [k for k in BODIES if self._body_value(k) is not None]
        if len(bodies) != 1:
            raise ValueError(
                "a block needs exactly one of concat, residual, gate, chain, op or if"
                + (f" (it has {', '.join(bodies)})" if bodies else "")
            )
        for name in self.params:
            check_name(name, "parameter name")
            if name == "in":
                raise ValueError("'in' cannot name a parameter: in ${...} it is the input channels of the op or block")
        return self

    def _body_value(self, key: str) -> Any:
        return self.cond if key == "if" else getattr(self, key)

    @property
    def body_key(self) -> str:
        return next(k for k in BODIES if self._body_value(k) is not None)

    @property
    def body(self) -> Any:
        """The body as a node."""
        key = self.body_key
        value = self._body_value(key)
        if key == "if":
            assert self.cond is not None and self.then is not None  # (_one_body)
            return IfNode.model_construct(cond=self.cond, then=self.then, otherwise=self.otherwise)
        if key == "concat":
            return ConcatNode.model_construct(concat=value, count=self.count, index=self.index)
        if key == "residual":
            return ResidualNode.model_construct(residual=value)
        if key == "chain":
            return ChainNode.model_construct(chain=value)
        if key == "gate":
            return GateNode.model_construct(gate=value)
        return value


class AuxHead(_Strict):
    """An auxiliary classifier: runs in training mode only, returned as a named extra output."""

    tap: str = Field(description="module path of the node whose output feeds the head, e.g. features.9")
    head: Node = Field(description="the head's nodes, applied to the tapped output")
    weight: float = Field(0.3, description="suggested weight of this output in the training loss")


OUTPUT_NAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}\Z")  # a key of the dict the network returns


def check_output_name(name: str) -> str:
    """An output's name under ``outputs:`` (a key of the returned dict, timm's/torchvision's '0', 'out', 'pool')."""
    if not isinstance(name, str) or not OUTPUT_NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a valid output name (ASCII letters, digits, _, . and -, not starting with . or -)")
    return name


OutputName = Annotated[str, AfterValidator(lambda v: check_output_name(v))]
# outputs: [layer1, layer2]          — each value under its own path
# outputs: {'0': layer1, pool: pool} — each value under the name written before it
Outputs = Annotated[
    Union[Annotated[list[str], Tag("<list>")], Annotated[dict[OutputName, str], Tag("<map>")]],
    Discriminator(
        _list_or_map,
        custom_error_type="outputs_type",
        custom_error_message="expected a list of module paths, or a mapping from output names to module paths",
    ),
]


class Spec(_Strict):
    """An archspec spec: one network as a YAML branch graph (docs/language.md)."""

    schema_: Union[str, None] = Field(None, alias="$schema")
    archspec: Literal[1] = Field(description="language version")
    name: str = Field(description="the network's name (letters, digits and _)")
    doc: Union[str, None] = Field(None, description="free text")
    use: list[str] = Field(default_factory=list, description="YAML files whose blocks this spec uses")
    input: InputSpec = Field(default_factory=InputSpec)
    defaults: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-op default parameters")
    init: InitTable = Field(
        default_factory=dict, description="initialisation per op name, e.g. {conv2d: kaiming_normal_fan_out} (docs/language.md)"
    )
    blocks: dict[BlockName, BlockDef] = Field(default_factory=dict, description="named, reusable blocks")
    network: Members = Field(description="the network: a list (a chain) or a mapping of named parts, in order")
    aux: dict[AuxName, AuxHead] = Field(default_factory=dict, description="auxiliary heads (training-mode outputs)")
    outputs: Union[Outputs, None] = Field(
        None,
        description="several outputs: the named values the network returns, in order, as a dict (a list of "
        "module paths, or a mapping from output names to paths); absent: the network's last value alone",
    )
    features: Union[list[str], None] = Field(
        None,
        description="the feature maps features_only=True returns, in order: module paths as outputs: writes them "
        "(timm's stage outputs where they are not the last row at each reduction); absent: that rule (docs/timm.md)",
    )
    scale: ScaleSpec = Field(default_factory=ScaleSpec, description="width and depth multipliers")
    frozen: list[str] = Field(
        default_factory=list,
        description="module paths (or patterns, as init: writes them) whose parameters do not train: "
        "requires_grad False, e.g. [body.conv1, body.layer1] (docs/language.md, Frozen parameters)",
    )
    variants: dict[BlockName, dict[str, Any]] = Field(
        default_factory=dict,
        description="a family: each member's name and the values it sets, as --set KEY=VALUE would "
        "(e.g. {b1: {name: efficientnet_b1, scale.depth: 1.1, input.size: 240}})",
    )
    variant: Union[str, None] = Field(None, description="the member of variants this spec is (none: the spec as written)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        check_name(v, "network name")
        if v.lower() in {"false", "none", "true"}:  # its class name would be a keyword
            raise ValueError(f"{v!r} cannot name a network: its class {v.capitalize()} would be a Python keyword")
        return v


AuxHead.model_rebuild()
Spec.model_rebuild()


class BlockLibrary(_Strict):
    """A file of shared blocks (specs/blocks/*.yaml)."""

    archspec: Literal[1]
    use: list[str] = Field(default_factory=list)
    defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)
    blocks: dict[BlockName, BlockDef]


__all__ = [
    "Spec",
    "ScaleSpec",
    "BlockDef",
    "BlockLibrary",
    "Node",
    "KEYWORDS",
    "TAGS",
    "check_name",
    "check_module_name",
    "module_name_problem",
    "top_level_name_problem",
]
