"""Reading input files safely and writing output files atomically.

Reading: only regular files, never more than a size limit (``/dev/zero`` or a FIFO given as a
spec or weights file is refused before a byte is read). Writing: a failure leaves any existing
file untouched and no partial file; temporary files carry the writer's process id, so one left by
a writer killed with ``kill -9`` is removed by the next write to the same target.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archspec.errors import Loc, SpecError, printable


def _where(path: str | Path) -> Loc:
    return Loc(printable(str(path)), 0, 0)


def _missing_hint(path: Path) -> str:
    """What to do about a path that does not exist: the file it probably meant, else where it was looked for."""
    if not path.suffix:
        for suffix in (".yaml", ".yml"):
            if path.with_suffix(suffix).is_file():
                return f"did you mean {printable(str(path.with_suffix(suffix)))}?"
    if not path.is_absolute() and not path.parent.is_dir():
        return f"the folder {printable(str(path.parent))} does not exist either (relative to {printable(os.getcwd())})"
    if not path.is_absolute():
        return f"a relative path is read from the working directory, {printable(os.getcwd())}"
    return "check the path"


def _strerror(e: OSError) -> str:
    return e.strerror or str(e)


def open_regular(path: str | Path, what: str = "file") -> int:
    """An open file descriptor of ``path``, refused (SpecError, code io) unless it is a regular file.

    The file is opened without blocking (a FIFO with no writer would hang a plain open) and checked
    with fstat on the descriptor itself, so it cannot be swapped between the check and the read.
    """
    shown = printable(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise SpecError("no such file", _where(path), code="io", hint=_missing_hint(Path(path))) from None
    except IsADirectoryError:
        raise SpecError(f"{shown} is a directory, not a {what}", _where(path), code="io") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        message = _strerror(e) if isinstance(e, OSError) else "the path contains a NUL byte"
        raise SpecError(f"cannot read {shown}: {message}", _where(path), code="io") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        os.close(fd)
        raise SpecError(f"cannot read {shown}: {_strerror(e)}", _where(path), code="io") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise SpecError(f"{shown} is {kind}", _where(path), code="io", hint=f"give the path of a {what}")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def read_limited(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file, refused with a located ``limit`` error when larger than ``limit``."""
    fd = open_regular(path, what)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise SpecError(f"cannot read {printable(str(path))}: {_strerror(e)}", _where(path), code="io") from None
    if len(data) > limit:
        raise SpecError(
            f"the file is larger than {limit} bytes",
            Loc(printable(str(path)), 1, 1),
            code="limit",
            hint="archspec reads spec files of up to 4 MiB",
        )
    return data


def _folder(target: Path) -> Path:
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SpecError(
            f"cannot write {printable(str(target))}: folder {printable(str(directory))} does not exist", _where(target), code="io"
        )
    if target.is_dir():
        raise SpecError(f"cannot write {printable(str(target))}: it is a directory", _where(target), code="io")
    return directory


def refuse_overwriting_inputs(output: str | Path, *inputs: str | Path | None) -> None:
    """An output that is one of the inputs (``compile x.yaml -o x.yaml``) would destroy it: refuse."""
    out = Path(output)
    for given in inputs:
        if given is None:
            continue
        p = Path(given)
        try:
            same = out.exists() and p.exists() and os.path.samefile(out, p)
        except (OSError, ValueError):
            same = False
        if same or (not out.exists() and out.resolve() == p.resolve()):
            raise SpecError(
                f"the output {printable(str(output))} is the input {printable(str(given))}",
                _where(output),
                code="io",
                hint="write the output to another file",
            )


def _prefix(target: Path) -> str:
    return f".{target.name}."


def _clean_stale(directory: Path, target: Path) -> None:
    """Remove temporary files of ``target`` left by writers that no longer run (killed mid-write)."""
    prefix = _prefix(target)
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and ".tmp" in n]
    except OSError:
        return
    for name in names:
        pid_text = name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _alive(pid):
            continue
        _remove(str(directory / name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _mkstemp(target: Path, directory: Path, suffix: str) -> tuple[int, str]:
    _clean_stale(directory, target)
    try:
        return tempfile.mkstemp(prefix=f"{_prefix(target)}{os.getpid()}.", suffix=suffix, dir=directory)
    except OSError as e:
        raise SpecError(f"cannot write {printable(str(target))}: {_strerror(e)}", _where(target), code="io") from None


@contextmanager
def atomic_path(path: str | Path, keep_name: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` for a library that writes files itself (torch.save, ONNX).

    When the block ends normally the file replaces ``path`` in one step; on any error it is removed.
    With ``keep_name`` the temporary file has the target's own name, in a private folder beside it:
    writers that name what they write after the file (the root folder of torch's zip archives) then
    write the same bytes whatever the temporary name.
    """
    target = Path(path)
    if keep_name:
        with _named_tmp(target) as named:
            yield named
        return
    # same suffix as the target: some writers (torch.export.save) look at it
    fd, tmp = _mkstemp(target, _folder(target), f".tmp{target.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(tmp)
        os.replace(tmp, target)
    except OSError as e:
        _remove(tmp)
        raise SpecError(f"cannot write {printable(str(target))}: {_strerror(e)}", _where(target), code="io") from None
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def _named_tmp(target: Path) -> Iterator[Path]:
    import shutil

    try:
        folder = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=_folder(target))
    except OSError as e:
        raise SpecError(f"cannot write {printable(str(target))}: {_strerror(e)}", _where(target), code="io") from None
    tmp = os.path.join(folder, target.name)
    try:
        yield Path(tmp)
        _publish(tmp)
        os.replace(tmp, target)
    except OSError as e:
        raise SpecError(f"cannot write {printable(str(target))}: {_strerror(e)}", _where(target), code="io") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    """Write ``data`` to ``path`` in one step (see :func:`atomic_path`), flushed to disk first."""
    # a lone surrogate (a file name with bytes that are not UTF-8) is written escaped, never a crash
    payload = data.encode("utf-8", errors="backslashreplace") if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
