"""Orchestration: a run + a backend + which quantities -> plain per-epoch results.

:class:`Analysis` opens a run through the reader protocol (:mod:`ncanalyze.io.protocol`), does
the run-level work once — the checks and warnings (:mod:`ncanalyze.run_checks`), the
``--epochs`` selection, the backend, the memory plan (:mod:`ncanalyze.memory`) — and then
yields the epochs computed by :class:`~ncanalyze.epoch.EpochComputer`, in this process or on
workers (:mod:`ncanalyze.tasks`). It does no printing; the CLI formats what it returns.

What to compute (:class:`~ncanalyze.settings.Settings`) lives in :mod:`ncanalyze.settings`,
the two passes over one source in :mod:`ncanalyze.passes`, the run-level dynamics fit in
:mod:`ncanalyze.run_dynamics`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Iterator

import numpy as np

from ._version import __version__
from .backend import Backend, get_backend
from .caps import check_chunk_rows
from .epoch import EpochComputer, LocalPasses
from .io.protocol import RunReader, open_reader
from . import memory
from .parallel import ordered_map
from .passes import CACHE_BYTES, EpochPasses
from .run_checks import class_warnings, option_warnings
from .settings import EpochResult, Settings, resolve_splits, select_epochs
from .tasks import RowSplit, compute_epochs, local_job, local_workers, row_ranges


class Analysis:
    """Compute the requested quantities for the selected epochs of one run.

    ``header`` and ``run_warnings`` are available at once; iterating yields
    :class:`EpochResult` in epoch order, each as soon as it is computed.

    Parameters
    ----------
    path : str or os.PathLike or RunReader
        The run; an open :class:`~ncanalyze.io.protocol.RunReader` is used as it is (and
        closed with the analysis). Workers (``workers``/``dask``) need a path.
    settings : Settings
    progress : callable, optional
        Called as ``progress(phase, count, size)`` as work is done: ``"rows"`` (``count``
        rows of ``size`` features read into the statistics), ``"decisions"`` (rows scored
        against ``size`` classes) and ``"pairs"`` (``count`` class pairs of ``size``-vectors),
        for a progress bar (:mod:`ncanalyze.cli.progress`).
    """

    def __init__(self, path, settings: Settings,
                 progress: Callable[[str, int, int], None] | None = None):
        settings.validate()
        self.settings = settings
        self.progress = progress
        if isinstance(path, (str, bytes, os.PathLike)):
            self.run: RunReader = open_reader(path, allow_external=settings.allow_external)
        else:
            self.run = path
        try:
            self._prepare()
        except BaseException:
            self.run.close()
            raise

    def _prepare(self) -> None:
        run, info = self.run, self.run.info
        self.settings = replace(self.settings,
                                splits=resolve_splits(self.settings.splits, info.splits))
        s = self.settings
        self.run_warnings: list[str] = option_warnings(run, s)
        self.epochs = select_epochs(s.epochs, info.epochs)
        check_chunk_rows(s.chunk_rows, [run.train,
                                        *(info.layers.values() if s.layers else ()),
                                        *(info.splits[n] for n in s.splits)],
                         np.dtype(info.features_dtype).itemsize)
        self.backend: Backend = get_backend(s.backend)
        self.weight_decay = s.weight_decay if s.weight_decay is not None else (
            info.weight_decay if info.weight_decay is not None else 0.0)
        # tile_bytes is set by the memory plan below, before any pass runs.
        self.passes = EpochPasses(run, s, self.backend, tile_bytes=0, progress=self.progress)
        self.run_warnings += class_warnings(run, s, lambda src: self.passes.labels(src).classes)
        sources = [run.train] + [info.splits[n] for n in s.splits]
        present = max(self.passes.labels(src).classes.size for src in sources)
        self.tile_bytes = memory.plan_epoch(info, present, chunk_rows=s.chunk_rows,
                                            limit=s.memory_limit, cache_bytes=CACHE_BYTES,
                                            decode_bytes=run.decode_bytes)
        self.passes.tile_bytes = self.tile_bytes
        self._local = EpochComputer(run, s, self.backend, self.tile_bytes, self.weight_decay,
                                    LocalPasses(self.passes), progress=self.progress)

    @property
    def header(self) -> dict[str, Any]:
        """Run-level facts for the output document (README, "Commands")."""
        info = self.run.info
        settings = self.settings.public()
        settings["backend"] = self.backend.name
        settings["weight_decay"] = self.weight_decay
        return {
            "ncanalyze": __version__,
            "file": info.path,
            "classes": info.num_classes,
            "samples": info.num_samples,
            "features": info.num_features,
            "settings": settings,
        }

    def close(self) -> None:
        self.run.close()

    def __enter__(self) -> "Analysis":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def compute_epoch(self, epoch: int) -> EpochResult:
        """All requested quantities of one epoch, computed in this process."""
        return self._local.compute(epoch)

    def _epoch_bytes(self) -> int:
        info = self.run.info
        return info.num_samples * info.num_features * np.dtype(info.features_dtype).itemsize

    def workers(self) -> tuple[int, bool]:
        """Local processes to use (1: in this process) and whether each epoch is split over
        them by rows (epochs larger than ``tasks.TASK_BYTES``) rather than given whole."""
        if self.run.kind == "statistics":  # epochs are read, not accumulated: no workers
            return 1, False
        itemsize = np.dtype(self.run.info.features_dtype).itemsize
        ranges = len(row_ranges(self.run.train, self.settings, itemsize))
        split = ranges > 1
        n = local_workers(self.settings, ranges if split else len(self.epochs),
                          self.backend.name, self._epoch_bytes())
        return n, split

    def __iter__(self) -> Iterator[EpochResult]:
        s = self.settings
        workers, split = self.workers()
        if s.dask is None and workers <= 1:
            for epoch in self.epochs:
                yield self.compute_epoch(epoch)
            return
        # Workers open the run themselves (on dask the path must be readable on every worker,
        # e.g. a shared filesystem): whole epochs, or, for epochs larger than one task, the
        # two passes over row ranges (partial sums merged).
        job = local_job(os.path.abspath(self.run.path), s, self.tile_bytes, self.weight_decay)
        if split:
            itemsize = np.dtype(self.run.info.features_dtype).itemsize
            computer = EpochComputer(self.run, s, self.backend, self.tile_bytes,
                                     self.weight_decay, RowSplit(job, itemsize, workers, s.dask),
                                     progress=self.progress)
            for epoch in self.epochs:
                yield computer.compute(epoch)
            return
        tasks = [(job, [e]) for e in self.epochs]
        for results in ordered_map(compute_epochs, tasks, workers=workers, dask=s.dask):
            for d in results:
                yield EpochResult(d["epoch"], d["values"], d["warnings"])


def analyze(path, settings: Settings | None = None, **options) -> tuple[dict, list[EpochResult]]:
    """Compute everything for a run in memory (convenience for the Python API).

    Returns
    -------
    header : dict
    results : list of EpochResult
    """
    settings = settings or Settings(**options)
    with Analysis(path, settings) as a:
        return a.header, list(a)
