"""Writing result files safely: an output is checked for writability before the work that
produces it starts, and written to a temporary file beside it that replaces it only when
complete, so a failure never leaves a truncated file or destroys the one that was there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def check_writable(path: str | os.PathLike, option: str) -> Path:
    """`path` as a Path, or ValueError naming `option` when a file cannot be written there:
    a missing or read-only folder, or a folder (or other non-file) at the path itself.
    Checked by creating and removing a temporary file in the folder, which is what
    writing it will do."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ValueError(f"{option} {p}: exists and is not a file")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{option} {p}: folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=folder)
    except OSError as err:
        raise ValueError(f"{option} {p}: cannot write in {folder} ({err.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{option} {p}: the file is read-only")
    return p


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path`, with the same suffix (writers that choose the format
    by extension see the right one); when the block ends without an exception it replaces
    `path` in one step (os.replace), otherwise it is removed and `path` stays as it was."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=f".tmp{p.suffix}", dir=p.parent if str(p.parent) else ".")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600): give it the mode a plain open() would,
        # or the replaced file's own.
        os.chmod(tmp, p.stat().st_mode & 0o7777 if p.exists() else 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` through `atomic_output`; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)
