"""The progress bar: on a terminal's stderr only, transient, with rows/s within long epochs.

It is stopped (and erased) before any result is printed, so it never shares the screen with
stdout's output, and it is off when stderr is not a terminal, with ``--quiet``, when jsonl
lines stream to the same terminal, and while following a run.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console

from .boundary import err_console


def progress_console() -> Console | None:
    """The console to draw on: stderr when it is a terminal, else None (no bar)."""
    return err_console if sys.stderr.isatty() else None


def _rate(rows_per_s: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rows_per_s >= scale:
            return f"{rows_per_s / scale:.3g}{unit} rows/s"
    return f"{rows_per_s:.3g} rows/s"


class EpochProgress:
    """Epochs done (fractional within an epoch) and the reading rate.

    Parameters
    ----------
    console : rich.console.Console or None
        Where to draw; None disables the bar (the callbacks are then no-ops).
    """

    def __init__(self, console: Console | None):
        self.console = console
        self.bar = None
        self.task = None
        self.done = 0
        self.total = 0
        self.rows_in_epoch = 0
        self.rows_seen = 0
        self.started = time.monotonic()

    @contextmanager
    def start(self, total_epochs: int) -> Iterator["EpochProgress"]:
        """Show the bar for ``total_epochs`` epochs; erase it on exit (also on errors)."""
        if self.console is None:
            yield self
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.total = total_epochs
        self.started = time.monotonic()
        self.bar = Progress(TextColumn("ncanalyze"), BarColumn(),
                            TextColumn("{task.fields[epochs]}"), TextColumn("{task.fields[rate]}"),
                            TimeRemainingColumn(), console=self.console, transient=True,
                            redirect_stdout=False, redirect_stderr=False)
        self.task = self.bar.add_task("ncanalyze", total=total_epochs,
                                      epochs=f"0/{total_epochs} epochs", rate="")
        try:
            with self.bar:
                yield self
        finally:
            self.bar = None

    def rows(self, rows: int, epoch_rows: int) -> None:
        """Analysis' reading callback: ``rows`` more rows of a pass over ``epoch_rows``."""
        self.rows_in_epoch += rows
        self.rows_seen += rows
        if self.bar is None:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        within = min(self.rows_in_epoch / max(epoch_rows, 1), 0.99)
        self.bar.update(self.task, completed=self.done + within,
                        rate=_rate(self.rows_seen / elapsed))

    def epoch_done(self) -> None:
        """One more epoch finished."""
        self.done += 1
        self.rows_in_epoch = 0
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done,
                            epochs=f"{self.done}/{self.total} epochs")
