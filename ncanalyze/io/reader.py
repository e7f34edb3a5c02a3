"""Reading run files lazily: one epoch, one row chunk at a time (docs/FORMAT.md), or one
epoch's stored statistics in a statistics run.

:func:`open_run` opens the file read-only (:mod:`~ncanalyze.io.h5`), validates it
(:mod:`~ncanalyze.io.schema`, which applies the untrusted-file rules of
:mod:`~ncanalyze.io.trust`) and keeps the datasets validation opened; nothing in a file is
evaluated or unpickled, and the file's bytes are never changed.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np

from ..errors import InputError
from .rules import beyond_magnitude, magnitude_problem
from .h5 import DEFAULT_CHUNK_BYTES, H5_ERRORS, open_file
from .schema import RunInfo, Source, validate
from .statistics import (DECISIONS, STATISTICS, StatisticsError, StoredStatistics,
                         check_decisions, check_statistics)


class Run:
    """A run file opened read-only: the HDF5 implementation of
    :class:`~ncanalyze.io.protocol.RunReader`.

    Use :func:`open_run`. The object is a context manager; reads are lazy.

    Parameters
    ----------
    path : str or os.PathLike
    allow_external : bool
        Accept external links, external raw storage and virtual datasets pointing outside
        the file (refused by default, docs/RELIABILITY.md).
    """

    def __init__(self, path, *, allow_external: bool = False):
        self.path = os.fspath(path)
        self.allow_external = allow_external
        self._file = open_file(self.path)
        try:
            checked = validate(self._file, self.path, allow_external=allow_external)
        except BaseException:
            self._file.close()
            raise
        self.info: RunInfo = checked.info
        self._datasets = checked.datasets
        self._labels = checked.labels
        self._reads = checked.reads
        #: Bytes the chunk caches of the datasets read may hold, in all.
        self.decode_bytes: int = checked.decode_bytes
        self._counts = checked.counts

    def close(self) -> None:
        """Close the file."""
        self._datasets.clear()
        self._file.close()

    def identity(self) -> tuple[int, int] | None:
        """``(device, inode)`` of the file this run has open (not of whatever ``path`` names
        now), or None when HDF5's file driver gives no descriptor."""
        try:
            st = os.fstat(self._file.id.get_vfd_handle())
        except (AttributeError, TypeError, ValueError, OSError, RuntimeError):
            return None
        return st.st_dev, st.st_ino

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, message, dataset=None, epoch=None) -> InputError:
        return InputError(message, file=self.path, dataset=dataset, epoch=epoch)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every file a read of this run may open: the run file, then (with
        ``allow_external``) the external-link targets, external raw-storage files and
        virtual-source files its datasets lead to. No output may replace any of them."""
        return (self.path, *sorted(self._reads))

    # ------------------------------------------------------------------ access
    @property
    def epochs(self) -> np.ndarray:
        """Epoch numbers of the complete slots, shape ``(E,)``."""
        return self.info.epochs

    @property
    def kind(self) -> str:
        """``"features"`` or ``"statistics"`` (docs/FORMAT.md, "Statistics runs")."""
        return self.info.kind

    @property
    def train(self) -> Source:
        """The training data (``/features``, or ``/statistics`` in a statistics run)."""
        i = self.info
        return i.train or Source("train", "train", "/features", "/labels", i.num_samples,
                                 i.num_features)

    def labels(self, source: Source | None = None) -> np.ndarray:
        """Labels of ``source`` (default: the training split), shape ``(n_samples,)``.

        Raises
        ------
        InputError
            A statistics run that stores no labels for ``source`` (use :meth:`class_counts`).
        """
        path = (source or self.train).labels_path
        if path is None:
            raise self._error("stores no labels (a statistics run; its class counts are in "
                              "the statistics)", (source or self.train).path)
        return self._labels[path]

    def class_counts(self, source: Source | None = None) -> np.ndarray:
        """Samples per class of ``source`` (default: the training split), shape ``(C,)``;
        in a statistics run every epoch holds these counts."""
        source = source or self.train
        if self.kind == "statistics":
            group = self.train.path if source.kind == "layer" else source.path
            return self._counts[group]
        return np.bincount(self.labels(source), minlength=self.info.num_classes)

    def statistics(self, epoch: int, source: Source | None = None) -> StoredStatistics:
        """The stored statistics of ``source`` at ``epoch`` (a statistics run), checked as
        untrusted input (io/statistics.py).

        Raises
        ------
        InputError
            Naming the dataset and epoch of the first rule broken.
        """
        source = source or self.train
        if self.kind != "statistics":
            raise self._error("holds per-sample features, not statistics", source.path)
        slot, group = self.slot(epoch), source.path
        arrays = [self._read(f"{group}/{k}", slot, epoch) for k in STATISTICS]
        with_clf = self.info.has_weight
        decisions = None
        if source.kind != "layer":
            decisions = {k: int(self._read(f"{group}/{k}", slot, epoch))
                         for k in (DECISIONS if with_clf else DECISIONS[:1])}
        what = ("the training data's" if source.kind == "layer" else
                "the first epoch's" if source.labels_path is None else source.labels_path)
        try:
            check_statistics(*arrays, num_classes=self.info.num_classes,
                             expected=self.class_counts(source), expected_what=what)
            if decisions is not None:
                check_decisions(decisions, int(arrays[0].sum()), with_clf)
        except StatisticsError as exc:
            raise self._error(str(exc), f"{group}/{exc.member}", epoch) from None
        counts, means, scatter, class_scatter = arrays
        scatter = (scatter + scatter.T) / 2
        if decisions is not None:
            decisions["total"] = int(counts.sum())
        return StoredStatistics(counts.astype(np.int64), means, scatter, class_scatter,
                                decisions, source.feature_dtype)

    def slot(self, epoch: int) -> int:
        """Index along the epoch axis of epoch number ``epoch``."""
        idx = np.flatnonzero(self.info.epochs == epoch)
        if idx.size == 0:
            raise self._error(f"epoch {epoch} is not in the file "
                              f"(has {_describe_epochs(self.info.epochs)})", "/epoch")
        return int(idx[0])

    def _read(self, path: str, sel, epoch: int | None):
        try:
            data = self._datasets[path][sel]
        except H5_ERRORS as exc:
            raise self._error(f"cannot be read: {exc}", path, epoch) from exc
        if isinstance(data, np.ndarray) and not data.dtype.isnative:
            data = data.astype(data.dtype.newbyteorder("="))  # big-endian file
        return data

    def _finite(self, arr: np.ndarray, path: str, epoch: int, what: str) -> np.ndarray:
        bad = ~np.isfinite(arr)
        if bad.any():
            n = int(bad.any(axis=-1).sum()) if arr.ndim > 1 else int(bad.sum())
            raise self._error(f"{n} of {arr.shape[0]} {what} contain NaN or Inf", path, epoch)
        if beyond_magnitude(arr):
            raise self._error(magnitude_problem(), path, epoch)
        return arr

    def weight(self, epoch: int) -> np.ndarray | None:
        """Classifier W of ``epoch``, shape ``(n_classes, n_features)``, or ``None``."""
        if not self.info.has_weight:
            return None
        w = self._read("/weight", self.slot(epoch), epoch)
        return self._finite(w, "/weight", epoch, "rows")

    def bias(self, epoch: int) -> np.ndarray | None:
        """Classifier bias b of ``epoch``, shape ``(n_classes,)``, or ``None``."""
        if not self.info.has_bias:
            return None
        b = self._read("/bias", self.slot(epoch), epoch)
        return self._finite(b, "/bias", epoch, "entries")

    def scalars(self, epoch: int) -> dict[str, float]:
        """The ``/scalars/<name>`` values of ``epoch`` (non-finite values as ``None``)."""
        slot = self.slot(epoch)
        out = {}
        for name in self.info.scalars:
            value = float(self._read(f"/scalars/{name}", slot, epoch))
            out[name] = value if math.isfinite(value) else None
        return out

    def chunk_rows(self, source: Source | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
        """Rows per read: at most ``chunk_bytes``, rounded down to whole HDF5 chunks if possible."""
        source = source or self.train
        ds = self._datasets[source.path]
        row_bytes = max(1, ds.shape[2] * ds.dtype.itemsize)
        rows = max(1, chunk_bytes // row_bytes)
        if ds.chunks is not None and ds.chunks[1] <= rows:
            rows = (rows // ds.chunks[1]) * ds.chunks[1]
        return int(min(rows, max(1, ds.shape[1])))

    def iter_chunks(self, epoch: int, source: Source | None = None, *, rows: int | None = None,
                    check_finite: bool = True, start: int = 0,
                    stop: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the features of ``epoch`` in row chunks.

        Parameters
        ----------
        epoch : int
            Epoch number (not slot index).
        source : Source, optional
            Which features (default: the training split).
        rows : int, optional
            Rows per chunk (default: :meth:`chunk_rows`).
        check_finite : bool
            Raise :class:`InputError` naming the epoch and bad-row count on NaN/Inf.
        start, stop : int, optional
            Read only the rows ``start:stop`` (default all).

        Yields
        ------
        features : ndarray, shape (n_rows, n_features)
            In the file's dtype.
        labels : ndarray, shape (n_rows,)
        """
        source = source or self.train
        if self.kind == "statistics":
            raise self._error("a statistics run holds no per-sample features", source.path)
        slot = self.slot(epoch)
        labels = self.labels(source)
        rows = rows or self.chunk_rows(source)
        n = source.num_samples if stop is None else min(stop, source.num_samples)
        for lo in range(start, n, rows):
            hi = min(n, lo + rows)
            chunk = self._read(source.path, np.s_[slot, lo:hi, :], epoch)
            if check_finite and not np.isfinite(chunk).all():
                raise self._nonfinite_error(epoch, source, lo, rows)
            yield chunk, labels[lo:hi]

    def _nonfinite_error(self, epoch: int, source: Source, start: int, rows: int) -> InputError:
        """Count the rows with NaN/Inf from ``start`` to the end of the epoch (chunk by chunk)."""
        slot, n = self.slot(epoch), source.num_samples
        bad, first = 0, None
        for lo in range(start, n, rows):
            chunk = self._read(source.path, np.s_[slot, lo:min(n, lo + rows), :], epoch)
            rows_bad = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
            if first is None and rows_bad.size:
                first = lo + int(rows_bad[0])
            bad += rows_bad.size
        return self._error(f"{bad} of {n} rows contain NaN or Inf (first bad row: {first})",
                           source.path, epoch)


def _describe_epochs(epochs: np.ndarray) -> str:
    if epochs.size == 0:
        return "no complete epochs"
    if epochs.size <= 6:
        return "epochs " + ", ".join(str(e) for e in epochs)
    return f"{epochs.size} epochs from {epochs[0]} to {epochs[-1]}"


def open_run(path, *, allow_external: bool = False) -> Run:
    """Open a run file read-only and validate its layout (no bulk data is read).

    Parameters
    ----------
    path : str or os.PathLike
    allow_external : bool, default False
        Follow external links / storage and virtual datasets pointing outside the file.

    Returns
    -------
    Run

    Raises
    ------
    InputError
        The file is missing, not HDF5, damaged, has no complete epoch yet (``/epoch`` absent
        or empty), or does not follow docs/FORMAT.md.
    """
    return Run(path, allow_external=allow_external)
