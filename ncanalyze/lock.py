"""One writer per run file: an exclusive ``flock`` lock held for a writer's lifetime.

Why ``flock`` on a lock file beside the run (``.NAME.lock``), and not the alternatives:

* a lock file created with ``O_EXCL`` survives a SIGKILLed writer and would block every
  later writer until someone deletes it by hand;
* a lock on the HDF5 file itself (``fcntl`` or HDF5's own file locking) is lost when the
  writer renames a new file onto the path, which :class:`~ncanalyze.io.writer.RunWriter` does
  for crash safety (docs/RELIABILITY.md §2).

``flock`` locks belong to the open file description: the kernel releases them when the process
dies, however it dies, and two writers in one process exclude each other too. A SIGKILLed
writer leaves at most a stale, unlocked ``.NAME.lock`` that the next writer takes over. Local
file systems only: over NFS ``flock`` may not exclude writers on other machines.

The name ``.NAME.lock`` is predictable, so something else may already be there (a symbolic
link shipped in a tarball of dumps): the lock file is opened without following links or
blocking, and anything but a plain file with one link is refused and left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat

from .atomic import bounded_name, output_error
from .errors import OutputError


def lock_name(path) -> str:
    """The lock file of a run written at ``path``: ``.NAME.lock`` beside its real target.

    When that name would exceed the file system's limit (``NAME`` of 250 bytes and more),
    ``NAME`` is shortened and a digest of the whole name keeps it unique to ``path``.
    """
    target = os.path.realpath(os.fspath(path))
    folder, base = os.path.split(target)
    name = f".{base}.lock"
    if bounded_name(folder, name, "") != name:
        digest = hashlib.sha256(os.fsencode(base)).hexdigest()[:16]
        name = bounded_name(folder, "." + base, f".{digest}.lock")
    return os.path.join(folder, name)


class WriterLock:
    """An exclusive lock on the run file ``path`` for one writer (``flock`` on a lock file).

    ``flock`` locks belong to the open file: they are released when the process dies, so a
    writer killed with SIGKILL leaves at most a stale, unlocked ``.NAME.lock`` that the next
    writer takes over (never a lock that blocks forever). Two writers in one process exclude
    each other too. The lock file is removed on :meth:`release`; the identity check after
    locking makes that removal safe against a writer that opened the old file meanwhile.

    Raises
    ------
    OutputError
        Another writer (in this or another process) holds the lock.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.lock_path = lock_name(self.path)
        self._fd: int | None = None
        while True:
            fd = _open_lock(self.lock_path, self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputError("is being written by another RunWriter" + holder +
                                  "; one writer at a time (wait for it to close the file, or "
                                  "write to another name)", file=self.path) from None
            except OSError as exc:
                os.close(fd)
                raise output_error(exc, self.path) from exc
            # The previous holder may have removed the file between our open and flock:
            # then we locked an orphan, and must lock the file now at the name instead.
            if _same_file(fd, self.lock_path):
                break
            os.close(fd)
        self._fd = fd
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.lock_path):
                os.unlink(self.lock_path)
        os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WriterLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def writer_lock_state(path) -> tuple[str, int | None]:
    """Whether a live :class:`WriterLock` guards the run at ``path``; nothing is modified.

    Returns
    -------
    state : {"held", "stale", "none"}
        ``held``: a live process holds the lock (a writer is running); ``stale``: the lock file
        is there but unlocked (its writer died without closing the run); ``none``: no lock
        file (closed cleanly, or written by something other than RunWriter).
    pid : int or None
        The process recorded in the lock file.
    """
    name = lock_name(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return "none", None
    try:
        pid = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode().strip())
        try:  # a shared lock is refused while a writer holds its exclusive one
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return "held", pid
        except OSError:
            return "none", pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "stale", pid
    finally:
        os.close(fd)


#: How a lock file is opened: never through a symbolic link (a planted ``.NAME.lock`` link
#: would make the writer truncate the file it points to), never blocking on a FIFO, never
#: making a terminal the controlling one.
_LOCK_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))


def _open_lock(lock_path: str, path: str) -> int:
    """Open (creating if needed) the lock file; refuse anything but a plain file of its own.

    Raises
    ------
    OutputError
        The name is a symbolic link, a FIFO, a device, a folder, or a file with other hard
        links (planted, e.g. by a tarball of dumps): it is left as it is, nothing it points
        to is opened for writing or changed.
    """
    def planted(what: str) -> OutputError:
        return OutputError(f"its lock file {lock_path} {what}, not a lock file of ncanalyze; "
                           "refused (remove it if no writer of yours made it)", file=path)

    try:
        fd = os.open(lock_path, _LOCK_FLAGS, 0o644)
    except OSError as exc:
        if os.path.islink(lock_path):
            raise planted("is a symbolic link") from None
        if os.path.isdir(lock_path):
            raise planted("is a directory") from None
        raise output_error(exc, path) from exc
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    elif st.st_nlink > 1:  # 0: removed by a writer releasing it, the flock loop retries
        problem = f"has {st.st_nlink} hard links"
    if problem:
        os.close(fd)
        raise planted(problem)
    return fd


def _same_file(fd: int, path: str) -> bool:
    """Whether the name ``path`` (not followed if a link) is the file open as ``fd``."""
    st = os.fstat(fd)
    try:
        named = os.lstat(path)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (st.st_dev, st.st_ino)


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        if pid == os.getpid():
            return " in this process (close() it first)"
        return f" (process {pid})"
    return ""
