"""Following a run file while a :class:`~ncanalyze.io.RunWriter` appends to it (``--follow``).

A :class:`Follower` yields the results of each epoch once it is complete in the file, then
stops when the writer has closed the file and every epoch is processed, or after ``timeout``
seconds. It polls (``os.stat`` every ``poll`` seconds, sleeping in between — no busy loop) and
reopens the file only when its size or modification time changed; a reader never blocks the
writer (HDF5 single-writer/multiple-reader mode, docs/RELIABILITY.md).

Whether a writer still holds the file is the input format's business
(:func:`ncanalyze.io.protocol.writer_active`; for HDF5 the superblock's file-consistency flags,
which a writer killed without closing leaves set, so following it ends only at ``timeout`` or
Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import time
from typing import Any, Callable, Iterator

from .analysis import Analysis
from .settings import EpochResult, Settings
from .errors import InputError, UsageError
from .io.protocol import writer_active
from .lock import lock_name


def writer_alive(path) -> bool:
    """Whether a :class:`~ncanalyze.io.RunWriter` of ``path`` is alive: its lock file
    (``.NAME.lock``, removed at ``close()``) exists and names a running process.

    Read without locking it (a reader must never make a writer's ``flock`` fail) and without
    following a link or blocking on a FIFO planted at that name. A lock file a SIGKILLed
    writer left names a dead process; one without a PID yet is a writer starting.
    """
    try:
        fd = os.open(lock_name(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        text = os.pread(fd, 32, 0)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        pid = int(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return not text.strip()
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def _not_written_yet(exc: InputError) -> bool:
    """The file exists but holds no complete epoch yet (a RunWriter before its first epoch)."""
    return exc.dataset == "/epoch" and "no complete epoch" in exc.reason


class Follower:
    """Epoch results of a run that is still being written, as they appear.

    Parameters
    ----------
    path : str or os.PathLike
    settings : Settings
        ``settings.epochs`` selects among the epochs already in the file at the first read
        (e.g. ``"last"``); every epoch written afterwards is processed. Epochs are computed in
        this process (``workers``/``dask`` are ignored).
    poll : float
        Seconds between two looks at the file.
    timeout : float, optional
        Stop after this many seconds (counted from the first iteration).
    clock, sleep : callable
        Injected for tests.
    progress : callable, optional
        Passed to :class:`~ncanalyze.analysis.Analysis`.
    on_open : callable, optional
        Called with the first analysis opened (before any epoch is computed), e.g. to check
        options against the file.

    Attributes
    ----------
    header, run_warnings, num_classes, loss
        Set at the first successful read (``header`` is None until then).
    stop_reason : str
        Why following ended: "closed", "timeout" (set when iteration ends).
    """

    def __init__(self, path, settings: Settings, *, poll: float = 0.5,
                 timeout: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 progress: Callable[[int, int], None] | None = None,
                 on_open: Callable[[Analysis], None] | None = None):
        self.path = os.fspath(path)
        self.settings = dataclasses.replace(settings, workers=1, dask=None)
        self.poll = poll
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.progress = progress
        self.on_open = on_open
        self.header: dict[str, Any] | None = None
        self.run_warnings: list[str] = []
        self.num_classes = 0
        self.loss: str | None = None
        self.stop_reason = ""
        self._last: int | None = None
        self._identity: tuple[int, int] | None = None  # of the file whose epochs we yield
        self._waiting: InputError | None = None  # why the last read found no epoch yet
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise UsageError(f"--timeout must be a finite number of seconds > 0, got {timeout}")

    def _stamp(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino

    def _check_same_file(self, identity) -> None:
        """Stop when the file followed was removed or replaced (never join two runs)."""
        if self._identity is None or identity == self._identity:
            return
        after = f" after epoch {self._last}" if self._last is not None else ""
        if identity is None:
            raise InputError(f"was removed while it was being followed{after}", file=self.path)
        raise InputError(f"was replaced by another file while it was being followed{after} "
                         "(a rename onto it); its epochs belong to another run, so following "
                         "stops", file=self.path)

    def _read_new(self) -> Iterator[EpochResult]:
        """Open the file once and yield every epoch not processed yet."""
        first = self.header is None
        settings = self.settings if first else dataclasses.replace(self.settings, epochs=None)
        try:
            analysis = Analysis(self.path, settings, progress=self.progress)
        except InputError as exc:
            if first and (_not_written_yet(exc) or not os.path.exists(self.path)):
                self._waiting = exc
                return
            raise
        with analysis:
            identity = analysis.run.identity() or self._stamp_identity()
            if first:
                self._identity = identity
            self._check_same_file(identity)
            if first and self.on_open is not None:
                self.on_open(analysis)
            if first:
                self.header = analysis.header
                self.run_warnings = list(analysis.run_warnings)
                self.num_classes = analysis.run.info.num_classes
                self.loss = analysis.run.info.loss
            for epoch in analysis.epochs:
                if self._last is not None and epoch <= self._last:
                    continue
                result = analysis.compute_epoch(epoch)
                self._last = epoch
                yield result
            if first:
                # Epochs already written but not selected are skipped, not processed later.
                self._last = int(analysis.run.info.epochs[-1])

    def _stamp_identity(self):
        stamp = self._stamp()
        return None if stamp is None else stamp[2:]

    def __iter__(self) -> Iterator[EpochResult]:
        start = self.clock()
        seen = None
        while True:
            active = writer_active(self.path)  # before reading: a close after it is seen next
            stamp = self._stamp()
            self._check_same_file(None if stamp is None else stamp[2:])
            if stamp is not None and (stamp != seen or not active):
                seen = stamp
                self._waiting = None
                yield from self._read_new()
                if not active and self.header is not None:
                    self.stop_reason = "closed"
                    return
                if (not active and self.header is None and self._waiting is not None
                        and os.path.exists(self.path) and not writer_alive(self.path)):
                    # Closed, no epoch, and no writer left to add one (it closed or died
                    # before its first epoch): nothing will ever come.
                    raise self._waiting
            left = None if self.timeout is None else self.timeout - (self.clock() - start)
            if left is not None and left <= 0:
                self.stop_reason = "timeout"
                return
            self.sleep(self.poll if left is None else min(self.poll, left))
