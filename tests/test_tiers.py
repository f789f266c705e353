"""The fast tier (tests/conftest.py): a parametrised test's fast_params ids that name no parameter
stop the run, so a renamed parameter cannot silently move between tiers."""

from __future__ import annotations

import pytest

from tests.paths import ROOT

pytest_plugins = ["pytester"]


def _project(pytester: pytest.Pytester, ids: str) -> None:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(
        test_x=f"""
import pytest

@pytest.mark.fast_params({ids})
@pytest.mark.parametrize("n", ["a", "b", "c"])
def test_n(n):
    pass
"""
    )


def test_fast_params_keep_their_ids_and_mark_the_rest_slow(pytester: pytest.Pytester) -> None:
    _project(pytester, '"a"')
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest("-q", "-m", "not slow", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=2)


def test_an_id_that_names_no_parameter_stops_the_run(pytester: pytest.Pytester) -> None:
    _project(pytester, '"a", "renamed"')
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    assert result.ret != 0
    assert "test_x.py::test_n: fast_params ['renamed'] name no parameter" in result.stderr.str()
