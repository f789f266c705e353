"""Python's cyclic garbage collector paused while a spec is analysed or built.

Analysing and building a network allocate tens of thousands of small containers (records, dicts,
modules) that all live on. CPython's collector runs a young-generation collection every 700 such
allocations and, every ten of those, an older one, each examining the objects still alive; and the
count of those collections is what eventually starts a full collection of the whole process (145 ms
with torch and torchvision imported, session 14). So a build examines what it has just made several
times, finds nothing to free, and now and then pays for a full collection besides. Paused, the objects
it made are examined once, by the young collection :func:`paused` runs as it ends, and the build pays
for that itself rather than leaving it to whatever allocates next. ``timeit`` pauses the collector for
the same reason; Mercurial's ``util.nogc`` does it around bulk construction.

The collector is process-wide: the pause is counted, so nested and concurrent analyses in threads end
it once, when the last one ends, and it is restored to what it was (a collector the caller had
disabled stays disabled, and is not run).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_depth = 0  # analyses under way
_restore = False  # whether the collector was enabled when the first of them began


def paused(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` with the collector paused while it runs (see the module's docstring)."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        global _depth, _restore
        with _lock:
            if _depth == 0:
                _restore = gc.isenabled()
                gc.disable()
            _depth += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                _depth -= 1
                collect = _depth == 0 and _restore
                if collect:
                    gc.enable()
            if collect:
                gc.collect(0)  # what was made here, examined once

    return run
