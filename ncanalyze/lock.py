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
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from .atomic import file_identity, output_error, output_errors
from .errors import OutputError


def lock_name(path) -> str:
    """The lock file of a run written at ``path``: ``.NAME.lock`` beside its real target."""
    target = os.path.realpath(os.fspath(path))
    return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.lock")


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
            with output_errors(self.path):
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
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


def _same_file(fd: int, path: str) -> bool:
    st = os.fstat(fd)
    return file_identity(path) == (st.st_dev, st.st_ino)


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        if pid == os.getpid():
            return " in this process (close() it first)"
        return f" (process {pid})"
    return ""
