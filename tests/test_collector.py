"""The garbage collector's pause around analysis and build (archspec/collector.py): paused while they run,
restored after, whatever happens, and left alone where the caller had turned it off."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import archspec
from archspec import collector
from archspec.errors import SpecError

ZOO = Path(archspec.__file__).parent / "zoo"


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def _seen_inside(monkeypatch: Any) -> list[tuple[str, bool]]:
    """Whether the collector was enabled each time shape inference (analysis) and weight initialisation
    (the build after it) ran."""
    import importlib

    seen: list[tuple[str, bool]] = []
    for module, name in (("archspec.pipeline", "infer_shapes"), ("archspec.compile", "initialize")):
        stage = getattr(importlib.import_module(module), name)

        def recording(*args: Any, _stage: Any = stage, _name: str = name, **kwargs: Any) -> Any:
            seen.append((_name, gc.isenabled()))
            return _stage(*args, **kwargs)

        monkeypatch.setattr(importlib.import_module(module), name, recording)
    return seen


def test_paused_while_checking_and_building_and_enabled_after(monkeypatch: Any) -> None:
    from archspec import memo

    seen = _seen_inside(monkeypatch)
    gc.enable()
    archspec.check(ZOO / "resnet18.yaml")
    memo.clear()
    archspec.build(ZOO / "resnet18.yaml")
    assert seen == [("infer_shapes", False), ("infer_shapes", False), ("initialize", False)]
    assert gc.isenabled()


def test_restored_after_a_refused_spec(monkeypatch: Any) -> None:
    gc.enable()
    with pytest.raises(SpecError):
        archspec.check("archspec: 1\nname: t\ninput: {channels: 3, size: [8, 8]}\nnetwork: [conv2d 4 9x9]\n")
    assert gc.isenabled()


def test_a_collector_turned_off_stays_off_and_is_not_run(monkeypatch: Any) -> None:
    runs: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: runs.append(generation))
    gc.disable()
    archspec.check(ZOO / "resnet18.yaml")
    assert not gc.isenabled()
    assert runs == []
    gc.enable()
    archspec.check(ZOO / "resnet18.yaml")
    assert gc.isenabled()
    assert runs == [0]  # the young generation, once, as the analysis ends


def test_nested_and_concurrent_pauses_end_once_when_the_last_ends() -> None:
    gc.enable()
    other_paused, outer_ended = threading.Event(), threading.Event()
    states: list[bool] = []

    @collector.paused
    def outer() -> None:
        other_paused.wait(5)
        states.append(gc.isenabled())

    @collector.paused
    def nested() -> None:
        states.append(gc.isenabled())

    @collector.paused
    def other() -> None:
        nested()
        states.append(gc.isenabled())  # after the nested pause ended: still paused
        other_paused.set()
        outer_ended.wait(5)
        states.append(gc.isenabled())  # after the other thread's pause ended: still paused

    thread = threading.Thread(target=other)
    thread.start()
    outer()
    outer_ended.set()
    thread.join()
    assert states == [False, False, False, False]
    assert gc.isenabled()
