"""One point of a space: the sampled values, the --set overrides they make, and the constraints.

``draw`` asks anything with Optuna's ``suggest_*`` methods (an ``optuna.Trial``, or a stand-in in
tests) for each parameter, applies RegNet's rule, and evaluates the ``set:`` expressions; nothing
here imports optuna or torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from archspec.language.expr import ExprError, evaluate
from archspec.sweep.space import _EXPR, Choice, FloatRange, IntRange, LoadedSpace, RegNet, RegNetRule, names_in


class Suggest(Protocol):
    """The part of ``optuna.Trial`` a space needs."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass
class Point:
    values: dict[str, Any] = field(default_factory=dict)  # every variable an expression may read
    overrides: dict[str, Any] = field(default_factory=dict)  # --set path → value, in the space's order
    rejected: str | None = None  # why the point is outside the space (a rule's stage count), before any check


class RuleMismatch(ValueError):
    """A RegNet rule that gives another number of stages than the spec has."""


def regnet_stages(depth: int, w_0: float, w_a: float, w_m: float, q: int) -> list[tuple[int, int]]:
    """(width, depth) of each stage by RegNet's quantised linear rule (Radosavovic et al. 2020, eq. 2-4)."""
    widths = []
    for j in range(depth):
        u = w_0 + w_a * j
        s = round(math.log(u / w_0) / math.log(w_m))
        widths.append(max(q, round(w_0 * w_m**s / q) * q))
    stages: list[tuple[int, int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1] = (w, stages[-1][1] + 1)
        else:
            stages.append((w, 1))
    return stages


def _encode(choice: Any) -> Any:
    """Optuna's categorical choices are None, bool, int, float or str: other YAML values go as JSON text."""
    return choice if choice is None or isinstance(choice, (bool, int, float, str)) else json.dumps(choice)


def _suggest(trial: Suggest, name: str, param: IntRange | FloatRange | Choice) -> Any:
    if isinstance(param, IntRange):
        lo, hi = param.bounds
        return trial.suggest_int(name, lo, hi, step=param.step, log=param.log)
    if isinstance(param, FloatRange):
        flo, fhi = param.bounds
        return trial.suggest_float(name, flo, fhi, step=param.step, log=param.log)
    encoded = [_encode(c) for c in param.choice]
    picked = trial.suggest_categorical(name, encoded)
    return param.choice[encoded.index(picked)]


def _rule(trial: Suggest, name: str, rule: RegNetRule, point: Point) -> None:
    depth = _suggest(trial, f"{name}_depth", rule.depth)
    w_0 = _suggest(trial, f"{name}_w_0", rule.w_0)
    w_a = _suggest(trial, f"{name}_w_a", rule.w_a)
    w_m = _suggest(trial, f"{name}_w_m", rule.w_m)
    point.values.update({f"{name}_depth": depth, f"{name}_w_0": w_0, f"{name}_w_a": w_a, f"{name}_w_m": w_m})
    stages = regnet_stages(depth, w_0, w_a, w_m, rule.q) if w_m > 1 and w_0 > 0 and w_a > 0 else []
    if len(stages) != rule.stages:
        point.rejected = f"{name}: the rule gives {len(stages)} stages, the spec has {rule.stages}"
        stages = (stages + [(0, 0)] * rule.stages)[: rule.stages]
    for i, (w, d) in enumerate(stages, 1):
        point.values[f"{name}_w{i}"] = w
        point.values[f"{name}_d{i}"] = d


def draw(space: LoadedSpace, trial: Suggest) -> Point:
    """Sample every parameter, then compute the --set values; a value that cannot be computed (a
    division by zero) rejects the point with the reason."""
    point = Point()
    for key, param in space.model.params.items():
        if isinstance(param, RegNet):
            _rule(trial, key, param.regnet, point)
            continue
        value = _suggest(trial, key, param)
        if "." in key:
            point.overrides[key] = value
        else:
            point.values[key] = value
    for key, value in space.model.set.items():
        try:
            point.overrides[key] = substitute(value, point.values)
        except ExprError as e:
            point.rejected = point.rejected or f"set {key}: {e}"
    return point


def substitute(value: Any, values: Mapping[str, Any]) -> Any:
    """A --set value with its ``${...}`` computed: a string that is one expression becomes its number,
    one with text around its expressions stays a string (an op written with computed numbers)."""
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    whole = _EXPR.fullmatch(value.strip())
    if whole:
        return _evaluate(whole.group(1), values)
    return _EXPR.sub(lambda m: _text(_evaluate(m.group(1), values)), value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _evaluate(text: str, values: Mapping[str, Any]) -> int | float | bool:
    def lookup(name: str) -> Any:
        if name not in values:
            raise ExprError(f"unknown name {name!r}")
        return values[name]

    return evaluate(text, lookup)


def parameter_only(text: str, metrics: set[str]) -> bool:
    """Whether a constraint reads parameters only (so it is decided before `check`)."""
    return not (names_in(text) & metrics)


def violated(constraints: list[str], values: Mapping[str, Any]) -> str | None:
    """The first constraint that ``values`` break, as written; None when all hold."""
    for text in constraints:
        try:
            ok = _evaluate(text, values)
        except ExprError as e:
            return f"{text}: {e}"
        if not isinstance(ok, bool):
            return f"{text}: gives a number, not true or false"
        if not ok:
            return text
    return None
