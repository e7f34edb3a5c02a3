"""Writing run files (SPEC §1) from a training loop.

Crash safety and live reading rest on HDF5's single-writer / multiple-reader (SWMR) mode:
every dataset is created at the first :meth:`RunWriter.add_epoch`, then the file switches to
SWMR-write mode, in which HDF5 orders its metadata writes so that the file on disk is a
consistent HDF5 file after every flush. Each ``add_epoch`` appends one slot to every
epoch-indexed dataset, flushes, and only then grows ``/epoch`` and flushes again. Readers
treat ``len(/epoch)`` as the number of complete epochs, so a writer killed at any moment
leaves every epoch whose ``add_epoch`` had returned readable and nothing half-written
visible.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import h5py
import numpy as np

from ..errors import UsageError
from .run import DEFAULT_CHUNK_BYTES, FORMAT_VERSION


def to_numpy(array: Any) -> np.ndarray:
    """Copy ``array`` to a NumPy array on the host.

    Accepts NumPy arrays and anything exposing ``__array__`` or ``__dlpack__`` (torch tensors on
    any device, CuPy arrays, JAX arrays) without importing their libraries: tensors that track
    gradients are detached and device tensors are moved to the host by duck typing.
    """
    if isinstance(array, np.ndarray):
        return array
    obj = array
    if hasattr(obj, "detach"):  # torch: drop autograd tracking
        obj = obj.detach()
    if hasattr(obj, "get") and type(obj).__module__.startswith("cupy"):
        return obj.get()
    try:
        return np.asarray(obj)
    except Exception:
        pass
    if hasattr(obj, "__dlpack__"):
        try:
            return np.from_dlpack(obj)
        except Exception:
            pass
    if hasattr(obj, "cpu"):  # torch tensor on an accelerator
        return np.asarray(obj.cpu())
    raise UsageError(f"cannot convert {type(array).__name__} to a NumPy array")


def _chunk_shape(n: int, p: int, itemsize: int) -> tuple[int, int, int]:
    rows = max(1, min(n, (DEFAULT_CHUNK_BYTES // 4) // max(1, p * itemsize)))
    return (1, rows, p)


class RunWriter:
    """Write a run file epoch by epoch (a context manager).

    Parameters
    ----------
    path : str or os.PathLike
        File to create (an existing file is replaced only when ``overwrite=True``).
    labels : array_like, shape (n_samples,)
        Class of each training sample, in ``0..num_classes-1``.
    num_classes : int, optional
        C; default ``max(labels) + 1``.
    weight_decay : float, optional
        λ of SPEC §2.3, stored as the ``weight_decay`` attribute.
    loss : str, optional
        ``"mse"``, ``"ce"``, … (informational).
    splits : mapping of str to array_like, optional
        Labels of extra splits (e.g. ``{"test": y_test}``); their features go to
        ``add_epoch(..., splits={"test": h_test})``.
    compression : str, optional
        HDF5 filter for the features (``"gzip"``, ``"lzf"``); default none.
    overwrite : bool, default False

    Examples
    --------
    >>> with RunWriter("run.h5", y_train, weight_decay=5e-4, loss="mse") as w:  # doctest: +SKIP
    ...     for epoch in range(epochs):
    ...         train_one_epoch()
    ...         w.add_epoch(epoch, feats, model.fc.weight, model.fc.bias, train_loss=loss)
    """

    def __init__(self, path, labels, *, num_classes: int | None = None,
                 weight_decay: float | None = None, loss: str | None = None,
                 splits: Mapping[str, Any] | None = None, compression: str | None = None,
                 overwrite: bool = False):
        self.path = os.fspath(path)
        labels = to_numpy(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise UsageError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            if np.all(np.mod(labels, 1) == 0):
                labels = labels.astype(np.int64)
            else:
                raise UsageError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.min() < 0:
            raise UsageError("labels must be non-negative")
        self.num_classes = int(num_classes) if num_classes is not None else int(labels.max()) + 1
        if labels.max() >= self.num_classes:
            raise UsageError(f"label {labels.max()} ≥ num_classes = {self.num_classes}")
        self.labels = labels.astype(np.int64, copy=False)
        self.splits = {k: to_numpy(v).astype(np.int64) for k, v in (splits or {}).items()}
        self.compression = compression
        if os.path.exists(self.path) and not overwrite:
            raise UsageError(f"{self.path} exists; pass overwrite=True to replace it")
        self._file = h5py.File(self.path, "w", libver="latest")
        f = self._file
        f.attrs["ncanalyze_format"] = FORMAT_VERSION
        f.attrs["num_classes"] = self.num_classes
        if loss is not None:
            f.attrs["loss"] = str(loss)
        if weight_decay is not None:
            f.attrs["weight_decay"] = float(weight_decay)
        f.create_dataset("labels", data=self.labels)
        for name, split_labels in self.splits.items():
            f.create_dataset(f"splits/{name}/labels", data=split_labels)
        self._count = 0
        self._layout: dict[str, tuple] | None = None
        self._last_epoch: int | None = None

    # ------------------------------------------------------------------ layout
    def _create(self, path: str, shape: tuple, dtype, chunks=None) -> None:
        self._file.create_dataset(
            path, shape=(0,) + shape, maxshape=(None,) + shape, dtype=dtype,
            chunks=chunks or ((1,) + shape if shape else (64,)),
            compression=self.compression if len(shape) == 2 else None)

    def _start(self, arrays: dict[str, np.ndarray], scalars: dict[str, float]) -> None:
        layout = {}
        for path, arr in arrays.items():
            dtype = arr.dtype if arr.dtype in (np.float16, np.float32, np.float64) else np.float32
            chunks = None
            if arr.ndim == 2:
                chunks = _chunk_shape(arr.shape[0], arr.shape[1], np.dtype(dtype).itemsize)
            self._create(path, arr.shape, dtype, chunks)
            layout[path] = (arr.shape, dtype)
        for name in scalars:
            self._create(f"scalars/{name}", (), np.float64)
            layout[f"scalars/{name}"] = ((), np.float64)
        self._file.create_dataset("epoch", shape=(0,), maxshape=(None,), dtype=np.int64,
                                  chunks=(256,))
        self._layout = layout
        self._file.swmr_mode = True

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
        epoch = int(epoch)
        if self._last_epoch is not None and epoch <= self._last_epoch:
            raise UsageError(f"epoch {epoch} is not larger than the previous epoch "
                             f"{self._last_epoch}")
        arrays: dict[str, np.ndarray] = {"features": to_numpy(features)}
        if weight is not None:
            arrays["weight"] = to_numpy(weight)
        if bias is not None:
            arrays["bias"] = to_numpy(bias)
        for name, arr in (layers or {}).items():
            arrays[f"layers/{name}"] = to_numpy(arr)
        for name, arr in (splits or {}).items():
            if name not in self.splits:
                raise UsageError(f"split {name!r} was not declared in RunWriter(splits=...)")
            arrays[f"splits/{name}/features"] = to_numpy(arr)
        scalar_values = {k: float(to_numpy(v)) for k, v in scalars.items()}
        self._check(arrays)
        if self._layout is None:
            self._start(arrays, scalar_values)
        expected = {p for p in self._layout if not p.startswith("scalars/")}
        if set(arrays) != expected or {f"scalars/{k}" for k in scalar_values} != (
                set(self._layout) - expected):
            raise UsageError("add_epoch must pass the same arrays and scalars every epoch "
                             f"(first epoch had {sorted(self._layout)})")
        f = self._file
        k = self._count
        for path, arr in arrays.items():
            shape, _ = self._layout[path]
            if arr.shape != shape:
                raise UsageError(f"{path} has shape {arr.shape}, first epoch had {shape}")
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
        if "weight" in arrays and arrays["weight"].shape != (c, p):
            raise UsageError(f"weight must have shape ({c}, {p}), got {arrays['weight'].shape}")
        if "bias" in arrays and arrays["bias"].shape != (c,):
            raise UsageError(f"bias must have shape ({c},), got {arrays['bias'].shape}")
        for path, arr in arrays.items():
            if path.startswith("layers/") and (arr.ndim != 2 or arr.shape[0] != n):
                raise UsageError(f"{path} must have shape ({n}, P_l), got {arr.shape}")
            if path.startswith("splits/"):
                ns = self.splits[path.split("/")[1]].shape[0]
                if arr.shape != (ns, p):
                    raise UsageError(f"{path} must have shape ({ns}, {p}), got {arr.shape}")

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Flush and close the file."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
