"""``save_pretrained`` / ``from_pretrained``: a network as a folder in the Hugging Face Hub's and
timm's layout — ``config.json``, ``model.safetensors`` — plus the spec it was built from.

    model.save_pretrained("my-resnet")          # or archspec.save_pretrained(model, "my-resnet")
    model = archspec.from_pretrained("my-resnet")           # a folder
    model = archspec.from_pretrained("user/my-resnet")      # a Hub repository (huggingface_hub)

The folder holds ``spec.yaml`` (the spec after every ``--set``, ``num_classes`` and ``in_chans``,
with the blocks it uses written in: it builds alone), ``model.safetensors`` (the state_dict) and
``config.json`` (``architecture``: ``archspec_NAME`` as registered with timm, ``num_classes``,
``pretrained_cfg`` with the input size, mean, std, first conv and classifiers, and archspec's own
entries: the spec file and its digest). Reading it back builds the spec and loads the weights
strictly: the same module, weights and outputs. A zoo network's folder is also what timm's
``create_model("local-dir:FOLDER")`` reads, once ``archspec.timm`` is imported.

``huggingface_hub`` is needed only for repository ids (``pip install 'archspec[hub]'``); folders
need nothing beyond archspec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archspec.errors import Loc, SpecError, printable

CONFIG, WEIGHTS, SPEC = "config.json", "model.safetensors", "spec.yaml"


def _save_pretrained_method(self: Any, folder: str | Path) -> Path:
    """Write this network into ``folder``: spec.yaml, model.safetensors, config.json (archspec/hub.py)."""
    return save_pretrained(self, folder)


def attach_save_pretrained(model: Any, spec: Any, overrides: Any, optimized: bool = False) -> None:
    """Remember what ``model`` was built from and give it ``model.save_pretrained(folder)`` and timm's
    ``get_classifier()`` / ``reset_classifier(n)`` (archspec/create.py). torch.fx makes a class per
    GraphModule, so the methods are that class's (an AuxModel's class is archspec's)."""
    from archspec.create import get_classifier, reset_classifier

    # an optimized network's weights are not its spec's (BatchNorm folded into the convs)
    model.archspec_source = None if optimized else (spec, dict(overrides or {}))
    cls = type(model)
    for name, method in (
        ("save_pretrained", _save_pretrained_method),
        ("get_classifier", get_classifier),
        ("reset_classifier", reset_classifier),
    ):
        if getattr(cls, name, None) is None:
            setattr(cls, name, method)


def save_pretrained(model: Any, folder: str | Path) -> Path:
    """Write ``model`` (built by archspec.build) into ``folder``: spec.yaml, model.safetensors, config.json."""
    from archspec.fileio import write_atomic
    from archspec.report import report_of
    from archspec.sweep.standalone import standalone_yaml
    from archspec.version import __version__
    from archspec.weightfile import metadata_of, write_safetensors

    report = report_of(model)
    source = getattr(model, "archspec_source", None)
    if source is None or getattr(model, "feature_info", None) is not None:
        raise TypeError(
            "save_pretrained takes a network as archspec.build makes it: not optimized (its weights are no longer "
            "the spec's) nor features_only; save it before optimize"
        )
    spec, overrides = source
    if isinstance(spec, Mapping):  # a spec made in Python: its YAML text (the same data)
        from archspec.language.load import dump

        spec = dump(spec)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    text = standalone_yaml(spec, overrides, f"{report.name}: written by archspec {__version__} save_pretrained")
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg.pop("state_dict", None)
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items() if isinstance(v, (str, int, float, list, tuple))}
    config = {
        "architecture": "archspec_" + report.name,
        "num_classes": int(report.output_shape[-1]) if report.output_shape else 0,
        "num_features": 0,
        "pretrained_cfg": cfg | {"input_size": [report.input_channels, *report.input_size]},
        "archspec": {"version": __version__, "spec": SPEC, "spec_sha256": report.digest, "weights": WEIGHTS},
    }
    write_atomic(target / SPEC, text)
    write_safetensors(target / WEIGHTS, model.state_dict(), metadata_of(model))
    write_atomic(target / CONFIG, json.dumps(config, indent=2) + "\n")
    return target


def _folder(source: str | Path) -> Path:
    path = Path(source)
    if path.is_dir():
        return path
    text = str(source)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/")):
        raise SpecError(
            f"{printable(text)}: no such folder (from_pretrained takes a folder written by save_pretrained or a Hub repo id)",
            Loc(printable(text), 0, 0),
            code="io",
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SpecError(
            f"{printable(text)}: a Hub repository needs huggingface_hub (pip install 'archspec[hub]')",
            Loc(printable(text), 0, 0),
            code="io",
        ) from None
    try:
        return Path(snapshot_download(repo_id=text, allow_patterns=[CONFIG, WEIGHTS, SPEC]))
    except Exception as e:  # noqa: BLE001 - any failure to fetch is one line for the user
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise SpecError(f"cannot download {printable(text)}: {printable(first)}", Loc(printable(text), 0, 0), code="io") from None


def from_pretrained(source: str | Path, **kwargs: Any) -> Any:
    """The network saved in ``source`` (a folder, or a Hub repository id), its weights loaded strictly.

    timm's arguments (``num_classes``, ``in_chans``, ``features_only``, …) rebuild it adapted, the
    saved weights loaded as timm loads pretrained ones (a new classifier left at its initial weights).
    """
    from archspec.api import build
    from archspec.export import load_weights

    folder = _folder(source)
    for name in (CONFIG, SPEC, WEIGHTS):
        if not (folder / name).is_file():
            raise SpecError(f"{printable(str(folder))} has no {name}", Loc(printable(str(folder / name)), 0, 0), code="io")
    try:
        config = json.loads((folder / CONFIG).read_text())
        saved_cfg = dict(config.get("pretrained_cfg") or {})
        classes = int(config["num_classes"])
    except (ValueError, KeyError, TypeError) as e:
        raise SpecError(f"{CONFIG} is not archspec's: {e}", Loc(printable(str(folder / CONFIG)), 0, 0), code="io") from None
    if kwargs:
        overlay = {
            "file": str(folder / WEIGHTS),
            "num_classes": classes,
            "input_size": tuple(saved_cfg.get("input_size") or (3,)),
        }
        overlay |= {k: saved_cfg[k] for k in ("first_conv", "classifier", "mean", "std") if k in saved_cfg}
        return build(folder / SPEC, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    model = build(folder / SPEC)
    load_weights(model, folder / WEIGHTS)
    model.pretrained_cfg = model.default_cfg = saved_cfg
    return model
