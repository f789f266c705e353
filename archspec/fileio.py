"""Writing output files atomically: a failure leaves any existing file untouched and no partial file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from archspec.errors import Loc, SpecError


def write_atomic(path: str | Path, data: bytes | str) -> None:
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SpecError(f"cannot write {target}: folder {directory} does not exist", Loc(str(target), 0, 0), code="io")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise SpecError(f"cannot write {target}: {e.strerror}", Loc(str(target), 0, 0), code="io") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
