"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write YAML text to a file in a fresh folder and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


# ---- the fast tier ----------------------------------------------------------------------------
# `pytest -m "not slow"` is the tier a developer runs on every change (docs/testing.md); CI runs
# everything. A test that builds full-size networks carries @pytest.mark.slow where it is written;
# a parametrised one may carry @pytest.mark.fast_params(ids...) instead: the parameter ids that stay
# in the fast tier (a few representatives, from a measured run with --durations), the rest slow.
# An id that names no parameter of its test is an error, so a renamed parameter cannot change tiers.


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fast_params(*ids): the parameter ids of this test in the fast tier; the others are slow")


def _declared(item: pytest.Item) -> int:
    """How many parameter sets the test's parametrize marks declare (their product)."""
    count = 1
    for mark in item.iter_markers("parametrize"):
        values = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("argvalues", [])
        count *= len(list(values))
    return count


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[str, tuple[set[str], set[str], int]] = {}  # test → (fast ids, collected ids, declared)
    for item in items:
        mark = item.get_closest_marker("fast_params")
        if mark is None:
            continue
        function, _, param = item.nodeid.partition("[")
        param = param.rstrip("]")
        fast, collected, _ = seen.setdefault(function, (set(mark.args), set(), _declared(item)))
        collected.add(param)
        if param not in fast:
            item.add_marker(pytest.mark.slow)
    for function, (fast, collected, declared) in seen.items():
        unknown = fast - collected
        if unknown and len(collected) == declared:  # every parameter collected (not a -k or single-id run)
            raise pytest.UsageError(f"{function}: fast_params {sorted(unknown)} name no parameter of the test")
