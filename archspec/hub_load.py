"""``from_pretrained``: a network read back from the folder ``save_pretrained`` writes (archspec/hub.py),
or from a Hub repository: the spec built, its weights loaded strictly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archspec.errors import Loc, SpecError, printable
from archspec.hub import CONFIG, SPEC, WEIGHTS


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
