"""Writing run files (docs/FORMAT.md) from a training loop.

Crash safety and live reading rest on two mechanisms (docs/RELIABILITY.md has the evidence):

* **Until the first epoch is complete the run is built under a temporary name.** The
  constructor writes the attributes and labels to a temporary file, closes it and renames it
  onto ``path``; the first :meth:`RunWriter.add_epoch` builds the full layout (which needs P
  and the set of arrays) in a new temporary file, switches it to SWMR-write mode, writes the
  first epoch, flushes and only then renames it onto ``path``. At every instant ``path`` is
  either absent, a closed file with labels and no ``/epoch`` ("no complete epoch yet"), or a
  SWMR file with at least one complete epoch. (A plain, non-SWMR HDF5 writer killed while the
  file is open leaves it flagged "open for write", unreadable without ``h5clear``; this is
  why the non-SWMR phase never happens on ``path``.)
* **After that, HDF5 single-writer / multiple-reader (SWMR) mode.** SWMR orders metadata
  writes so that the file on disk is a consistent HDF5 file at every instant, which is what
  both a concurrent reader and a reader after a SIGKILL see. Each ``add_epoch`` appends one
  slot to every epoch-indexed dataset, flushes (all data reaches the operating system), and
  only then grows ``/epoch``, writes the epoch number and flushes again. Readers count an
  epoch only when ``/epoch`` holds its number; ``/epoch`` is filled with a sentinel so that
  a slot whose extent reached the disk before its value is recognised as incomplete.

**One writer at a time.** A writer holds an exclusive lock (:class:`~ncanalyze.lock.WriterLock`,
``flock`` on ``.NAME.lock`` beside the file) from its constructor to :meth:`RunWriter.close`;
a second writer of the same file fails at construction. A writer whose file was replaced or
removed by someone else (a rename onto it) notices at its next ``add_epoch`` (the file's
device and inode changed) and stops with an error instead of writing into a file nobody sees.

Protection is against the process dying (SIGKILL, OOM killer, a crash); HDF5 does not fsync,
so an operating-system crash or power loss can still lose recently written epochs.

Length: a little above the ~350-line guide because the two phases above are one protocol;
the validation rules it applies live in :mod:`ncanalyze.io.schema`, the lock in
:mod:`ncanalyze.lock`.
"""

from __future__ import annotations

import contextlib
import operator
import os
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from ..atomic import file_identity, output_errors
from ..backend import to_numpy
from ..errors import OutputError, UsageError
from ..limits import MAX_SAMPLES
from .content import check_epoch, check_sizes, check_values
from .h5 import DEFAULT_CHUNK_BYTES
from .publish import RunPublisher
from .schema import (EPOCH_FILL, FORMAT_VERSION, check_labels,
                     check_member_name, check_num_classes, check_weight_decay)
from .statistics_writer import StatisticsWriting


def _check(rule, *args, what: str = ""):
    """Apply a rule of the reader (io/schema.py); its problem becomes a UsageError."""
    try:
        return rule(*args)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}" if what else str(exc)) from None


def _integer(name: str, value: Any) -> int:
    """``value`` as an int when it is one (Python or NumPy integer); a float, string or bool
    is refused rather than truncated or parsed."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise UsageError(f"{name}={value!r} must be an integer") from None


def _chunk_shape(n: int, p: int, itemsize: int) -> tuple[int, int, int]:
    rows = max(1, min(n, (DEFAULT_CHUNK_BYTES // 4) // max(1, p * itemsize)))
    return (1, rows, p)


class RunWriter(StatisticsWriting):
    """Write a run file epoch by epoch (a context manager).

    Parameters
    ----------
    path : str or os.PathLike
        File to create (an existing file is replaced only when ``overwrite=True``).
    labels : array_like, shape (n_samples,)
        Class of each training sample, in ``0..num_classes-1``; optional in a statistics
        run (then ``num_classes`` is required), where the counts must match them.
    num_classes : int, optional
        C; default ``max(labels) + 1``.
    weight_decay : float, optional
        λ of the central-path decomposition (docs/CENTRAL_PATH.md), stored as the ``weight_decay`` attribute.
    loss : str, optional
        ``"mse"``, ``"ce"``, … (informational).
    splits : mapping of str to array_like, optional
        Labels of extra splits (e.g. ``{"test": y_test}``); their features go to
        ``add_epoch(..., splits={"test": h_test})``. A statistics run also takes a list of
        names or ``None`` labels.
    compression : str, optional
        HDF5 filter for the features (``"gzip"``, ``"lzf"``); default none.
    overwrite : bool, default False
    steps_per_epoch : int, optional
        Optimiser steps per epoch, for the SNR dynamics' time axis (docs/FORMAT.md).
    statistics : bool, default False
        Write a statistics run (format 2, docs/FORMAT.md "Statistics runs") with
        :meth:`add_statistics` instead of features with :meth:`add_epoch`.

    Raises
    ------
    UsageError
        Invalid labels, ``path`` exists and ``overwrite`` is false, or ``path`` is a folder or
        not a regular file.
    OutputError
        Another writer holds ``path`` (see the module docstring), or it cannot be written.

    Examples
    --------
    >>> with RunWriter("run.h5", y_train, weight_decay=5e-4, loss="mse") as w:  # doctest: +SKIP
    ...     for epoch in range(epochs):
    ...         train_one_epoch()
    ...         w.add_epoch(epoch, feats, model.fc.weight, model.fc.bias, train_loss=loss)
    """

    def __init__(self, path, labels=None, *, num_classes: int | None = None,
                 weight_decay: float | None = None, loss: str | None = None,
                 splits: Mapping[str, Any] | Sequence[str] | None = None,
                 compression: str | None = None, overwrite: bool = False,
                 statistics: bool = False, steps_per_epoch: int | None = None):
        self.path = os.fspath(path)
        self.statistics = bool(statistics)
        if labels is None and not self.statistics:
            raise UsageError("labels are required (only a statistics run may omit them)")
        if labels is None and num_classes is None:
            raise UsageError("a statistics run without labels needs num_classes")
        labels = None if labels is None else self._labels(labels, "labels")
        # The reader's rules (io/rules.py), checked before anything is written.
        self.num_classes = (_integer("num_classes", num_classes) if num_classes is not None
                            else int(labels.max()) + 1)
        _check(check_num_classes, self.num_classes)
        if labels is not None:
            _check(check_labels, labels, self.num_classes, what="labels")
        self.labels = labels
        if splits is not None and not isinstance(splits, Mapping):
            if not self.statistics:
                raise UsageError("splits must map each split name to its labels")
            splits = {name: None for name in splits}
        self.splits: dict[str, np.ndarray | None] = {}
        for name, split_labels in (splits or {}).items():
            _check(check_member_name, "split", name)
            if split_labels is None and self.statistics:
                self.splits[name] = None
                continue
            split_labels = self._labels(split_labels, f"split {name!r}")
            _check(check_labels, split_labels, self.num_classes, what=f"split {name!r} labels")
            self.splits[name] = split_labels
        if weight_decay is not None:
            weight_decay = _check(check_weight_decay, weight_decay)
        if steps_per_epoch is not None and _integer("steps_per_epoch", steps_per_epoch) < 1:
            raise UsageError(f"steps_per_epoch={steps_per_epoch!r} must be an integer ≥ 1")
        self.steps_per_epoch = steps_per_epoch
        self.compression = compression
        # Lock, overwrite rule, temporary names, publish: io/publish.py. Symlinks are
        # followed: the file written (and locked) is the link's target.
        self._publisher = RunPublisher(self.path, overwrite=overwrite)
        self._target = self._publisher.target
        try:
            self._create_header(loss, weight_decay)
        except BaseException:
            self._publisher.release()
            raise

    def _labels(self, labels, what: str) -> np.ndarray:
        """Labels as a non-empty 1-D int64 array (whole floats accepted)."""
        labels = to_numpy(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise UsageError(f"{what} must be a non-empty 1-D array, got shape {labels.shape}")
        if labels.size > MAX_SAMPLES:
            raise UsageError(f"{what}: N = {labels.size} samples is above the limit {MAX_SAMPLES}")
        if not np.issubdtype(labels.dtype, np.integer):
            if labels.dtype.kind in "bf" and np.all(np.mod(labels, 1) == 0):
                labels = labels.astype(np.int64)
            else:
                raise UsageError(f"{what} must be integers, got dtype {labels.dtype}")
        return labels.astype(np.int64, copy=False)

    def _create_header(self, loss, weight_decay) -> None:
        # A features run stays format 1 (readable by every version); statistics need 2.
        self._attrs: dict[str, Any] = {"ncanalyze_format": FORMAT_VERSION if self.statistics
                                       else 1, "num_classes": self.num_classes}
        if loss is not None:
            self._attrs["loss"] = str(loss)
        if weight_decay is not None:
            self._attrs["weight_decay"] = weight_decay
        if self.steps_per_epoch is not None:
            self._attrs["steps_per_epoch"] = int(self.steps_per_epoch)
        self._file: h5py.File | None = None
        self._closed = False
        self._count = 0
        self._layout: dict[str, tuple] | None = None
        #: A statistics run's feature_dtype per source group, and its first epoch's counts.
        self._group_dtypes: dict[str, str] | None = None
        self._first_counts: dict[str, np.ndarray] = {}
        self._last_epoch: int | None = None
        # Readers see a valid file with labels and no epoch until the first epoch is done.
        tmp = self._publisher.temp_name()
        try:
            with output_errors(self.path), h5py.File(tmp, "w", libver="latest") as f:
                self._write_header(f)
            self._identity = self._publisher.publish(tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _check_still_ours(self) -> None:
        """Stop if the file at our path is no longer the one this writer published."""
        now = file_identity(self._target)
        if now != self._identity:
            self.close()
            what = "removed" if now is None else "replaced by another file"
            raise OutputError(f"was {what} while this RunWriter was writing it (another "
                              "process?); this writer stopped, its epochs are not in the file",
                              file=self.path)

    def _write_header(self, f: h5py.File) -> None:
        for key, value in self._attrs.items():
            f.attrs[key] = value
        if self.labels is not None:
            f.create_dataset("labels", data=self.labels)
        for name, split_labels in self.splits.items():
            if split_labels is not None:
                f.create_dataset(f"splits/{name}/labels", data=split_labels)

    # ------------------------------------------------------------------ layout
    def _create(self, path: str, shape: tuple, dtype, chunks=None) -> None:
        self._file.create_dataset(
            path, shape=(0,) + shape, maxshape=(None,) + shape, dtype=dtype,
            chunks=chunks or ((1,) + shape if shape else (64,)),
            compression=self.compression if len(shape) == 2 else None)

    def _start(self, arrays: dict[str, np.ndarray], scalars: dict[str, float]) -> None:
        """Create the full layout in a new temporary file and switch it to SWMR mode."""
        self._tmp = self._publisher.temp_name()
        self._file = f = h5py.File(self._tmp, "w", libver="latest")
        self._write_header(f)
        layout = {}
        for path, arr in arrays.items():
            dtype = arr.dtype if arr.dtype in (np.float16, np.float32, np.float64) else (
                np.int64 if np.issubdtype(arr.dtype, np.integer) else np.float32)
            chunks = None
            if arr.ndim == 2:
                chunks = _chunk_shape(arr.shape[0], arr.shape[1], np.dtype(dtype).itemsize)
            self._create(path, arr.shape, dtype, chunks)
            layout[path] = (arr.shape, dtype)
        for name in scalars:
            self._create(f"scalars/{name}", (), np.float64)
            layout[f"scalars/{name}"] = ((), np.float64)
        for group, dtype in (self._group_dtypes or {}).items():
            f[group].attrs["feature_dtype"] = dtype
        f.create_dataset("epoch", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,),
                         fillvalue=EPOCH_FILL)
        self._layout = layout
        f.swmr_mode = True

    # ------------------------------------------------------------------ appending
    def add_epoch(self, epoch: int, features, weight=None, bias=None, *,
                  layers: Mapping[str, Any] | None = None,
                  splits: Mapping[str, Any] | None = None, **scalars: float) -> None:
        """Append one epoch; when this returns the epoch is durable and visible to readers.

        Parameters
        ----------
        epoch : int
            Epoch number, larger than the previous one.
        features : array_like, shape (n_samples, n_features)
        weight : array_like, shape (n_classes, n_features), optional
        bias : array_like, shape (n_classes,), optional
        layers : mapping of str to array_like (n_samples, n_features_l), optional
        splits : mapping of str to array_like (n_samples_s, n_features), optional
        **scalars : float
            Per-epoch scalars (train_loss, lr, …) written to ``/scalars/<name>``.

        The first call fixes which of weight, bias, layers, splits and scalars the run has.
        """
        epoch = self._next(epoch)
        arrays: dict[str, np.ndarray] = {"features": to_numpy(features)}
        if weight is not None:
            arrays["weight"] = to_numpy(weight)
        if bias is not None:
            arrays["bias"] = to_numpy(bias)
        for name, arr in (layers or {}).items():
            arrays[f"layers/{_check(check_member_name, 'layer', name)}"] = to_numpy(arr)
        for name, arr in (splits or {}).items():
            if name not in self.splits:
                raise UsageError(f"split {name!r} was not declared in RunWriter(splits=...)")
            arrays[f"splits/{name}/features"] = to_numpy(arr)
        if self.statistics:
            raise UsageError("add_epoch on a statistics run: use add_statistics")
        scalar_values = self._scalar_values(scalars)
        self._check(arrays)
        self._commit(epoch, arrays, scalar_values)

    def _commit(self, epoch: int, arrays: dict[str, np.ndarray],
                scalar_values: dict[str, float]) -> None:
        """Append checked arrays as one epoch (the first builds and publishes the layout)."""
        if self._closed:
            raise UsageError("add_epoch on a closed RunWriter")
        self._check_still_ours()
        first = self._layout is None
        if first:
            self._check_first(arrays)
            try:
                with output_errors(self.path):  # errors name the run's path, not the temporary
                    self._start(arrays, scalar_values)
                    self._append(epoch, arrays, scalar_values)
                    # The run appears at its path only with one complete epoch in SWMR mode.
                    self._check_still_ours()
                    self._identity = self._publisher.publish(self._tmp)
            except BaseException:
                self._abandon()
                raise
        else:
            with output_errors(self.path):
                self._append(epoch, arrays, scalar_values)

    @staticmethod
    def _scalar_values(scalars: Mapping[str, Any]) -> dict[str, float]:
        return {_check(check_member_name, "scalar", k): float(to_numpy(v))
                for k, v in scalars.items()}

    def _next(self, epoch) -> int:
        return _check(check_epoch, epoch, self._last_epoch, self._count)

    def _check_first(self, arrays: dict[str, np.ndarray]) -> None:
        for name in self.splits:
            member = f"splits/{name}/{'counts' if self.statistics else 'features'}"
            if member not in arrays:
                raise UsageError(f"split {name!r} was declared; pass its "
                                 f"{'statistics' if self.statistics else 'features'} in "
                                 f"add_{'statistics' if self.statistics else 'epoch'}"
                                 "(..., splits={...})")

    def _abandon(self) -> None:
        if self._file is not None and self._file.id.valid:
            with contextlib.suppress(Exception):
                self._file.close()
        self._file, self._layout = None, None
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def _append(self, epoch: int, arrays: dict[str, np.ndarray],
                scalar_values: dict[str, float]) -> None:
        expected = {p for p in self._layout if not p.startswith("scalars/")}
        if set(arrays) != expected or {f"scalars/{k}" for k in scalar_values} != (
                set(self._layout) - expected):
            raise UsageError("add_epoch must pass the same arrays and scalars every epoch "
                             f"(first epoch had {sorted(self._layout)})")
        for path, arr in arrays.items():
            shape, _ = self._layout[path]
            if arr.shape != shape:
                raise UsageError(f"{path} has shape {arr.shape}, first epoch had {shape}")
        f = self._file
        k = self._count
        for path, arr in arrays.items():
            ds = f[path]
            ds.resize(k + 1, axis=0)
            ds[k] = arr
        for name, value in scalar_values.items():
            ds = f[f"scalars/{name}"]
            ds.resize(k + 1, axis=0)
            ds[k] = value
        f.flush()
        # /epoch grows last: a reader counts an epoch only once all of its data is on disk.
        ep = f["epoch"]
        ep.resize(k + 1, axis=0)
        ep[k] = epoch
        f.flush()
        self._count += 1
        self._last_epoch = epoch

    def _check(self, arrays: dict[str, np.ndarray]) -> None:
        n, c = self.labels.shape[0], self.num_classes
        feats = arrays["features"]
        if feats.ndim != 2 or feats.shape[0] != n:
            raise UsageError(f"features must have shape ({n}, P), got {feats.shape}")
        p = feats.shape[1]
        _check(check_sizes, n, p, c)
        for path, arr in arrays.items():
            _check(check_values, path, arr)
        if "weight" in arrays and arrays["weight"].shape != (c, p):
            raise UsageError(f"weight must have shape ({c}, {p}), got {arrays['weight'].shape}")
        if "bias" in arrays and arrays["bias"].shape != (c,):
            raise UsageError(f"bias must have shape ({c},), got {arrays['bias'].shape}")
        for path, arr in arrays.items():
            if path.startswith("layers/"):
                if arr.ndim != 2 or arr.shape[0] != n:
                    raise UsageError(f"{path} must have shape ({n}, P_l), got {arr.shape}")
                _check(check_sizes, n, arr.shape[1], 0, what=path)
            if path.startswith("splits/"):
                ns = self.splits[path.split("/")[1]].shape[0]
                if arr.shape != (ns, p):
                    raise UsageError(f"{path} must have shape ({ns}, {p}), got {arr.shape}")

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Flush and close the file, and release the writer lock."""
        self._closed = True
        try:
            if self._file is not None and self._file.id.valid:
                self._file.close()
        finally:
            self._publisher.release()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
