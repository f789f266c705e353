"""archspec: convolutional network architectures as data.

``archspec.check(spec)`` validates a YAML spec and reports exact symbolic shapes without
importing torch; ``archspec.build(spec)`` compiles it into a ``torch.nn.Module``;
``archspec.optimize(model)`` rewrites a compiled model for fast inference. ``optimize`` is
loaded on first use, so ``import archspec`` does not import torch.
"""

from typing import Any

from archspec.api import Report, analyze, build, check
from archspec.errors import SpecError
from archspec.spec.load import dump
from archspec.version import __version__

__all__ = [
    "SpecError",
    "Report",
    "analyze",
    "build",
    "check",
    "dump",
    "from_pretrained",
    "import_module",
    "optimize",
    "save_pretrained",
    "transfer",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "optimize":  # imported on first use: it needs torch, which `check` never imports
        from archspec.inference import optimize

        return optimize
    if name == "transfer":
        from archspec.weights import transfer

        return transfer
    if name in ("save_pretrained", "from_pretrained"):
        from archspec import hub

        return getattr(hub, name)
    if name == "import_module":
        from archspec.importer import import_module

        return import_module
    raise AttributeError(f"module 'archspec' has no attribute {name!r}")
