"""The two passes over one source of one epoch: class statistics, then per-sample decisions.

A source (the training features, a layer, a split; :class:`~ncanalyze.io.schema.Source`) is
read from a :class:`~ncanalyze.io.protocol.RunReader` in row chunks on the backend's device.
The first pass accumulates :class:`~ncanalyze.core.stats.ClassStats` in float64, the second
counts the decisions of the classifier and of the nearest class centre
(:class:`~ncanalyze.core.decisions.DecisionCounts`). A small epoch's chunks are kept on the
device between the two passes (``CACHE_BYTES``), a large one is read twice, so memory does not
grow with N. A run that stores the reductions instead of the rows (a statistics run,
:meth:`~ncanalyze.io.protocol.RunReader.statistics`) skips both passes: its stored epoch
becomes the same objects (:mod:`ncanalyze.stored`).

Both passes take an optional row range, which is how :mod:`ncanalyze.tasks` splits one
epoch over workers (partial statistics merge exactly, counts add).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from array_api_compat import is_numpy_namespace

from .backend import Backend
from .core.decisions import DecisionCounts, PredictionAccumulator
from .core.precision import coarser, values_precision
from .core.accumulator import StatsAccumulator, block_rows
from .core.segments import compact_labels
from .errors import InputError
from .io.rules import magnitude_problem, statistics_beyond_magnitude
from . import stored
from .io.protocol import RunReader
from .io.schema import Source
from .parallel import prefetch
from .settings import Settings

#: Keep one epoch's chunks in memory for the second (per-sample) pass up to this many bytes;
#: above it the epoch is read again, so memory stays bounded whatever N is.
CACHE_BYTES = 256 * 2**20
#: Chunks read ahead by the reader thread of one pass.
PREFETCH = 2


@dataclass
class SourceLabels:
    """Labels of one source: as stored (on the device) and renumbered over the classes present
    (host and device) for the statistics."""

    device: Any
    compact_host: np.ndarray
    compact_device: Any
    classes: np.ndarray


class EpochPasses:
    """The passes over the sources of one run, on one backend.

    Parameters
    ----------
    reader : RunReader
        The open run (not closed here).
    settings : Settings
        ``chunk_rows`` and ``dtype`` are used.
    backend : Backend
    tile_bytes : int
        Tile size of the decision pass (from the memory plan, :mod:`ncanalyze.memory`).
    progress : callable, optional
        Called as ``progress(phase, count, size)`` as work is done: ``"rows"`` (``count`` rows
        of ``size`` features read into the statistics) and ``"decisions"`` (rows scored
        against ``size`` classes), for a progress bar (:mod:`ncanalyze.cli.progress`).
    """

    def __init__(self, reader: RunReader, settings: Settings, backend: Backend,
                 tile_bytes: int, progress: Callable[[str, int, int], None] | None = None):
        self.reader = reader
        self.settings = settings
        self.backend = backend
        self.tile_bytes = tile_bytes
        self.progress = progress
        self._labels: dict[str, SourceLabels] = {}
        self._last_stored: tuple = (None, None)

    def source(self, kind: str, name: str) -> Source:
        """The source named by a task description (``kind`` train/layer/split, ``name``)."""
        info = self.reader.info
        if kind == "train":
            return self.reader.train
        return (info.layers if kind == "layer" else info.splits)[name]

    def labels(self, source: Source) -> SourceLabels:
        """The labels of ``source``, read and moved to the device once (in a statistics run
        only which classes have samples)."""
        key = source.labels_path or source.path
        if key not in self._labels and self.reader.kind == "statistics":
            classes = np.flatnonzero(self.reader.class_counts(source)).astype(np.int64)
            self._labels[key] = SourceLabels(None, None, None, classes)
        if key not in self._labels:
            host = self.reader.labels(source)
            classes, compact = compact_labels(host, self.reader.info.num_classes)
            be = self.backend
            device = be.asarray(host, host.dtype)
            self._labels[key] = SourceLabels(
                device, compact,
                device if compact is host else be.asarray(compact, compact.dtype), classes)
        return self._labels[key]

    def _stored(self, epoch: int, source: Source):
        """A statistics run's stored epoch of ``source`` (the last one is kept: its statistics
        and its decisions are asked for separately)."""
        key = (epoch, source.path)
        if self._last_stored[0] != key:
            self._last_stored = (key, self.reader.statistics(epoch, source))
        return self._last_stored[1]

    def _chunks(self, epoch: int, source: Source, check_finite: bool = False,
                rows_range: tuple[int, int] | None = None):
        """Yield ``(device_features, start, stop)`` for one pass (rows ``start:stop``).

        NaN/Inf rows are not looked for here (an extra pass over the data): the statistics
        show them (see :meth:`stats`), and only then is the epoch re-read with the reader's
        row check, which raises the precise error.

        A reader thread reads the next chunk while this one is computed on (h5py drops the
        GIL in HDF5's read and decompression, BLAS drops it in products, CuPy kernels run
        asynchronously), so reading and computing overlap; at most ``PREFETCH`` chunks wait.
        """
        be = self.backend
        rows = self.settings.chunk_rows or self.default_rows(source)
        start, stop = rows_range or (0, source.num_samples)
        chunks = self.reader.iter_chunks(epoch, source, rows=rows, check_finite=check_finite,
                                         start=start, stop=stop)
        for chunk, _ in prefetch(chunks, PREFETCH):
            # on the host rows, so that every backend sees the same precision
            self._values_precision = coarser(getattr(self, "_values_precision", "float64"),
                                             values_precision(chunk))
            stop = start + chunk.shape[0]
            yield be.asarray(chunk, chunk.dtype), start, stop
            start = stop

    def default_rows(self, source: Source) -> int:
        """Rows per read: one accumulation block (no regrouping copies), rounded down to whole
        storage chunks of the file when those are smaller."""
        block = block_rows(source.num_features)
        itemsize = np.dtype(self.reader.info.features_dtype).itemsize
        return self.reader.chunk_rows(source, chunk_bytes=block * source.num_features * itemsize)

    def stats(self, epoch: int, source: Source, keep: bool, dtype: str | None = None,
              rows_range: tuple[int, int] | None = None):
        """First pass: class statistics on the host (NumPy, one transfer from the device),
        and the cached device chunks for the second pass (if ``keep`` and they fit).

        Returns
        -------
        stats : ClassStats
        cache : list or None
            ``(features, labels, norm_bounds)`` per chunk, or None (the second pass re-reads).
        """
        # The one place the precision the source's features had (Source.feature_dtype: a
        # statistics run records it, a features dataset has it; and what the values hold
        # exactly) reaches the rank cut-offs (docs/METRICS.md, "Rank from the data's
        # precision").
        if self.reader.kind == "statistics":
            stats = stored.class_stats(self._stored(epoch, source))
            stats.precision = coarser(stats.precision, source.feature_dtype)
            return stats, None
        self._values_precision = "float64"
        xp = self.backend.xp
        itemsize = np.dtype(self.reader.info.features_dtype).itemsize
        # With the cache, the float32 decision pass (float16/32 features on NumPy) reuses
        # bounds on ‖h‖ from the statistics pass (8 bytes per row, within the cache budget).
        norms = keep and is_numpy_namespace(xp) and itemsize <= 4
        cache: list | None = [] if keep and (source.num_samples * (
            source.num_features * itemsize + (8 if norms else 0)) <= CACHE_BYTES) else None
        lab = self.labels(source)
        acc = StatsAccumulator(lab.classes.size, source.num_features, xp,
                               dtype or self.settings.dtype,
                               keep_row_norms=norms and cache is not None,
                               classes=lab.classes, total_classes=self.reader.info.num_classes,
                               device=self.backend.device)
        # NaN/Inf features propagate silently into the statistics and are reported below.
        with np.errstate(invalid="ignore", over="ignore"):
            for x, start, stop in self._chunks(epoch, source, rows_range=rows_range):
                acc.update(x, lab.compact_device[start:stop], lab.compact_host[start:stop])
                if cache is not None:
                    cache.append((x, lab.device[start:stop]))
                if self.progress:
                    self.progress("rows", x.shape[0], source.num_features)
        with np.errstate(invalid="ignore", over="ignore"):
            stats = acc.finalize().on_host()
        stats.precision = coarser(stats.precision, source.feature_dtype, self._values_precision)
        bounds = acc.row_norm_bounds()
        if cache is not None:
            start, chunks = 0, []
            for x, y in cache:
                stop = start + int(x.shape[0])
                chunks.append((x, y, None if bounds is None else bounds[start:stop]))
                start = stop
            cache = chunks
        if not stats.is_finite():
            # A NaN/Inf feature reaches every sum of its class: re-read with the row check,
            # which names the rows. If none is found, float32 products overflowed (features
            # beyond ~1e19): recompute in float64.
            for _ in self._chunks(epoch, source, check_finite=True, rows_range=rows_range):
                pass
            if acc.compute_dtype != xp.float64:
                return self.stats(epoch, source, keep, dtype="float64", rows_range=rows_range)
            raise InputError("the class statistics overflow float64", file=self.reader.path,
                             dataset=source.path, epoch=epoch)
        if statistics_beyond_magnitude(stats.means, stats.within_scatter, stats.num_samples):
            raise InputError(magnitude_problem(), file=self.reader.path, dataset=source.path,
                             epoch=epoch)
        return stats, cache

    def decisions(self, epoch: int, source: Source, cache, ncc_means, ncc_classes, weight,
                  bias, rows_range: tuple[int, int] | None = None) -> DecisionCounts:
        """Second pass: the decision counts of ``source`` with the NCC centres ``ncc_means``
        (device, rows ``ncc_classes``) and the classifier ``weight``, ``bias`` (device)."""
        if self.reader.kind == "statistics":  # counts made with the epoch's training means
            return stored.decision_counts(self._stored(epoch, source))
        pred = PredictionAccumulator(ncc_means, weight, bias, ncc_classes=ncc_classes,
                                     tile_bytes=self.tile_bytes)
        labels = self.labels(source).device
        chunks = cache if cache is not None else (
            (x, labels[start:stop], None)
            for x, start, stop in self._chunks(epoch, source, rows_range=rows_range))
        scored = (0 if weight is None else weight.shape[0]) + len(ncc_classes)
        for x, y, norm_bounds in chunks:
            pred.update(x, y, norm_bounds)
            if self.progress:
                self.progress("decisions", x.shape[0], scored)
        return pred.counts()
