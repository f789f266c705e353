"""Reference implementations of zoo specs, for tests that compare against independent truth.

Maps a spec's file stem (``specs/<stem>.yaml``) to a builder of the reference network with
random initialisation; tests copy its weights into ours through ``state_dict`` and compare outputs.
Tests iterate over the specs present in ``specs/`` that have an entry here, so a new zoo spec is
covered by adding one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _timm(name: str) -> Callable[[], Any]:
    def build() -> Any:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


REFERENCES: dict[str, Callable[[], Any]] = {
    "inception_v4": _timm("inception_v4"),
}


def zoo_with_references() -> list[str]:
    """Stems of the zoo specs that have a reference builder, in name order."""
    return sorted(stem for stem in REFERENCES if (SPECS / f"{stem}.yaml").exists())
