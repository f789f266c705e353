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

This module writes; archspec/hub_load.py reads (it builds, so it stands above archspec/api.py,
which gives every model it builds ``save_pretrained`` from here). ``huggingface_hub`` is needed only
for repository ids (``pip install 'archspec[hub]'``); folders
need nothing beyond archspec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG, WEIGHTS, SPEC = "config.json", "model.safetensors", "spec.yaml"


def _save_pretrained_method(self: Any, folder: str | Path) -> Path:
    """Write this network into ``folder``: spec.yaml, model.safetensors, config.json (archspec/hub.py)."""
    return save_pretrained(self, folder)


def attach_save_pretrained(model: Any, spec: Any, overrides: Any, optimized: bool = False) -> None:
    """Remember what ``model`` was built from and give it ``model.save_pretrained(folder)`` and timm's
    ``get_classifier()`` / ``reset_classifier(n)`` (archspec/heads.py). torch.fx makes a class per
    GraphModule, so the methods are that class's (an AuxModel's class is archspec's)."""
    from archspec.heads import get_classifier, reset_classifier

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
