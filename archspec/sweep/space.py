"""A design space: YAML beside a spec, read into typed data with every mistake located.

    space: 1
    spec: digits_resnet.yaml               # the spec the variants are made from (relative to this file)
    params:                                # what is sampled
      d1: {int: [2, 4]}                    # an integer range (step, log)
      lr: {float: [0.01, 0.3], log: true}  # a float range
      b: [1, 2, 4]                         # a choice list (any YAML values: numbers, op strings, switches)
      network.stem.out: [16, 24]           # a key with dots is a --set path, sampled directly
      stages: {regnet: {...}}              # RegNet's quantised linear rule: widths and depths per stage
    set:                                   # --set paths computed from the sampled values
      network.stage1.1.repeat: ${d1 - 1}
    constraints: [macs <= 4e6, w2 >= w1]   # on what `check` computes, and between parameters

Nothing here imports torch or optuna: a space is checked as fast as a spec.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from archspec.errors import Loc, SpecError, did_you_mean
from archspec.language.expr import FUNCTIONS, ExprError
from archspec.language.load import Source, YamlPath, load_file, load_text

# what `check` computes, by the name a constraint or an objective uses
STATIC_METRICS = {
    "params": "parameters",
    "macs": "multiply-accumulates at the spec's input size (one image)",
    "activations": "values one forward pass of one image computes (every op's output)",
    "min_input_h": "the smallest input height the network accepts",
    "min_input_w": "the smallest input width the network accepts",
}
MEASURED_METRICS = {
    "latency_ms": "milliseconds per batch of the optimised model (median)",
    "error": "validation top-1 error after the short training (1 - accuracy)",
}
METRICS = {**STATIC_METRICS, **MEASURED_METRICS}
_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
_EXPR = re.compile(r"\$\{([^{}]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class IntRange(_Strict):
    bounds: tuple[int, int] = Field(alias="int")
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _order(self) -> IntRange:
        lo, hi = self.bounds
        if lo > hi:
            raise ValueError(f"the range [{lo}, {hi}] is empty: write [low, high]")
        if self.log and (lo < 1 or self.step != 1):
            raise ValueError("a log range needs a low end of at least 1 and step 1")
        return self


class FloatRange(_Strict):
    bounds: tuple[float, float] = Field(alias="float")
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _order(self) -> FloatRange:
        lo, hi = self.bounds
        if lo > hi:
            raise ValueError(f"the range [{lo}, {hi}] is empty: write [low, high]")
        if self.log and (lo <= 0 or self.step is not None):
            raise ValueError("a log range needs a positive low end and no step")
        return self


class Choice(_Strict):
    choice: list[Any] = Field(min_length=1)


class RegNetRule(_Strict):
    """RegNet's quantised linear rule (Radosavovic et al. 2020, section 3.3): per block j < depth,
    u_j = w_0 + w_a·j, s_j = round(log(u_j / w_0) / log(w_m)), width w_0·w_m^s_j rounded to a multiple
    of q; consecutive blocks of one width form a stage. Gives NAME_w1, NAME_d1, ... per stage."""

    depth: IntRange
    w_0: IntRange
    w_a: FloatRange
    w_m: FloatRange
    q: int = Field(8, ge=1)
    stages: int = Field(ge=1, le=16)


class RegNet(_Strict):
    regnet: RegNetRule


def _kind(value: Any) -> str:
    models: dict[type, str] = {IntRange: "int", FloatRange: "float", Choice: "choice", RegNet: "regnet"}
    if type(value) in models:
        return models[type(value)]
    if isinstance(value, dict):
        for key in ("int", "float", "choice", "regnet"):
            if key in value:
                return key
    return "choice" if isinstance(value, list) else "unknown"


def _choice_shorthand(value: Any) -> Any:
    return {"choice": value} if isinstance(value, list) else value


Param = Annotated[
    Annotated[IntRange, Tag("int")]
    | Annotated[FloatRange, Tag("float")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[RegNet, Tag("regnet")],
    Discriminator(
        _kind,
        custom_error_type="param_kind",
        custom_error_message="a parameter is a list of choices, {int: [LOW, HIGH]}, {float: [LOW, HIGH]} or {regnet: {...}}",
    ),
]


class Latency(_Strict):
    batch: int = Field(8, ge=1, le=4096)
    repeats: int = Field(10, ge=1, le=10_000)
    warmup: int = Field(2, ge=0, le=1000)
    threads: int = Field(1, ge=1, le=1024)  # torch threads per worker: workers on one machine share its cores
    device: str = "cpu"


class Train(_Strict):
    data: str = "digits"  # or the folder of an ImageFolder
    val: str | None = None
    epochs: int = Field(3, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.1, gt=0)
    seed: int = 0
    device: str = "cpu"
    augment: Literal["none", "imagenet"] = "none"  # an ImageFolder's training images: resized only, or cropped and flipped


class Space(_Strict):
    space: Literal[1]
    spec: str
    name: str | None = None
    params: dict[str, Param] = Field(min_length=1)
    set: dict[str, Any] = Field(default_factory=dict)
    constraints: list[str] = Field(default_factory=list)
    objectives: dict[str, Literal["minimize", "maximize"]] = Field(default_factory=dict)
    sampler: Literal["random", "grid", "tpe", "nsga2"] = "random"
    seed: int | None = 0
    trials: int = Field(20, ge=0)
    latency: Latency | None = Field(default_factory=Latency)
    train: Train | None = None
    pruner: Literal["none", "median", "halving"] = "median"

    @field_validator("params", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {k: _choice_shorthand(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in METRICS:
                raise ValueError(f"unknown objective {name!r}; objectives: {', '.join(METRICS)}")
        return value


class LoadedSpace:
    """A validated space, where it came from, and the spec it names."""

    def __init__(self, model: Space, source: Source, spec: Path | str) -> None:
        self.model = model
        self.source = source
        self.spec = spec
        self.name = model.name or (Path(source.file).stem if source.path else "space")
        self.variables = _variables(model)

    def loc(self, *path: str | int, key: bool = False) -> Loc:
        return self.source.loc(tuple(path), key=key)

    @property
    def digest(self) -> str:
        """What the space samples and how, as data (comments and formatting do not change it)."""
        data = self.model.model_dump(mode="json", by_alias=True, exclude={"trials"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _variables(model: Space) -> set[str]:
    """The names expressions may use: plain parameter names, and each RegNet rule's stage widths/depths."""
    names: set[str] = set()
    for key, param in model.params.items():
        if isinstance(param, RegNet):
            n = param.regnet.stages
            names |= {f"{key}_{v}" for v in ("depth", "w_0", "w_a", "w_m")}
            names |= {f"{key}_w{i}" for i in range(1, n + 1)} | {f"{key}_d{i}" for i in range(1, n + 1)}
        elif _NAME.match(key):
            names.add(key)
    return names


def names_in(text: str) -> set[str]:
    """The names an expression reads (a SyntaxError or ExprError for what is not an expression)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ExprError(f"not an expression: {text.strip()!r}") from None
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(FUNCTIONS)


def expressions_in(value: Any) -> list[str]:
    """Every ``${...}`` in a --set value (strings, lists and mappings of them)."""
    if isinstance(value, str):
        return _EXPR.findall(value)
    if isinstance(value, list):
        return [e for v in value for e in expressions_in(v)]
    if isinstance(value, dict):
        return [e for v in value.values() for e in expressions_in(v)]
    return []


def _validation_error(e: ValidationError, source: Source) -> SpecError:
    err = e.errors(include_url=False)[0]
    path: YamlPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("int", "float", "choice", "regnet")))
    if err["type"] == "extra_forbidden":
        owner = _owner(path[:-1])
        fields = sorted(f.alias or name for name, f in owner.model_fields.items()) if owner else []
        hint = did_you_mean(str(path[-1]), fields) if fields else None
        return SpecError(
            f"unknown key {path[-1]!r}",
            source.loc(path, key=True),
            code="schema",
            hint=hint or (f"valid keys: {', '.join(fields)}" if fields else None),
        )
    if err["type"] == "missing":
        return SpecError(f"missing required key {path[-1]!r}", source.loc(path[:-1]), code="schema")
    # a tuple's item (int: [1, x]) is located at the item; a validator's message at the mapping
    return SpecError(err["msg"].removeprefix("Value error, "), source.loc(path), code="schema")


def _owner(path: YamlPath) -> type[BaseModel] | None:
    if not path:
        return Space
    if path[0] in ("latency", "train") and len(path) == 1:
        return Latency if path[0] == "latency" else Train
    if path[0] == "params" and len(path) >= 2:
        rest = path[2:]
        if not rest:
            return None  # the kind is unknown: the discriminator's message says which are allowed
        if rest[0] == "regnet":
            return RegNetRule if len(rest) == 1 else (FloatRange if rest[1] in ("w_a", "w_m") else IntRange)
    return None


def load_space(path: str | Path) -> LoadedSpace:
    """Read and validate a space file: its schema, its expressions' names and the --set paths it names
    (each must exist in the spec); every mistake is a SpecError located in the space file."""
    source = load_file(path)
    return _validate(source)


def space_from_text(text: str, file: str = "<space>", base: Path | None = None) -> LoadedSpace:
    source = load_text(text, file, (base / "space.yaml") if base else None)
    return _validate(source)


def _validate(source: Source) -> LoadedSpace:
    if not isinstance(source.data, dict):
        raise SpecError(
            "a space must be a mapping at the top level", source.loc(()), code="schema", hint="start it with 'space: 1'"
        )
    try:
        model = Space.model_validate(source.data)
    except ValidationError as e:
        raise _validation_error(e, source) from None
    spec = _spec_path(model, source)
    space = LoadedSpace(model, source, spec)
    _check_names(space)
    _check_paths(space)
    return space


def _spec_path(model: Space, source: Source) -> Path | str:
    from archspec.library import is_zoo

    if is_zoo(model.spec):
        return model.spec
    base = source.path.parent if source.path else Path.cwd()
    spec = (base / model.spec).resolve()
    if not spec.is_file():
        raise SpecError(f"no such spec: {model.spec}", source.loc(("spec",)), code="io", hint=f"relative to {base}")
    return spec


def _check_names(space: LoadedSpace) -> None:
    model = space.model
    for key, param in model.params.items():
        if isinstance(param, RegNet) and not _NAME.match(key):
            raise SpecError(
                f"a regnet rule needs a plain name, not {key!r}",
                space.loc("params", key, key=True),
                code="schema",
                hint="name it (stages) and use ${stages_w1}, ${stages_d1}, ... under set:",
            )
        if _NAME.match(key) and key in METRICS:
            raise SpecError(
                f"{key!r} names a metric", space.loc("params", key, key=True), code="name", hint="rename the parameter"
            )
    known = space.variables | set(METRICS)
    for i, text in enumerate(model.constraints):
        _check_expression(text, known, space.loc("constraints", i), "a constraint")
    for key, value in model.set.items():
        for text in expressions_in(value):
            _check_expression(text, space.variables, space.loc("set", key), "a --set value")


def _check_expression(text: str, known: set[str], loc: Loc, what: str) -> None:
    try:
        names = names_in(text)
    except ExprError as e:
        raise SpecError(f"{what}: {e}", loc, code="schema") from None
    for name in sorted(names - known):
        raise SpecError(
            f"{what} reads {name!r}, which is neither a parameter nor a metric",
            loc,
            code="param",
            hint=did_you_mean(name, known)
            or f"parameters: {', '.join(sorted(known - set(METRICS))) or 'none'}; metrics: {', '.join(METRICS)}",
        )


def _check_paths(space: LoadedSpace) -> None:
    """Every --set path of the space exists in the spec (checked once, at load, with no shapes)."""
    from archspec.language.overrides import apply_overrides
    from archspec.language.resolve import read

    paths = [("params", k) for k in space.model.params if "." in k] + [("set", k) for k in space.model.set]
    for section, key in paths:
        source = read(space.spec)
        try:
            apply_overrides(source, {key: _placeholder(space, section, key)})
        except SpecError as e:
            if e.code != "override":
                raise
            raise SpecError(e.message, space.loc(section, key, key=True), code="override", hint=e.hint) from None


def _placeholder(space: LoadedSpace, section: str, key: str) -> Any:
    if section == "set":
        return 1
    param = space.model.params[key]
    if isinstance(param, Choice):
        return param.choice[0]
    if isinstance(param, (IntRange, FloatRange)):
        return param.bounds[0]
    return 1


def space_schema() -> dict[str, Any]:
    """The JSON Schema of a space file (docs/archspec-space.schema.json), for editors."""
    schema = Space.model_json_schema(by_alias=True)
    params = schema["properties"]["params"]
    shorthand = {"type": "array", "minItems": 1, "description": "a list of choices"}
    params["additionalProperties"] = {"anyOf": [params["additionalProperties"], shorthand]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "archspec design space", **schema}


if __name__ == "__main__":  # python -m archspec.sweep.space > docs/archspec-space.schema.json
    print(json.dumps(space_schema(), indent=2))
