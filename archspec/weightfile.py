"""Weights as safetensors files: read, and written atomically with the network's name and digest.

safetensors holds tensors and a string-to-string header only — no code runs on reading, whatever
the file — and is what timm and the Hugging Face Hub write (``model.safetensors``). archspec reads
``.safetensors`` wherever it reads a saved state_dict (``--weights``, ``--weights-from``,
``transfer``) and writes it from ``export MODEL.safetensors`` and ``save_pretrained``. The
``safetensors`` package is imported only here, when such a file is read or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archspec.errors import Loc, SpecError, printable
from archspec.fileio import open_regular, write_atomic

SUFFIX = ".safetensors"


def is_safetensors(path: str | Path) -> bool:
    return str(path).endswith(SUFFIX)


def read_safetensors(path: str | Path) -> dict[str, Any]:
    """A state_dict from a safetensors file (on the CPU); a located ``weights`` error if it is not one."""
    import os

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    os.close(open_regular(path, "weights file"))  # a regular file: never a FIFO or device (it would hang)
    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise SpecError(
            f"cannot read weights from {printable(str(path))}: not a safetensors file ({printable(first)})",
            Loc(printable(str(path)), 0, 0),
            code="weights",
            hint="expected a file written by safetensors.torch.save_file or archspec export MODEL.safetensors",
        ) from None


def safetensors_bytes(state: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """``state`` serialised; tensors are copied to contiguous CPU memory of their own first (safetensors
    refuses views that share storage, and channels_last weights are not contiguous)."""
    from safetensors.torch import save

    own = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return bytes(save(own, metadata=metadata))


def write_safetensors(path: str | Path, state: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the old file or none, never half of one)."""
    write_atomic(path, safetensors_bytes(state, metadata))


def metadata_of(model: Any) -> dict[str, str]:
    """The header archspec writes beside the weights: the network's name, digest and archspec's version."""
    from archspec.version import __version__

    report = getattr(model, "archspec_report", None)
    meta = {"format": "pt", "archspec_version": __version__}
    if report is not None:
        meta |= {"archspec_name": str(report.name), "archspec_spec_sha256": str(report.digest)}
    return meta
