"""Every file ncanalyze writes goes through here: the output-path rules, atomic replacement,
errors that name the path the user gave (the lock of a run being written is :mod:`ncanalyze.lock`).

The rules (docs/RELIABILITY.md §5):

* **Never onto an input.** :func:`check_outputs` refuses an output that is the same file as an
  input, or as another output, compared by device and inode after following links (so a
  symlink, a hard link or ``./run.h5`` is caught), before anything is computed.
* **Regular files are replaced atomically.** The content goes to a hidden temporary file
  beside the target, is flushed to disk, gets the permissions a plain ``open(path, "w")``
  would have given (or the old file's mode) and is renamed onto the target: a reader or a
  crash sees the old file or the complete new one. An exception removes the temporary file.
* **Symlinks are followed**: the link stays, its target is replaced (the temporary file is
  made in the target's folder, so the rename stays within one file system).
* **Character devices and FIFOs are written through** (``-o /dev/null``, ``-o /dev/stdout``,
  a named pipe): renaming onto them would replace the device node itself. Run files (HDF5)
  must be regular files. Directories, block devices and sockets are refused.
* **Errors name the path the user gave**, never the temporary name (:class:`OutputError`).
* ``exists and not overwrite`` is one rule, :func:`check_overwrite`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from typing import IO, Iterable, Iterator, Mapping

from .errors import NcanalyzeError, OutputError, UsageError


def file_mode(path: str) -> int:
    """Permissions for a file written at ``path``: those of the file it replaces, else what a
    plain ``open`` would give (0666 minus the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def check_overwrite(path, overwrite: bool) -> None:
    """Refuse to replace an existing ``path`` unless ``overwrite`` (``--overwrite`` on the
    command line, ``overwrite=True`` in the API).

    Raises
    ------
    UsageError
    """
    if not overwrite and os.path.lexists(os.fspath(path)):
        raise UsageError("exists; pass --overwrite (overwrite=True) to replace it",
                         file=os.fspath(path))


def file_identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of the file ``path`` names (links followed), or None if none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs(outputs: Mapping[str, object], inputs: Iterable = ()) -> None:
    """Refuse outputs that would destroy an input or each other, or that are folders.

    Parameters
    ----------
    outputs : mapping of str to path or None
        Option name (``"--output"``, ``"--plot"``) to the path given; ``None`` is skipped.
    inputs : iterable of path
        Files the command reads.

    Raises
    ------
    UsageError
        An output is a directory, or the same file (device and inode, links followed) as an
        input or as another output.
    """
    given = {name: os.fspath(p) for name, p in outputs.items() if p is not None}
    for name, path in given.items():
        if os.path.isdir(path):
            raise UsageError(f"{name} {path}: is a directory; give a file name")
    seen: dict[object, str] = {}
    for name, path in given.items():
        key = file_identity(path) or os.path.realpath(path)
        if key in seen:
            raise UsageError(f"{name} {path}: is the same file as {seen[key]}; "
                             "give each output its own file")
        seen[key] = f"{name} {path}"
    for inp in inputs:
        inp = os.fspath(inp)
        ident = file_identity(inp)
        for name, path in given.items():
            if ident is not None and file_identity(path) == ident:
                raise UsageError(f"{name} {path}: is the same file as the input {inp}; "
                                 "writing it would destroy the input (give another file name)")


def fsync_folder(folder: str) -> None:
    """Make the rename itself durable; not every platform can open a folder (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def output_error(exc: OSError, path: str) -> OutputError:
    """``exc`` as an :class:`OutputError` naming ``path`` (the name the user gave)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"cannot write: {reason}", file=path)


@contextlib.contextmanager
def output_errors(path: str) -> Iterator[None]:
    """Turn an ``OSError`` of the block into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise output_error(exc, path) from exc


def resolve_output(path, *, regular: bool = False) -> tuple[str, bool]:
    """Where ``path`` is written, and whether to write through instead of replacing.

    Returns
    -------
    target : str
        ``path`` with symlinks followed (a dangling link gives the file it names).
    through : bool
        True for a character device or a FIFO (written in place).

    Raises
    ------
    UsageError
        A directory, a block device or socket, or (``regular=True``) anything but a regular
        file or a new name.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)
    try:
        # The name itself, not its real path: /dev/stdout is a link to /proc/self/fd/1,
        # whose "target" (pipe:[N]) names no file when stdout is a pipe.
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return target, False
    except OSError as exc:
        raise output_error(exc, path) from exc
    if stat.S_ISDIR(mode):
        raise UsageError("is a directory; give a file name", file=path)
    if stat.S_ISREG(mode):
        return target, False
    if not regular and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return path, True
    raise UsageError("is not a regular file" + (" (a run file must be one)" if regular else
                     " (devices other than character devices, and sockets, are refused)"),
                     file=path)


def _name_max(folder: str) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def bounded_name(folder: str, stem: str, tail: str, extra: int = 0) -> str:
    """``stem + tail`` with ``stem`` shortened until the name (plus ``extra`` bytes) fits the
    file system's name limit in ``folder`` (a legal 255-byte output name must still get its
    temporary and lock names beside it)."""
    room = _name_max(folder) - extra - len(os.fsencode(tail))
    while stem and len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem + tail


def temp_beside(target: str, tail: str = ".tmp") -> str:
    """Create a hidden temporary file ``.NAME.XXXXXXXXTAIL`` beside ``target`` (made with
    ``O_EXCL`` under an unpredictable name, so nothing planted there is followed) and return
    its name; ``NAME`` is shortened when the name would exceed the file system's limit."""
    folder = os.path.dirname(target) or "."
    prefix = bounded_name(folder, "." + os.path.basename(target), ".", extra=8 + len(tail))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=tail, dir=folder)
    os.close(fd)
    return tmp


@contextlib.contextmanager
def _through_copy(user: str, target: str, suffix: str | None) -> Iterator[str]:
    """Yield a private temporary file; on success copy it into the device or FIFO ``target``
    (writers such as PNG encoders seek, which a pipe cannot)."""
    suffix = suffix if suffix is not None else os.path.splitext(target)[1]
    with output_errors(user):
        fd, tmp = tempfile.mkstemp(prefix=".ncanalyze.", suffix=f".tmp{suffix}")
        os.close(fd)
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.filename in (None, tmp):
                raise output_error(exc, user) from exc
            raise
        with output_errors(user), open(tmp, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None, *, regular: bool = False,
                _body_errors: bool = True) -> Iterator[str]:
    """Yield a name to write ``path``'s new content to; it appears at ``path`` only on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final name, as the user gave it (symlinks are followed, see the module docstring).
    suffix : str, optional
        Suffix of the temporary name (default: ``path``'s extension, so that tools that pick
        a format by extension, like matplotlib, still do).
    regular : bool, default False
        Refuse character devices and FIFOs (for HDF5 run files).

    A regular target is written under a hidden temporary name and renamed; a failure inside
    the block (any exception, ``KeyboardInterrupt`` included) removes the temporary file and
    leaves any previous ``path`` untouched, and a killed process can only leave a stray hidden
    ``.NAME.*.tmp*`` file beside it. A character device or FIFO is written through: the
    block writes a private temporary file (in the system's temporary folder), copied into the
    device on success. An ``OSError`` raised in the block without a file name or on the yielded name,
    and any failure of the steps here, become an :class:`OutputError` naming ``path``; an
    :class:`~ncanalyze.errors.NcanalyzeError` about the yielded name (a ``RunWriter`` writing
    it) is re-raised naming ``path``.
    """
    user = os.fspath(path)
    target, through = resolve_output(user, regular=regular)
    if through:  # e.g. a figure writer that seeks: write a temporary file, then copy it
        with _through_copy(user, target, suffix) as tmp:
            yield tmp
        return
    folder = os.path.dirname(target)
    suffix = suffix if suffix is not None else os.path.splitext(target)[1]
    with output_errors(user):  # a long "extension" is no format: dropped from the name
        tmp = temp_beside(target, f".tmp{suffix}" if len(suffix) <= 16 else ".tmp")
    try:
        try:
            yield tmp
        except OSError as exc:
            if _body_errors and exc.filename in (None, tmp, user, target):
                raise output_error(exc, user) from exc
            raise
        except NcanalyzeError as exc:  # e.g. a RunWriter writing the temporary file
            if exc.file in (tmp, target):
                raise type(exc)(exc.reason, file=user, dataset=exc.dataset,
                                epoch=exc.epoch) from exc
            raise
        with output_errors(user):
            os.chmod(tmp, file_mode(target))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


class _NamedWriter:
    """A text file whose write errors name the path the user gave (a full disk raises
    ``OSError`` without any file name)."""

    def __init__(self, fh: IO[str], path: str):
        self._fh, self._path = fh, path

    def write(self, text: str) -> int:
        with output_errors(self._path):
            return self._fh.write(text)

    def flush(self) -> None:
        with output_errors(self._path):
            self._fh.flush()

    def __getattr__(self, name):
        return getattr(self._fh, name)


class _LazyWriter(_NamedWriter):
    """A character device or FIFO opened at the first write: a FIFO nobody reads yet blocks
    only once there is something to write (never before the work, never for an error)."""

    def __init__(self, target: str, path: str, encoding: str):
        super().__init__(None, path)
        self._target, self._encoding = target, encoding

    def _file(self):
        if self._fh is None:
            with output_errors(self._path):
                self._fh = open(self._target, "w", encoding=self._encoding, newline="")
        return self._fh

    def write(self, text: str) -> int:
        self._file()
        return super().write(text)

    def flush(self) -> None:
        if self._fh is not None:
            super().flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._fh is not None:
            with output_errors(self._path):
                self._fh.close()

    def __getattr__(self, name):
        return getattr(self._file(), name)


@contextlib.contextmanager
def atomic_text(path, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Open a text file for writing that appears at ``path`` only when the block succeeds
    (written through for a character device or FIFO, opened at the first write)."""
    user = os.fspath(path)
    target, through = resolve_output(user)
    if through:  # streams (jsonl) reach a pipe as they are written
        writer = _LazyWriter(target, user, encoding)
        try:
            yield writer
        finally:
            writer.close()
        return
    with atomic_path(user, _body_errors=False) as name:
        with output_errors(user):
            fh = open(name, "w", encoding=encoding, newline="")
        try:
            yield _NamedWriter(fh, user)
        finally:
            with output_errors(user):
                fh.close()
