"""Orchestration: a run file + a backend + which quantities -> plain per-epoch results.

This layer joins :mod:`ncanalyze.io` (reading) and :mod:`ncanalyze.core` (array math). It does
no printing; the CLI formats what it returns.

What to compute (:class:`~ncanalyze.settings.Settings`, ``--epochs``) lives in
:mod:`ncanalyze.settings`, the run-level dynamics fit in :mod:`ncanalyze.run_dynamics`.

Length: above the ~350-line guide because the epoch pipeline (two passes, the row-split form
of the same passes on workers and their task functions, which must be importable by name
from this module for the workers) is one concept; splitting it would bring back an import
cycle with the task module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import numpy as np
from array_api_compat import is_numpy_namespace

from ._version import __version__
from .backend import Backend, get_backend
from .caps import cap_workers, check_chunk_rows, usable_cores
from .core.decisions import DecisionCounts, PredictionAccumulator
from .core.pairs import TILE_PROGRESS
from .core.metrics import (ETF_IMPOSSIBLE, etf_impossible_note, feature_metrics,
                           nc_metrics_from_stats)
from .core.values import LAYER_KEYS
from .core.stats import (ClassStats, StatsAccumulator, block_rows,
                         compact_labels, merge_class_stats)
from . import memory, stored
from .errors import InputError
from .io.reader import Run, open_run
from .io.schema import Source, check_classes_present
from .parallel import ordered_map, prefetch
from .settings import EpochResult, Settings, resolve_splits, select_epochs

#: Keep one epoch's chunks in memory for the second (per-sample) pass up to this many bytes;
#: above it the epoch is read again, so memory stays bounded whatever N is.
CACHE_BYTES = 256 * 2**20


#: Said once per run when the decomposition is computed on a cross-entropy run.
CE_DECOMPOSE_NOTE = (
    "decompose: this run was trained with cross-entropy (loss attribute), but the "
    "decomposition is of the MSE loss against one-hot targets (Han et al.): `loss`, "
    "`loss_ls_perp` and `central_path_ratio` measure the CE classifier's MSE, which grows with "
    "its logit scale (large values, ratio near 1 are expected); `loss_ls`, `loss_nc1` and "
    "`loss_nc23` (those of the least-squares classifier on the same features) keep their "
    "meaning")


class Analysis:
    """Compute the requested quantities for the selected epochs of one run file.

    ``header`` is available at once; iterating yields :class:`EpochResult` in epoch order,
    each as soon as it is computed.

    Parameters
    ----------
    path : str or os.PathLike
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
        self.run: Run = open_run(path, allow_external=settings.allow_external)
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
        self.run_warnings: list[str] = []
        if s.layers and not info.layers:
            self.run_warnings.append("--layers: the file has no /layers group")
        if "decompose" in s.quantities and not info.has_weight and s.quantities != ("decompose",):
            self.run_warnings.append("decompose skipped: the file has no /weight")
        if "decompose" in s.quantities and info.has_weight and (info.loss or "").lower() in (
                "ce", "cross_entropy", "cross-entropy", "crossentropy"):
            self.run_warnings.append(CE_DECOMPOSE_NOTE)
        self.epochs = select_epochs(s.epochs, info.epochs)
        if s.dask is None and cap_workers(s.workers)[1]:
            self.run_warnings.append(cap_workers(s.workers)[1])
        check_chunk_rows(s.chunk_rows, [self.run.train,
                                        *(info.layers.values() if s.layers else ()),
                                        *(info.splits[n] for n in s.splits)],
                         np.dtype(info.features_dtype).itemsize)
        self.backend: Backend = get_backend(s.backend)
        self.weight_decay = s.weight_decay if s.weight_decay is not None else (
            info.weight_decay if info.weight_decay is not None else 0.0)
        if "decompose" in s.quantities and not info.has_weight and s.quantities == ("decompose",):
            raise InputError("decompose needs the classifier, but /weight is missing",
                             file=info.path, dataset="/weight")
        self._labels: dict[str, _SourceLabels] = {}
        for source in [run.train] + [info.splits[name] for name in s.splits]:
            note = absent_classes(self._source_labels(source).classes, info.num_classes,
                                  require_all=s.require_all_classes, file=info.path,
                                  dataset=source.labels_path or f"{source.path}/counts")
            if note:
                self.run_warnings.append(note)
        present = self._source_labels(run.train).classes.size
        if "metrics" in s.quantities and present - 1 > info.num_features:
            self.run_warnings.append(etf_impossible_note(present, info.num_features))
        if "snr" in s.quantities and present - 1 > info.num_features:
            self.run_warnings.append(
                f"SNR: M̄ has rank ≤ P = {info.num_features} < C − 1 = {present - 1}, so "
                f"only the {info.num_features} largest singular values ω_j can be nonzero; "
                "they are the ones reported (snr_singular_values, snr_min, snr_ratio), the "
                f"other {present - 1 - info.num_features} are 0 by construction")
        self.tile_bytes = self._plan_memory()
        self._split: tuple[str, Settings, int] | None = None
        self._last_stored: tuple = (None, None)

    def _plan_memory(self) -> int:
        """Tile bytes from the memory plan of one epoch (:mod:`ncanalyze.memory`)."""
        info = self.run.info
        itemsize = np.dtype(info.features_dtype).itemsize
        sources = [self.run.train] + [info.splits[n] for n in self.settings.splits]
        present = max(self._source_labels(src).classes.size for src in sources)
        rows = min(self.settings.chunk_rows or block_rows(info.num_features), info.num_samples)
        chunk = rows * info.num_features * max(itemsize, 4)
        cache = min(CACHE_BYTES, info.num_samples * (info.num_features * itemsize + 8))
        samples = info.num_samples
        if self.run.kind == "statistics":  # no rows are read: N costs no memory
            samples = chunk = cache = 0
        parts = memory.estimate(classes=info.num_classes, present=present,
                                features=info.num_features, samples=samples,
                                chunk_bytes=chunk, cache_bytes=cache,
                                decode_bytes=self.run.decode_bytes)
        return memory.plan(parts, self.settings.memory_limit,
                           what=f"{info.path}: one epoch (C = {info.num_classes}, "
                                f"P = {info.num_features}, N = {info.num_samples})")

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

    # ------------------------------------------------------------------ passes
    def _source_labels(self, source: Source) -> "_SourceLabels":
        key = source.labels_path or source.path
        if key not in self._labels and self.run.kind == "statistics":
            # A statistics run: only which classes have samples is needed (no per-row pass).
            classes = np.flatnonzero(self.run.class_counts(source)).astype(np.int64)
            self._labels[key] = _SourceLabels(None, None, None, classes)
        if key not in self._labels:
            host = self.run.labels(source)
            classes, compact = compact_labels(host, self.run.info.num_classes)
            be = self.backend
            device = be.asarray(host, host.dtype)
            self._labels[key] = _SourceLabels(
                device, compact,
                device if compact is host else be.asarray(compact, compact.dtype), classes)
        return self._labels[key]

    def _chunks(self, epoch: int, source: Source, check_finite: bool = False,
                rows_range: tuple[int, int] | None = None):
        """Yield ``(device_features, start, stop)`` for one pass (rows ``start:stop``).

        NaN/Inf rows are not looked for here (an extra pass over the data): the statistics
        show them (see :meth:`_stats`), and only then is the epoch re-read with the reader's
        row check, which raises the precise error.

        A reader thread reads the next chunk while this one is computed on (h5py drops the
        GIL in HDF5's read and decompression, BLAS drops it in products, CuPy kernels run
        asynchronously), so reading and computing overlap; at most ``PREFETCH`` chunks wait.
        """
        be = self.backend
        rows = self.settings.chunk_rows or self._default_rows(source)
        start, stop = rows_range or (0, source.num_samples)
        chunks = self.run.iter_chunks(epoch, source, rows=rows, check_finite=check_finite,
                                      start=start, stop=stop)
        for chunk, _ in prefetch(chunks, PREFETCH):
            stop = start + chunk.shape[0]
            yield be.asarray(chunk, chunk.dtype), start, stop
            start = stop

    def _default_rows(self, source: Source) -> int:
        """Rows per read: one accumulation block (no regrouping copies), rounded down to whole
        HDF5 chunks of the file when those are smaller."""
        block = block_rows(source.num_features)
        itemsize = np.dtype(self.run.info.features_dtype).itemsize
        return self.run.chunk_rows(source, chunk_bytes=block * source.num_features * itemsize)

    def _stats(self, epoch: int, source: Source, keep: bool, dtype: str | None = None,
               rows_range: tuple[int, int] | None = None):
        """First pass: class statistics, accumulated on the backend's device and returned on
        the host (NumPy, one transfer), and the cached device chunks (if ``keep``)."""
        xp = self.backend.xp
        itemsize = np.dtype(self.run.info.features_dtype).itemsize
        # With the cache, the float32 decision pass (float16/32 features on NumPy) reuses
        # bounds on ‖h‖ from the statistics pass (8 bytes per row, within the cache budget).
        norms = keep and is_numpy_namespace(xp) and itemsize <= 4
        cache: list | None = [] if keep and (source.num_samples * (
            source.num_features * itemsize + (8 if norms else 0)) <= CACHE_BYTES) else None
        lab = self._source_labels(source)
        acc = StatsAccumulator(lab.classes.size, source.num_features, xp,
                               dtype or self.settings.dtype,
                               keep_row_norms=norms and cache is not None,
                               classes=lab.classes, total_classes=self.run.info.num_classes,
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
        bounds = acc.row_norm_bounds()
        if cache is not None:
            start, chunks = 0, []
            for x, y in cache:
                stop = start + int(x.shape[0])
                chunks.append((x, y, None if bounds is None else bounds[start:stop]))
                start = stop
            cache = chunks
        if not _finite(stats):
            # A NaN/Inf feature reaches every sum of its class: re-read with the row check,
            # which names the rows. If none is found, float32 products overflowed (features
            # beyond ~1e19): recompute in float64.
            for _ in self._chunks(epoch, source, check_finite=True, rows_range=rows_range):
                pass
            if acc.compute_dtype != xp.float64:
                return self._stats(epoch, source, keep, dtype="float64", rows_range=rows_range)
            raise InputError("the class statistics overflow float64", file=self.run.path,
                             dataset=source.path, epoch=epoch)
        return stats, cache

    def _predictions(self, epoch, source, cache, ncc_means, ncc_classes, weight, bias,
                     rows_range=None):
        pred = PredictionAccumulator(ncc_means, weight, bias, ncc_classes=ncc_classes,
                                     tile_bytes=self.tile_bytes)
        labels = self._source_labels(source).device
        chunks = cache if cache is not None else (
            (x, labels[start:stop], None)
            for x, start, stop in self._chunks(epoch, source, rows_range=rows_range))
        scored = (0 if weight is None else weight.shape[0]) + len(ncc_classes)
        for x, y, norm_bounds in chunks:
            pred.update(x, y, norm_bounds)
            if self.progress:
                self.progress("decisions", x.shape[0], scored)
        return pred.counts()

    # ------------------------------------------------------------------ row-split epochs
    def _source(self, kind: str, name: str) -> Source:
        info = self.run.info
        return {"train": lambda: self.run.train, "layer": lambda: info.layers[name],
                "split": lambda: info.splits[name]}[kind]()

    def _row_ranges(self, source: Source) -> list[tuple[int, int]]:
        """Row ranges of one task each (whole accumulation blocks, so every task groups its
        rows as the serial pass does)."""
        n = source.num_samples
        block = block_rows(source.num_features)
        rows = self.settings.task_rows
        if rows is None:
            itemsize = np.dtype(self.run.info.features_dtype).itemsize
            rows = max(1, TASK_BYTES // (source.num_features * itemsize))
        rows = -(-rows // block) * block
        return [(r0, min(n, r0 + rows)) for r0 in range(0, n, rows)]

    def _stored(self, epoch: int, source: Source):
        """A statistics run's stored epoch of ``source`` (the last one is kept: its statistics
        and its decisions are asked for separately)."""
        key = (epoch, source.path)
        if self._last_stored[0] != key:
            self._last_stored = (key, self.run.statistics(epoch, source))
        return self._last_stored[1]

    def _epoch_stats(self, epoch: int, source: Source, keep: bool):
        """:meth:`_stats`, or its row-split form on workers (partial statistics merged); in
        a statistics run, the stored statistics."""
        if self.run.kind == "statistics":
            return stored.class_stats(self._stored(epoch, source)), None
        if self._split is None:
            return self._stats(epoch, source, keep)
        path, settings, workers = self._split
        tasks = [(path, settings, epoch, source.kind, source.name, r0, r1)
                 for r0, r1 in self._row_ranges(source)]
        parts = list(ordered_map(partial_stats, tasks, workers=workers, dask=settings.dask))
        return merge_class_stats(parts), None

    def _epoch_predictions(self, epoch, source, cache, train, means_dev, w_dev, b_dev):
        """:meth:`_predictions`, or its row-split form on workers (counts added); in a
        statistics run, the stored counts (made with the epoch's training means)."""
        if self.run.kind == "statistics":
            return stored.decision_counts(self._stored(epoch, source))
        if self._split is None:
            return self._predictions(epoch, source, cache, means_dev, train.class_ids, w_dev,
                                     b_dev)
        path, settings, workers = self._split
        means = np.asarray(train.means)
        tasks = [(path, settings, epoch, source.kind, source.name, r0, r1, means,
                  train.class_ids) for r0, r1 in self._row_ranges(source)]
        return sum(ordered_map(partial_decisions, tasks, workers=workers, dask=settings.dask),
                   DecisionCounts())

    # ------------------------------------------------------------------ one epoch
    def compute_epoch(self, epoch: int) -> EpochResult:
        """All requested quantities of one epoch."""
        if self.progress is None:
            return self._compute_epoch(epoch)
        size = self.run.info.num_features
        token = TILE_PROGRESS.set(lambda pairs: self.progress("pairs", pairs, size))
        try:
            return self._compute_epoch(epoch)
        finally:
            TILE_PROGRESS.reset(token)

    def _compute_epoch(self, epoch: int) -> EpochResult:
        s, run = self.settings, self.run
        be = self.backend
        weight = run.weight(epoch)
        bias = run.bias(epoch)
        # The formulas take the host statistics and W, b; the decision pass runs on the device.
        w = None if weight is None else np.asarray(weight, dtype=np.float64)
        b = None if bias is None else np.asarray(bias, dtype=np.float64)
        w_dev = None if w is None else be.asarray(w, "float64")
        b_dev = None if b is None else be.asarray(b, "float64")
        want_metrics = "metrics" in s.quantities
        train = run.train
        stats, cache = self._epoch_stats(epoch, train, keep=want_metrics)
        means_dev = be.asarray(stats.means, "float64")
        values: dict[str, Any] = {"epoch": epoch}
        warnings: list[str] = []

        if want_metrics:
            pred = self._epoch_predictions(epoch, train, cache, stats, means_dev, w_dev, b_dev)
            res = nc_metrics_from_stats(stats, w, b, pred, global_mean=s.global_mean,
                                        center_weights=s.center_weights, rtol=s.rtol,
                                        tile_bytes=self.tile_bytes)
            values.update(res.values)
            warnings.extend(res.warnings)
        del cache
        if "decompose" in s.quantities and w is not None:  # no /weight: one run warning
            from .core.decomposition import decompose_from_stats

            res = decompose_from_stats(stats, w, b, weight_decay=self.weight_decay,
                                       tile_bytes=self.tile_bytes)
            values.update(res.values)
            warnings.extend(res.warnings)
        if "snr" in s.quantities:
            from .core.snr import snr_from_stats

            res = snr_from_stats(stats, ridge=s.ridge, global_mean=s.global_mean)
            values.update(res.values)
            warnings.extend(res.warnings)

        if want_metrics and s.layers and run.info.layers:
            layers = {}
            for name, source in run.info.layers.items():
                lstats, _ = self._epoch_stats(epoch, source, keep=False)
                res = feature_metrics(lstats, global_mean=s.global_mean, rtol=s.rtol,
                                      keys=LAYER_KEYS, tile_bytes=self.tile_bytes)
                layers[name] = {k: res.values[k] for k in LAYER_KEYS if k in res.values}
                warnings.extend(f"layer {name}: {m}" for m in res.warnings)
            values["layers"] = layers
        if want_metrics and s.splits:
            splits = {}
            for name in s.splits:
                source = run.info.splits[name]
                sstats, scache = self._epoch_stats(epoch, source, keep=True)
                spred = self._epoch_predictions(epoch, source, scache, stats, means_dev, w_dev,
                                                b_dev)
                res = nc_metrics_from_stats(sstats, w, b, spred, global_mean=s.global_mean,
                                            center_weights=s.center_weights, rtol=s.rtol,
                                            tile_bytes=self.tile_bytes)
                splits[name] = res.values
                warnings.extend(f"split {name}: {m}" for m in res.warnings)
            values["splits"] = splits
        scalars = run.scalars(epoch)
        if scalars:
            values["scalars"] = scalars
        # C − 1 > P is a fact of the run, said once among the run's warnings (_prepare).
        return EpochResult(epoch, values, [f"epoch {epoch}: {m}" for m in warnings
                                           if ETF_IMPOSSIBLE not in m])

    def __iter__(self) -> Iterator[EpochResult]:
        s = self.settings
        # A statistics run has no rows to split: its epochs are read, not accumulated.
        split = self.run.kind == "features" and len(self._row_ranges(self.run.train)) > 1
        workers = local_workers(self, len(self._row_ranges(self.run.train)) if split else None)
        if s.dask is None and workers <= 1:
            for epoch in self.epochs:
                yield self.compute_epoch(epoch)
            return
        # Workers open the file themselves (on dask the path must be readable on every worker,
        # e.g. a shared filesystem) and run compute_epoch with the same settings, or, for
        # epochs larger than one task, the two passes over row ranges (partial sums merged).
        path = os.path.abspath(self.run.path)
        if split:
            self._split = (path, replace(s, workers=1), workers)
            try:
                for epoch in self.epochs:
                    yield self.compute_epoch(epoch)
            finally:
                self._split = None
            return
        tasks = [(path, s, [e]) for e in self.epochs]
        for results in ordered_map(compute_epochs, tasks, workers=workers, dask=s.dask):
            for d in results:
                yield EpochResult(d["epoch"], d["values"], d["warnings"])


#: With workers, an epoch holding more features than this is split into row-range tasks.
TASK_BYTES = 512 * 2**20
#: Automatic local parallelism starts only when the selected epochs hold at least this many
#: bytes of features: below it, starting processes (≈1–2 s each) costs more than it saves.
AUTO_MIN_BYTES = 512 * 2**20


def local_workers(analysis: Analysis, tasks: int | None = None) -> int:
    """Processes to use for ``analysis`` on this machine (1 means: compute in-process);
    ``tasks``: the row-range tasks of one epoch when its rows are split, else one task per
    epoch."""
    s = analysis.settings
    n_epochs = len(analysis.epochs) if tasks is None else tasks
    if s.workers is not None:
        return max(1, min(cap_workers(s.workers)[0], n_epochs))
    if n_epochs < 2 or analysis.backend.name != "numpy" or analysis.run.kind == "statistics":
        return 1
    info = analysis.run.info
    per_epoch = info.num_samples * info.num_features * info.features_dtype.itemsize
    if per_epoch * n_epochs < AUTO_MIN_BYTES:
        return 1
    return max(1, min(usable_cores(), n_epochs))


def _local(settings: Settings) -> Settings:
    return replace(settings, workers=1, dask=None)


def partial_stats(path: str, settings: Settings, epoch: int, kind: str, name: str, start: int,
                  stop: int) -> ClassStats:
    """Statistics of rows ``start:stop`` of one source of one epoch (a task on a worker).

    Returns host (NumPy) :class:`~ncanalyze.core.stats.ClassStats` over the classes present
    in those rows; :func:`~ncanalyze.core.stats.merge_class_stats` joins the parts.
    """
    with Analysis(path, _local(settings)) as a:
        return a._stats(epoch, a._source(kind, name), keep=False, rows_range=(start, stop))[0]


def partial_decisions(path: str, settings: Settings, epoch: int, kind: str, name: str,
                      start: int, stop: int, means: np.ndarray,
                      classes: np.ndarray) -> DecisionCounts:
    """Decision counts of rows ``start:stop`` (a task on a worker), with the merged training
    ``means`` of ``classes`` and the epoch's W, b read from the file."""
    with Analysis(path, _local(settings)) as a:
        be = a.backend
        weight, bias = a.run.weight(epoch), a.run.bias(epoch)
        w = None if weight is None else be.asarray(np.asarray(weight, np.float64), "float64")
        b = None if bias is None else be.asarray(np.asarray(bias, np.float64), "float64")
        return a._predictions(epoch, a._source(kind, name), None, be.asarray(means, "float64"),
                              classes, w, b, rows_range=(start, stop))


def compute_epochs(path: str, settings: Settings, epochs: list[int]) -> list[dict[str, Any]]:
    """Open ``path`` and compute ``epochs`` with ``settings`` (the task run on a worker).

    Parameters
    ----------
    path : str
        Run file, readable where this function runs.
    settings : Settings
        As for :class:`Analysis`; ``epochs``, ``workers`` and ``dask`` are overridden.
    epochs : list of int
        Epoch numbers.

    Returns
    -------
    list of dict
        ``{"epoch", "values", "warnings"}`` per epoch, in the order of ``epochs`` (plain,
        picklable data).
    """
    local = replace(settings, epochs=",".join(str(e) for e in epochs), workers=1, dask=None)
    with Analysis(path, local) as analysis:
        out = []
        for e in epochs:
            r = analysis.compute_epoch(e)
            out.append({"epoch": r.epoch, "values": r.values, "warnings": r.warnings})
        return out


@dataclass
class _SourceLabels:
    """Labels of one source: as stored (on the device) and renumbered over the classes present
    (host and device) for the statistics."""

    device: Any
    compact_host: np.ndarray
    compact_device: Any
    classes: np.ndarray


def absent_classes(classes: np.ndarray, num_classes: int, *, require_all: bool, file,
                   dataset: str) -> str | None:
    """The one rule for classes without samples (docs/METRICS.md, "Absent classes").

    Parameters
    ----------
    classes : ndarray
        The classes that have samples.
    num_classes : int
        C.
    require_all : bool
        ``--require-all-classes``: absence is an input error.

    Returns
    -------
    str or None
        The run-level warning counting the absent classes, ``None`` when all are present.

    Raises
    ------
    InputError
        When ``require_all`` and a class has no samples.
    """
    missing = num_classes - int(classes.size)
    if missing == 0:
        return None
    if require_all:
        try:
            check_classes_present(classes, num_classes)
        except ValueError as exc:
            raise InputError(f"{exc} (--require-all-classes)", file=file,
                             dataset=dataset) from None
    return (f"{dataset}: {missing} of {num_classes} classes have no samples; they are left out "
            f"of every class-mean key (C = {classes.size} there, see classes_present), and "
            "accuracy, NCC and NC4 still range over all classifier rows")


def _finite(stats) -> bool:
    xp = stats.xp
    return bool(xp.all(xp.isfinite(stats.class_scatter))) and bool(
        xp.all(xp.isfinite(stats.within_scatter))) and bool(xp.all(xp.isfinite(stats.means)))


#: Chunks read ahead by the reader thread of one pass.
PREFETCH = 2


def analyze(path, settings: Settings | None = None, **options) -> tuple[dict, list[EpochResult]]:
    """Compute everything for a run file in memory (convenience for the Python API).

    Returns
    -------
    header : dict
    results : list of EpochResult
    """
    settings = settings or Settings(**options)
    with Analysis(path, settings) as a:
        return a.header, list(a)
