"""Atomic file output: write to a temporary name in the same folder, then rename.

``os.replace`` within one folder is atomic on POSIX: a reader (or a crash) sees either the
previous file or the complete new one, never a half-written file. The temporary file is
flushed to disk before the rename, and it gets the permissions a plain ``open(path, "w")``
would have given (``tempfile`` creates files readable by their owner only); an existing
target keeps its mode.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import IO, Iterator


def file_mode(path: str) -> int:
    """Permissions for a file written at ``path``: those of the file it replaces, else what a
    plain ``open`` would give (0666 minus the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_file(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable; not every platform can open a folder (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final name.
    suffix : str, optional
        Suffix of the temporary name (default: ``path``'s extension, so that tools that pick
        a format by extension, like matplotlib, still do).

    A failure inside the block (any exception, ``KeyboardInterrupt`` included) removes the
    temporary file and leaves any previous ``path`` untouched; so does a killed process, which
    can only leave a stray hidden ``.NAME.*.tmp*`` file beside it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    suffix = suffix if suffix is not None else os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, file_mode(path))
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


@contextlib.contextmanager
def atomic_text(path, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Open a text file for writing that appears at ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            yield fh
