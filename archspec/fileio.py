"""Writing output files atomically: a failure leaves any existing file untouched and no partial file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archspec.errors import Loc, SpecError


def _folder(target: Path) -> Path:
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SpecError(f"cannot write {target}: folder {directory} does not exist", Loc(str(target), 0, 0), code="io")
    return directory


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a library that writes files itself (torch.save, ONNX).

    When the block ends normally the file replaces ``path`` in one step; on any error it is removed.
    """
    target = Path(path)
    # same suffix as the target: some writers (torch.export.save) look at it
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=_folder(target))
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(tmp)
        os.replace(tmp, target)
    except OSError as e:
        _remove(tmp)
        raise SpecError(f"cannot write {target}: {e.strerror or e}", Loc(str(target), 0, 0), code="io") from None
    except BaseException:
        _remove(tmp)
        raise


def _publish(tmp: str) -> None:
    """Give the file the permissions a plain open() would (mkstemp makes it private to its owner)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_atomic(path: str | Path, data: bytes | str) -> None:
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = _folder(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp)
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
