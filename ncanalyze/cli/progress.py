"""The progress bar: on a terminal's stderr only, transient, with rows/s within long epochs.

It is stopped (and erased) before any result is printed, so it never shares the screen with
stdout's output, and it is off when stderr is not a terminal, with ``--quiet``, when jsonl
lines stream to the same terminal, and while following a run.

Within an epoch the bar advances with the work done in every phase the analysis reports
(:class:`~ncanalyze.analysis.Analysis`' ``progress``): rows read into the statistics, rows
scored against the classes (the decision pass) and class-pair tiles, so that a
vocabulary-sized C, whose time goes to the decisions and the pairs, does not sit at 99% with
"0:00:01" left. The first epoch weights the phases by their arithmetic (P² per row, P per
class per row, P plus the element-wise work per pair) and sizes the epoch from the run's shape
and the classes present (:func:`epoch_cost`); every later epoch weights each phase by the
seconds per unit it took in the previous epoch, so that the bar moves in proportion to time
and rich's remaining-time estimate (from the bar's speed) holds.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
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


#: Class-pair passes of one epoch's metrics over K² pairs (measured: the means' and the
#: classifier's pair passes and their cross product come to about 2.7·K² pairs).
PAIR_PASSES = 2.7
#: A pair's element-wise work (cosines, logarithms, distances) in multiply-adds of a product:
#: measured as ~12·P per pair at P = 64, C = 3000 on NumPy, where the product is P.
PAIR_OVERHEAD = 700
_PHASES = {"rows": "reading", "decisions": "decisions", "pairs": "class pairs"}


def work_cost(phase: str, count: int, size: int, features: int) -> float:
    """Arithmetic of ``count`` units of ``phase`` (see the module docstring)."""
    if phase == "rows":
        return float(count) * size * size
    if phase == "decisions":
        return float(count) * size * features
    return float(count) * (size + PAIR_OVERHEAD)


def epoch_cost(analysis) -> float:
    """The work of one epoch of ``analysis`` in :func:`work_cost` units, from the run's shape."""
    info, s = analysis.run.info, analysis.settings
    p, c = info.num_features, info.num_classes
    cost = work_cost("rows", info.num_samples, p, p)
    if "metrics" not in s.quantities:
        return cost
    # The class means and their pairs cover the classes present (K, a fraction of C for a
    # vocabulary); the classifier scores all C rows. With C the estimate was 42% too large on
    # a Zipf run of C = 20,000 (K = 14,180), and the bar jumped at the end of the first epoch.
    k = int(np.count_nonzero(analysis.run.class_counts()))
    scored = k + (c if info.has_weight else 0)
    passes = PAIR_PASSES if info.has_weight else 1.0
    for n in [info.num_samples] + [info.splits[name].num_samples for name in s.splits]:
        cost += work_cost("decisions", n, scored, p) + passes * work_cost("pairs", k * k, p, p)
    cost += sum(work_cost("rows", info.splits[name].num_samples, p, p) for name in s.splits)
    if s.layers:
        cost += sum(work_cost("rows", info.num_samples, layer.num_features, 0)
                    + work_cost("pairs", k * k, layer.num_features, 0)
                    for layer in info.layers.values())
    return cost


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
        self.features = 1
        self.expected = 0.0  # one epoch, in weighted units (the first) or seconds (later ones)
        self.units: dict[str, float] = {}  # this epoch's work per phase (work_cost units)
        self.seconds: dict[str, float] = {}  # and the time it took
        self.per_unit: dict[str, float] | None = None  # seconds per unit, from the last epoch
        self.last = time.monotonic()

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
                            TextColumn("{task.fields[epochs]}"), TextColumn("{task.fields[phase]}"),
                            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                            console=self.console, transient=True,
                            redirect_stdout=False, redirect_stderr=False)
        self.task = self.bar.add_task("ncanalyze", total=total_epochs,
                                      epochs=f"0/{total_epochs} epochs", rate="", phase="")
        try:
            with self.bar:
                yield self
        finally:
            self.bar = None

    def plan(self, analysis) -> None:
        """Size the first epoch's work from the run's shape (:func:`epoch_cost`)."""
        self.features = analysis.run.info.num_features
        self.expected = epoch_cost(analysis)

    def work(self, phase: str, count: int, size: int) -> None:
        """Analysis' progress callback: ``count`` units of ``phase`` done."""
        if phase == "rows":
            self.rows_in_epoch += count
            self.rows_seen += count
        now = time.monotonic()
        self.units[phase] = self.units.get(phase, 0.0) + work_cost(phase, count, size,
                                                                   self.features)
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now
        if self.bar is None:
            return
        elapsed = max(now - self.started, 1e-9)
        within = min(self._done_in_epoch() / max(self.expected, 1e-12), 0.99)
        self.bar.update(self.task, completed=self.done + within,
                        rate=_rate(self.rows_seen / elapsed),
                        phase=_PHASES.get(phase, phase))

    def _done_in_epoch(self) -> float:
        """This epoch's work so far: units, or seconds at the last epoch's rate per phase."""
        if self.per_unit is None:
            return sum(self.units.values())
        fallback = max(self.per_unit.values(), default=0.0)
        return sum(u * self.per_unit.get(ph, fallback) for ph, u in self.units.items())

    def epoch_done(self) -> None:
        """One more epoch finished."""
        self.done += 1
        self.rows_in_epoch = 0
        timed = {ph: self.seconds[ph] / u for ph, u in self.units.items() if u > 0}
        if timed and sum(self.seconds.values()) > 0:  # the next epochs take what this one did
            self.per_unit = timed
            self.expected = sum(self.seconds.values())
        self.units, self.seconds = {}, {}
        self.last = time.monotonic()
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done,
                            epochs=f"{self.done}/{self.total} epochs")
