"""Fuzzing: mutated zoo specs and random YAML must build or raise SpecError — nothing else, fast.

Each case mutates a real spec (delete / duplicate / retype keys, perturb numbers inside op
strings, swap op names, splice one block's body into another) or is random text. The outcome
must be either a valid report (and, for small networks, a model that runs at its minimum input
size) or one `archspec.SpecError`; any other exception, or a case slower than 2 s, fails.

CI runs a few hundred cases. A long run (docs/errors.md records the last one):

    ARCHSPEC_FUZZ_EXAMPLES=10000 python -m pytest tests/fuzz -q -p no:cacheprovider
"""

from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch  # imported up front: its one-time import cost is not the spec's
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archspec
from archspec.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "tests" / "fuzz").glob("seed_*.yaml"))
EXAMPLES = int(os.environ.get("ARCHSPEC_FUZZ_EXAMPLES", "150"))
LIMIT_S = float(os.environ.get("ARCHSPEC_FUZZ_SECONDS", "2.0"))  # a hang guard, not a benchmark
SMALL = 3_000_000  # build and run the mutant when it has fewer parameters than this
_NUMBER = re.compile(r"-?\d+")


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def _mutate(data: Any, draw: Any) -> Any:
    data = copy.deepcopy(data)
    paths = [p for p in _paths(data) if p]
    path = draw(st.sampled_from(paths))
    parent, key = _get(data, path[:-1]), path[-1]
    value = parent[key]
    kind = draw(st.sampled_from(["delete", "duplicate", "retype", "number", "swap_op", "splice", "rename"]))
    if kind == "delete":
        del parent[key]
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(value))
    elif kind == "retype":
        parent[key] = draw(st.sampled_from([0, -1, 7, 2.5, True, None, "", "x", [], {}, [1, 2], {"a": 1}, "conv"]))
    elif kind == "number" and isinstance(value, str) and _NUMBER.search(value):
        numbers = list(_NUMBER.finditer(value))
        m = draw(st.sampled_from(numbers))
        new = str(draw(st.sampled_from([0, -1, 1, 2, 3, 4, 7, 100, 4096, 10**9])))
        parent[key] = value[: m.start()] + new + value[m.end():]
    elif kind == "swap_op" and isinstance(value, str) and value.split():
        names = sorted(REGISTRY) + list(data.get("blocks", {}) if isinstance(data, dict) else []) + ["cnov", "block"]
        parent[key] = " ".join([draw(st.sampled_from(names))] + value.split()[1:])
    elif kind == "splice" and isinstance(data, dict) and isinstance(data.get("blocks"), dict) and data["blocks"]:
        blocks = data["blocks"]
        a, b = draw(st.sampled_from(sorted(blocks))), draw(st.sampled_from(sorted(blocks)))
        blocks[a] = copy.deepcopy(blocks[b])
    elif kind == "rename" and isinstance(parent, dict):
        parent[str(key) + draw(st.sampled_from(["_", "x", "0", ".", " "]))] = parent.pop(key)
    return data


@st.composite
def mutants(draw: Any) -> tuple[str, str]:
    seed = draw(st.sampled_from(SEEDS))
    data = yaml.safe_load(seed.read_text())
    for _ in range(draw(st.integers(1, 3))):
        data = _mutate(data, draw)
    text = yaml.safe_dump(data, sort_keys=False)
    return seed.name, text


def _outcome(text: str, base: Path) -> str:
    start = time.perf_counter()
    path = base / "mutant.yaml"
    path.write_text(text)
    try:
        report = archspec.check(path)
    except archspec.SpecError as e:
        assert e.line >= 0 and e.code
        outcome = "error"
    else:
        outcome = "valid"
        if report.params < SMALL:
            model = archspec.build(path).eval()
            h, w = report.min_input_size
            with torch.no_grad():
                model(torch.zeros(1, report.input_channels, h, w))
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT_S, f"took {elapsed:.2f}s"
    return outcome


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=EXAMPLES <= 150)
@given(mutants())
def test_mutated_specs_build_or_raise_spec_error(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]) -> None:
    _, text = case
    base = tmp_path_factory.mktemp("fuzz", numbered=True)
    for lib in (ROOT / "specs" / "blocks").glob("*.yaml"):  # keep `use:` working for zoo specs
        (base / "blocks").mkdir(exist_ok=True)
        (base / "blocks" / lib.name).write_text(lib.read_text())
    _outcome(text, base)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=EXAMPLES <= 150)
@given(st.lists(st.sampled_from(list("archspec:1 name\n-[]{},'\"&*!#|>%@`\t$x3") + ["conv ", "network:", "\n  "]),
                max_size=80).map("".join))
def test_random_text_never_crashes(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    base = tmp_path_factory.mktemp("rand", numbered=True)
    _outcome(text, base)
