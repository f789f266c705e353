"""Where `archspec import` and `--weights-from` find a model: ``timm:NAME``, ``torchvision:NAME``
or ``path/to/file.py:ClassName`` (constructed with the keyword arguments of ``--args``)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from archspec.errors import Loc, SpecError


def parse_args(text: str | None) -> dict[str, Any]:
    """``--args '{"num_classes": 10}'``: a JSON object of constructor keyword arguments."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"--args is not JSON: {e}", Loc("--args", 1, e.colno), code="import") from None
    if not isinstance(value, dict):
        raise SpecError(
            "--args must be a JSON object of keyword arguments, e.g. '{\"num_classes\": 10}'", Loc("--args", 1, 1), code="import"
        )
    return value


def load_model(source: str, args: dict[str, Any] | None = None, pretrained: bool = False, device: str | None = None) -> Any:
    """Construct the model a source names (random weights unless ``pretrained``); a timm or
    torchvision model on ``device`` when given (``meta``: no memory, no initial weights drawn)."""
    args = dict(args or {})
    if device is not None and not pretrained and source.partition(":")[0] in ("timm", "torchvision"):
        import torch

        with torch.device(device):
            return load_model(source, args)
    where = Loc(source, 0, 0)
    kind, sep, name = source.partition(":")
    if not sep or not name:
        raise SpecError(
            f"cannot tell where to find the model {source!r}",
            where,
            code="import",
            hint="write timm:NAME, torchvision:NAME or path/to/model.py:ClassName",
        )
    if kind == "timm":
        return _timm(name, args, pretrained, where)
    if kind == "torchvision":
        return _torchvision(name, args, pretrained, where)
    path = Path(kind)
    if path.suffix != ".py":
        raise SpecError(
            f"unknown model source {kind!r}",
            where,
            code="import",
            hint="write timm:NAME, torchvision:NAME or path/to/model.py:ClassName",
        )
    if not path.is_file():
        raise SpecError(f"{path} does not exist", where, code="io")
    module_name = f"{TEMPORARY_MODULE}{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)  # the user's own model file: running it is what importing it means
    except Exception as e:  # noqa: BLE001 - the user's code failing is the user's error, not archspec's
        raise _failed(f"running {path} failed", e, where) from None
    cls = getattr(module, name, None)
    if cls is None or not callable(cls):
        raise SpecError(f"{path} defines no class or function {name!r}", where, code="import")
    try:
        return cls(**args)
    except Exception as e:  # noqa: BLE001 - as above: the model's own constructor raised
        raise _failed(f"constructing {name}({', '.join(f'{k}={v!r}' for k, v in args.items())}) failed", e, where) from None


def _timm(name: str, args: dict[str, Any], pretrained: bool, where: Loc) -> Any:
    import timm

    if not timm.is_model(name):
        raise SpecError(f"timm has no model {name!r}", where, code="import")
    try:
        return timm.create_model(name, pretrained=pretrained, **args)
    except TypeError as e:  # an argument the model does not take (--args)
        raise _failed(f"constructing timm:{name} failed", e, where) from None
    except OSError as e:  # a download (pretrained weights) without a network
        raise _failed(f"constructing timm:{name} needed a file or a download that failed", e, where, _OFFLINE) from None


def _torchvision(name: str, args: dict[str, Any], pretrained: bool, where: Loc) -> Any:
    import torchvision

    if name not in torchvision.models.list_models():
        raise SpecError(f"torchvision has no model {name!r}", where, code="import")
    try:
        return torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None, **args)
    except (TypeError, ValueError) as e:  # an argument the model does not take (--args)
        raise _failed(f"constructing torchvision:{name} failed", e, where) from None
    except OSError as e:  # a download the constructor asked for (a backbone's weights) without a network
        raise _failed(
            f"constructing torchvision:{name} needed a file or a download that failed", e, where, _NO_BACKBONE
        ) from None


_OWN_CODE = "the error is in the model's own code; run it in Python to see the traceback"
_OFFLINE = "without a network, construct it without pretrained weights"
_NO_BACKBONE = """import needs no weights: --args '{"weights_backbone": null}'"""


def _failed(what: str, e: BaseException, where: Loc, hint: str = _OWN_CODE) -> SpecError:
    """The model failing: one located import error naming the model and the exception (the hint: what to do)."""
    text = str(e).splitlines()[0] if str(e) else ""
    return SpecError(
        f"{what}: {type(e).__name__}{': ' + text if text else ''}",
        where,
        code="import",
        hint=hint,
    )


TEMPORARY_MODULE = "_archspec_import_"  # a user's model.py is loaded under this name plus a number


def module_name(cls: type) -> str:
    """The module a class comes from as its user knows it: a model file's own name (``model``), not
    the temporary name load_model imported it under."""
    name = cls.__module__
    if name.startswith(TEMPORARY_MODULE):
        import inspect

        try:
            return Path(inspect.getfile(cls)).stem
        except (TypeError, OSError):
            return "model"
    return name


__all__ = ["load_model", "module_name", "parse_args"]
