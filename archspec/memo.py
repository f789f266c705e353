"""A spec's report (its shaped graph), kept between builds and looked up by what it was made from.

``build`` is a pure function of the spec's text, the text of every file it ``use``s, the overrides
and the op registry: building the same spec again (a script rebuilding its network, a test, the
bench) finds the report of the last build instead of expanding and shaping the network again. The
key holds the text of every file as read for this build (``resolve`` runs every time: a file
edited, even within the same second and to the same size, is a new key), the overrides as plain
data, the working directory (a YAML text's ``use:`` paths are relative to it), the registry's ops
and the limits. Only what ``build`` itself makes (the weights, the modules, the forward's code
through archspec/compile.py's caches) is new in every build; a spec given as a ``Source`` object
(whose data need not be its text) is never kept. Bounded: the oldest go.

The report is shared by the models built from one key, as their layers' prototypes are: nothing
after the analysis writes to it (compile, optimize and export read it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from archspec.language.load import Source
from archspec.language.resolve import Resolved, resolve
from archspec.ops import REGISTRY
from archspec.pipeline import SpecLike, check_arguments, shaped_resolved
from archspec.report import Report, report_from

MAX_REPORTS = 32
_REPORTS: dict[tuple[Any, ...], Report] = {}

_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    """Plain data (what YAML and --set give): its repr tells any two such values apart (1, 1.0, True)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _key(spec: SpecLike, resolved: Resolved, overrides: Mapping[str, Any] | None, limits: tuple[Any, ...]) -> Any:
    """What the report of ``resolved`` is made from; None where that is not all plain text and data."""
    if isinstance(spec, Source) or not _plain(dict(overrides or {})):
        return None
    texts = tuple((s.file, str(s.path), s.text) for s in resolved.sources)
    if not all(text for _, _, text in texts):
        return None
    ops = tuple((name, id(op)) for name, op in REGISTRY.items())
    return (texts, repr(sorted((overrides or {}).items())), os.getcwd(), ops, limits)


def analyze_kept(spec: SpecLike, overrides: Mapping[str, Any] | None, *, max_params: int, strict: bool) -> Report:
    """``pipeline.analyze(spec, overrides, ...)``, the report kept from an earlier call where nothing it
    is made from has changed (see the module's docstring)."""
    check_arguments(spec, overrides, max_params)
    resolved = resolve(spec, overrides)
    key = _key(spec, resolved, overrides, (max_params,))
    report = _REPORTS.get(key) if key is not None else None
    if report is None:
        graph, _ = shaped_resolved(resolved, max_params)
        report = report_from(graph, resolved.digest)
        if key is not None:
            _REPORTS[key] = report
            while len(_REPORTS) > MAX_REPORTS:
                _REPORTS.pop(next(iter(_REPORTS)), None)
    if strict and report.warnings:
        raise report.warnings[0].error()
    return report


def clear() -> None:
    """Forget every kept report (the next build of each spec analyses it again)."""
    _REPORTS.clear()
