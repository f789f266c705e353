"""archspec: convolutional network architectures as data.

``archspec.check(spec)`` validates a YAML spec and reports exact symbolic shapes without
importing torch; ``archspec.build(spec)`` compiles it into a ``torch.nn.Module``;
``archspec.optimize(model)`` rewrites a compiled model for fast inference. ``optimize`` is
loaded on first use, so ``import archspec`` does not import torch.
"""

import sys
import types
from typing import Any

from archspec.api import Report, analyze, build, check
from archspec.errors import SpecError
from archspec.language.load import dump
from archspec.version import __version__

# Loaded on first use: each needs torch, graphviz or a large module that `check` never imports.
_LAZY = {
    "optimize": "archspec.inference",
    "transfer": "archspec.weights",
    "save_pretrained": "archspec.hub",
    "from_pretrained": "archspec.hub_load",
    "import_module": "archspec.importer",
    "render": "archspec.public",
    "render_page": "archspec.public",
    "summary": "archspec.public",
    "diff": "archspec.public",
    "compile": "archspec.public",
    "export": "archspec.public",
}

__all__ = ["SpecError", "Report", "analyze", "build", "check", "dump", *_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'archspec' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``archspec.render`` (and summary, diff, compile, export) are functions, and also modules of
    the package: importing such a module must not replace the function on the package (Python's
    import sets the parent's attribute). The modules stay importable by name
    (``from archspec.render import render_spec``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == "archspec.public":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
