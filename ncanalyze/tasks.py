"""Work handed to worker processes or a dask cluster, as plain task descriptions.

Two shapes of parallel work (docs/PERFORMANCE.md, "Beyond one epoch"):

* **whole epochs**: :func:`compute_epochs` computes a list of epochs of an :class:`EpochJob`;
* **row ranges of one epoch** (an epoch larger than ``TASK_BYTES``): :class:`RowSplit` runs
  the two passes of :mod:`ncanalyze.passes` as :func:`partial_stats` and
  :func:`partial_decisions` tasks over :class:`RowTask` ranges, merges the partial
  statistics exactly and adds the counts.

A task carries only picklable facts — the path, the settings, the tile size and λ decided
once by :class:`~ncanalyze.analysis.Analysis`, an epoch, a source, a row range — and the
worker opens the run itself (on dask the path must be readable on every worker). Run-level
checks and warnings are never redone on a worker. :mod:`ncanalyze.parallel` runs the tasks
and knows nothing of what they compute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .backend import get_backend
from .caps import cap_workers, usable_cores
from .core.accumulator import block_rows
from .core.decisions import DecisionCounts
from .core.stats import ClassStats, merge_class_stats
from .epoch import EpochComputer, LocalPasses
from .io.protocol import RunReader, open_reader
from .io.schema import Source
from .parallel import ordered_map
from .passes import EpochPasses
from .settings import Settings

#: With workers, an epoch holding more features than this is split into row-range tasks.
TASK_BYTES = 512 * 2**20
#: Automatic local parallelism starts only when the selected epochs hold at least this many
#: bytes of features: below it, starting processes (≈1–2 s each) costs more than it saves.
AUTO_MIN_BYTES = 512 * 2**20


@dataclass(frozen=True)
class EpochJob:
    """What a worker needs to compute epochs of one run: the run's path (readable where the
    worker runs), the settings (in-process: ``workers=1``, no dask), and what the run-level
    plan decided (tile size, λ)."""

    path: str
    settings: Settings
    tile_bytes: int
    weight_decay: float

    def open(self) -> tuple[RunReader, EpochPasses]:
        """Open the run and the passes over it on this worker's backend."""
        reader = open_reader(self.path, allow_external=self.settings.allow_external)
        try:
            backend = get_backend(self.settings.backend)
        except BaseException:
            reader.close()
            raise
        return reader, EpochPasses(reader, self.settings, backend, self.tile_bytes)


@dataclass(frozen=True)
class RowTask:
    """Rows ``start:stop`` of one source (``kind`` train/layer/split, ``name``) of ``epoch``."""

    job: EpochJob
    epoch: int
    kind: str
    name: str
    start: int
    stop: int


def partial_stats(task: RowTask) -> ClassStats:
    """Statistics of the rows of ``task`` (a task on a worker): host (NumPy)
    :class:`~ncanalyze.core.stats.ClassStats` over the classes present in those rows;
    :func:`~ncanalyze.core.stats.merge_class_stats` joins the parts."""
    reader, passes = task.job.open()
    with reader:
        return passes.stats(task.epoch, passes.source(task.kind, task.name), keep=False,
                            rows_range=(task.start, task.stop))[0]


def partial_decisions(task: RowTask, means: np.ndarray, classes: np.ndarray) -> DecisionCounts:
    """Decision counts of the rows of ``task`` (a task on a worker), with the merged training
    ``means`` of ``classes`` and the epoch's W, b read from the run."""
    reader, passes = task.job.open()
    with reader:
        be = passes.backend
        weight, bias = reader.weight(task.epoch), reader.bias(task.epoch)
        w = None if weight is None else be.asarray(np.asarray(weight, np.float64), "float64")
        b = None if bias is None else be.asarray(np.asarray(bias, np.float64), "float64")
        return passes.decisions(task.epoch, passes.source(task.kind, task.name), None,
                                be.asarray(means, "float64"), classes, w, b,
                                rows_range=(task.start, task.stop))


def compute_epochs(job: EpochJob, epochs: list[int]) -> list[dict[str, Any]]:
    """Open the run of ``job`` and compute ``epochs`` (the task run on a worker).

    Returns
    -------
    list of dict
        ``{"epoch", "values", "warnings"}`` per epoch, in the order of ``epochs`` (plain,
        picklable data).
    """
    reader, passes = job.open()
    with reader:
        computer = EpochComputer(reader, job.settings, passes.backend, job.tile_bytes,
                                 job.weight_decay, LocalPasses(passes))
        out = []
        for e in epochs:
            r = computer.compute(e)
            out.append({"epoch": r.epoch, "values": r.values, "warnings": r.warnings})
        return out


def local_job(path: str, settings: Settings, tile_bytes: int, weight_decay: float) -> EpochJob:
    """The :class:`EpochJob` of a run whose work is spread: every task computes in its worker."""
    return EpochJob(path, replace(settings, workers=1, dask=None), tile_bytes, weight_decay)


def row_ranges(source: Source, settings: Settings, itemsize: int) -> list[tuple[int, int]]:
    """Row ranges of one task each (whole accumulation blocks, so every task groups its
    rows as the serial pass does); ``settings.task_rows`` or about ``TASK_BYTES`` each."""
    n = source.num_samples
    block = block_rows(source.num_features)
    rows = settings.task_rows
    if rows is None:
        rows = max(1, TASK_BYTES // (source.num_features * itemsize))
    rows = -(-rows // block) * block
    return [(r0, min(n, r0 + rows)) for r0 in range(0, n, rows)]


class RowSplit:
    """:class:`~ncanalyze.epoch.Passes` over row ranges on ``workers`` processes or dask."""

    def __init__(self, job: EpochJob, itemsize: int, workers: int, dask: str | None):
        self.job, self.itemsize, self.workers, self.dask = job, itemsize, workers, dask

    def _tasks(self, epoch: int, source: Source) -> list[RowTask]:
        return [RowTask(self.job, epoch, source.kind, source.name, r0, r1)
                for r0, r1 in row_ranges(source, self.job.settings, self.itemsize)]

    def epoch_stats(self, epoch, source, keep):
        parts = ordered_map(partial_stats, [(t,) for t in self._tasks(epoch, source)],
                            workers=self.workers, dask=self.dask)
        return merge_class_stats(list(parts)), None

    def epoch_decisions(self, epoch, source, cache, train, means_dev, w_dev, b_dev):
        means = np.asarray(train.means)
        tasks = [(t, means, train.class_ids) for t in self._tasks(epoch, source)]
        return sum(ordered_map(partial_decisions, tasks, workers=self.workers, dask=self.dask),
                   DecisionCounts())


def local_workers(settings: Settings, num_tasks: int, backend_name: str,
                  bytes_per_task: int) -> int:
    """Processes to use on this machine for ``num_tasks`` tasks (1: compute in-process).

    ``--workers`` is capped at the usable cores and at the tasks; without it, several
    processes only for the NumPy backend and at least ``AUTO_MIN_BYTES`` of features.
    """
    if settings.workers is not None:
        return max(1, min(cap_workers(settings.workers)[0], num_tasks))
    if num_tasks < 2 or backend_name != "numpy":
        return 1
    if bytes_per_task * num_tasks < AUTO_MIN_BYTES:
        return 1
    return max(1, min(usable_cores(), num_tasks))
