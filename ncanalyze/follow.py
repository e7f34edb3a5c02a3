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
import os
import time
from typing import Any, Callable, Iterator

from .analysis import Analysis
from .settings import EpochResult, Settings
from .errors import InputError
from .io.protocol import writer_active


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

    def _stamp(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_size, st.st_mtime_ns

    def _read_new(self) -> Iterator[EpochResult]:
        """Open the file once and yield every epoch not processed yet."""
        first = self.header is None
        settings = self.settings if first else dataclasses.replace(self.settings, epochs=None)
        try:
            analysis = Analysis(self.path, settings, progress=self.progress)
        except InputError as exc:
            if first and (_not_written_yet(exc) or not os.path.exists(self.path)):
                return
            raise
        with analysis:
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

    def __iter__(self) -> Iterator[EpochResult]:
        start = self.clock()
        seen = None
        while True:
            active = writer_active(self.path)  # before reading: a close after it is seen next
            stamp = self._stamp()
            if stamp is not None and (stamp != seen or not active):
                seen = stamp
                yield from self._read_new()
                if not active and self.header is not None:
                    self.stop_reason = "closed"
                    return
            left = None if self.timeout is None else self.timeout - (self.clock() - start)
            if left is not None and left <= 0:
                self.stop_reason = "timeout"
                return
            self.sleep(self.poll if left is None else min(self.poll, left))
