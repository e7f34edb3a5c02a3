"""Reading run files (SPEC §1): validation, lazy per-epoch access, row-chunked reads.

This package is the only code that touches h5py. Files are always opened read-only; a file
being appended to by a :class:`~ncanalyze.io.writer.RunWriter` is opened in SWMR-read mode so
that only complete epochs (slots below ``len(/epoch)``) are seen.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterator

import h5py
import numpy as np

from ..errors import InputError

FORMAT_VERSION = 1
#: Target size of one row chunk read from ``/features`` (bytes, in the file's dtype).
DEFAULT_CHUNK_BYTES = 16 * 2**20
#: Largest P accepted: Σ_W is P×P float64 (4 GiB at this limit).
MAX_FEATURES = 23_000
#: Largest C accepted (C×C and C×P matrices are built).
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class Source:
    """One feature matrix family of a run: the training split, a layer or an extra split.

    Attributes
    ----------
    kind : {"train", "layer", "split"}
    name : str
        ``"train"``, the layer name or the split name.
    path : str
        HDF5 path of the ``(E, n, p)`` features dataset.
    labels_path : str
        HDF5 path of the ``(n,)`` labels dataset.
    num_samples, num_features : int
    """

    kind: str
    name: str
    path: str
    labels_path: str
    num_samples: int
    num_features: int


@dataclass
class RunInfo:
    """What a run file declares, validated (no bulk data read)."""

    path: str
    num_classes: int
    num_samples: int
    num_features: int
    epochs: np.ndarray
    features_dtype: np.dtype
    has_weight: bool
    has_bias: bool
    weight_decay: float | None
    loss: str | None
    format_version: int | None
    scalars: list[str] = field(default_factory=list)
    layers: dict[str, Source] = field(default_factory=dict)
    splits: dict[str, Source] = field(default_factory=dict)


def _external_problem(obj: h5py.Dataset) -> str | None:
    """Describe how a dataset's data lives outside the file, or ``None``."""
    if obj.is_virtual:
        for vs in obj.virtual_sources():
            if vs.file_name not in (".", ""):
                return f"is a virtual dataset mapping file {vs.file_name!r}"
    if obj.id.get_create_plist().get_external_count() > 0:
        return "uses external raw storage (data in another file)"
    return None


def _filter_problem(obj: h5py.Dataset) -> str | None:
    """Describe a compression filter of ``obj`` that this HDF5 library cannot decode."""
    dcpl = obj.id.get_create_plist()
    for i in range(dcpl.get_nfilters()):
        code, _flags, _values, name = dcpl.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            return f"needs HDF5 filter {code} ({label or 'unnamed'}), which is not available here"
    return None


class Run:
    """A run file opened read-only.

    Use :func:`open_run`. The object is a context manager; reads are lazy.

    Parameters
    ----------
    path : str or os.PathLike
    allow_external : bool
        Accept external links, external raw storage and virtual datasets pointing outside
        the file (refused by default: SPEC §7).
    """

    def __init__(self, path, *, allow_external: bool = False):
        self.path = os.fspath(path)
        self.allow_external = allow_external
        if not os.path.exists(self.path):
            raise InputError("no such file", file=self.path)
        if os.path.isdir(self.path):
            raise InputError("is a directory, not a run file", file=self.path)
        self._file = self._open()
        try:
            self.info = self._validate()
        except BaseException:
            self._file.close()
            raise

    # ------------------------------------------------------------------ opening
    def _open(self) -> h5py.File:
        if not h5py.is_hdf5(self.path):
            raise InputError("not an HDF5 file", file=self.path)
        try:
            # SWMR-read sees a consistent file while a RunWriter appends to it.
            return h5py.File(self.path, "r", swmr=True)
        except OSError:
            pass
        try:
            return h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(f"cannot be read as HDF5 (truncated or damaged?): {exc}",
                             file=self.path) from exc

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ validation
    def _error(self, message, dataset=None, epoch=None) -> InputError:
        return InputError(message, file=self.path, dataset=dataset, epoch=epoch)

    def _get(self, name: str, *, required: bool) -> h5py.Dataset | None:
        f = self._file
        try:
            link = f.get(name, getlink=True)
        except (KeyError, OSError, RuntimeError) as exc:
            raise self._error(f"cannot be read: {exc}", name) from exc
        if link is None:
            if required:
                raise self._error("required dataset is missing", name)
            return None
        if isinstance(link, h5py.ExternalLink) and not self.allow_external:
            raise self._error(
                f"is an external link to {link.filename}:{link.path}; refused "
                "(pass --allow-external to follow it)", name)
        try:
            obj = f[name]
        except (KeyError, OSError, RuntimeError) as exc:
            raise self._error(f"cannot be opened: {exc}", name) from exc
        if not isinstance(obj, h5py.Dataset):
            raise self._error("is a group, expected a dataset", name)
        if not self.allow_external:
            problem = _external_problem(obj)
            if problem:
                raise self._error(f"{problem}; refused (pass --allow-external to read it)", name)
        problem = _filter_problem(obj)
        if problem:
            raise self._error(problem, name)
        return obj

    def _read_labels(self, name: str) -> np.ndarray:
        ds = self._get(name, required=True)
        if ds.ndim != 1:
            raise self._error(f"must be 1-D (N,), has shape {ds.shape}", name)
        if not np.issubdtype(ds.dtype, np.integer):
            raise self._error(f"must hold integers, has dtype {ds.dtype}", name)
        try:
            labels = ds[()].astype(np.int64, copy=False)
        except OSError as exc:
            raise self._error(f"cannot be read: {exc}", name) from exc
        return labels

    def _check_features(self, ds, name, num_samples, num_epochs, num_features=None):
        if ds.ndim != 3:
            raise self._error(f"must be 3-D (E, N, P), has shape {ds.shape}", name)
        if not (np.issubdtype(ds.dtype, np.floating)):
            raise self._error(f"must hold floats, has dtype {ds.dtype}", name)
        e, n, p = ds.shape
        if n != num_samples:
            raise self._error(f"has {n} rows but the labels have {num_samples}", name)
        if e < num_epochs:
            raise self._error(f"has {e} epoch slots but /epoch lists {num_epochs}", name)
        if p < 1:
            raise self._error("has no feature columns (P = 0)", name)
        if num_features is not None and p != num_features:
            raise self._error(f"has P = {p} features but /features has {num_features}", name)
        if p > MAX_FEATURES:
            raise self._error(
                f"declares P = {p} features; the P×P covariance would need "
                f"{8 * p * p / 2**30:.0f} GiB (limit P ≤ {MAX_FEATURES})", name)

    def _validate(self) -> RunInfo:
        f = self._file
        version = f.attrs.get("ncanalyze_format")
        if version is not None:
            try:
                version = int(np.asarray(version).item())
            except (TypeError, ValueError):
                raise self._error(f"attribute ncanalyze_format={version!r} is not an integer", "/")
            if version != FORMAT_VERSION:
                raise self._error(
                    f"unknown ncanalyze_format {version} (this version reads {FORMAT_VERSION})", "/")

        labels = self._read_labels("/labels")
        num_samples = labels.shape[0]
        if num_samples == 0:
            raise self._error("is empty (no samples)", "/labels")

        epoch_ds = self._get("/epoch", required=True)
        if epoch_ds.ndim != 1 or not np.issubdtype(epoch_ds.dtype, np.integer):
            raise self._error(f"must be 1-D integers, has shape {epoch_ds.shape} "
                              f"dtype {epoch_ds.dtype}", "/epoch")
        epochs = epoch_ds[()].astype(np.int64)
        if epochs.size > 1 and np.any(np.diff(epochs) <= 0):
            raise self._error("epoch numbers must be strictly increasing", "/epoch")
        num_epochs = epochs.size

        feats = self._get("/features", required=True)
        self._check_features(feats, "/features", num_samples, num_epochs)
        num_features = feats.shape[2]

        declared = f.attrs.get("num_classes")
        if labels.min() < 0:
            raise self._error(f"has negative labels (min {labels.min()})", "/labels")
        if declared is not None:
            try:
                num_classes = int(np.asarray(declared).item())
            except (TypeError, ValueError):
                raise self._error(f"attribute num_classes={declared!r} is not an integer", "/")
            if labels.max() >= num_classes:
                raise self._error(
                    f"has label {labels.max()} ≥ num_classes = {num_classes}", "/labels")
        else:
            num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise self._error(f"C = {num_classes}: at least 2 classes are needed", "/labels")
        if num_classes > MAX_CLASSES:
            raise self._error(f"C = {num_classes} classes is above the limit {MAX_CLASSES}", "/")
        counts = np.bincount(labels, minlength=num_classes)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            shown = ", ".join(str(c) for c in empty[:10]) + (" …" if empty.size > 10 else "")
            raise self._error(f"class(es) {shown} have no samples (C = {num_classes})", "/labels")
        self._labels_cache = {"/labels": labels}

        weight = self._get("/weight", required=False)
        if weight is not None:
            if weight.ndim != 3 or weight.shape[0] < num_epochs:
                raise self._error(f"must be (E, C, P) with E ≥ {num_epochs}, has {weight.shape}",
                                  "/weight")
            if weight.shape[1] != num_classes:
                raise self._error(f"has {weight.shape[1]} rows but C = {num_classes}", "/weight")
            if weight.shape[2] != num_features:
                raise self._error(f"has P = {weight.shape[2]} but /features has P = "
                                  f"{num_features}", "/weight")
            if not np.issubdtype(weight.dtype, np.floating):
                raise self._error(f"must hold floats, has dtype {weight.dtype}", "/weight")
        bias = self._get("/bias", required=False)
        if bias is not None:
            if weight is None:
                raise self._error("is present without /weight", "/bias")
            if bias.ndim != 2 or bias.shape[0] < num_epochs or bias.shape[1] != num_classes:
                raise self._error(f"must be (E, C) = (≥{num_epochs}, {num_classes}), "
                                  f"has {bias.shape}", "/bias")
            if not np.issubdtype(bias.dtype, np.floating):
                raise self._error(f"must hold floats, has dtype {bias.dtype}", "/bias")

        scalars = []
        if "scalars" in f:
            for name in f["scalars"]:
                ds = self._get(f"/scalars/{name}", required=True)
                if ds.ndim == 1 and ds.shape[0] >= num_epochs and (
                        np.issubdtype(ds.dtype, np.number) or ds.dtype == bool):
                    scalars.append(name)

        layers = {}
        if "layers" in f:
            for name in f["layers"]:
                path = f"/layers/{name}"
                ds = self._get(path, required=True)
                self._check_features(ds, path, num_samples, num_epochs)
                layers[name] = Source("layer", name, path, "/labels", num_samples, ds.shape[2])
        splits = {}
        if "splits" in f:
            for name in f["splits"]:
                lpath, fpath = f"/splits/{name}/labels", f"/splits/{name}/features"
                slabels = self._read_labels(lpath)
                if slabels.size and (slabels.min() < 0 or slabels.max() >= num_classes):
                    raise self._error(f"has labels outside 0..{num_classes - 1}", lpath)
                ds = self._get(fpath, required=True)
                self._check_features(ds, fpath, slabels.shape[0], num_epochs, num_features)
                self._labels_cache[lpath] = slabels
                splits[name] = Source("split", name, fpath, lpath, slabels.shape[0], num_features)

        wd = f.attrs.get("weight_decay")
        loss = f.attrs.get("loss")
        if isinstance(loss, bytes):
            loss = loss.decode(errors="replace")
        return RunInfo(
            path=self.path,
            num_classes=num_classes,
            num_samples=num_samples,
            num_features=num_features,
            epochs=epochs,
            features_dtype=feats.dtype,
            has_weight=weight is not None,
            has_bias=bias is not None,
            weight_decay=None if wd is None else float(np.asarray(wd).item()),
            loss=None if loss is None else str(loss),
            format_version=version,
            scalars=scalars,
            layers=layers,
            splits=splits,
        )

    # ------------------------------------------------------------------ access
    @property
    def epochs(self) -> np.ndarray:
        """Epoch numbers of the complete slots, shape ``(E,)``."""
        return self.info.epochs

    @property
    def train(self) -> Source:
        """The training features ``/features`` as a :class:`Source`."""
        i = self.info
        return Source("train", "train", "/features", "/labels", i.num_samples, i.num_features)

    def labels(self, source: Source | None = None) -> np.ndarray:
        """Labels of ``source`` (default: the training split), shape ``(n_samples,)``."""
        path = "/labels" if source is None else source.labels_path
        return self._labels_cache[path]

    def class_counts(self) -> np.ndarray:
        """Samples per class of the training split, shape ``(n_classes,)``."""
        return np.bincount(self.labels(), minlength=self.info.num_classes)

    def slot(self, epoch: int) -> int:
        """Index along the epoch axis of epoch number ``epoch``."""
        idx = np.flatnonzero(self.info.epochs == epoch)
        if idx.size == 0:
            raise self._error(f"epoch {epoch} is not in the file "
                              f"(has {_describe_epochs(self.info.epochs)})", "/epoch")
        return int(idx[0])

    def _read(self, path: str, sel, epoch: int):
        try:
            data = self._file[path][sel]
        except (OSError, ValueError, RuntimeError) as exc:
            raise self._error(f"cannot be read: {exc}", path, epoch) from exc
        return data

    def _finite(self, arr: np.ndarray, path: str, epoch: int, what: str) -> np.ndarray:
        bad = ~np.isfinite(arr)
        if bad.any():
            n = int(bad.any(axis=-1).sum()) if arr.ndim > 1 else int(bad.sum())
            raise self._error(f"{n} {what} contain NaN or Inf", path, epoch)
        return arr

    def weight(self, epoch: int) -> np.ndarray | None:
        """Classifier W of ``epoch``, shape ``(n_classes, n_features)``, or ``None``."""
        if not self.info.has_weight:
            return None
        w = self._read("/weight", self.slot(epoch), epoch)
        return self._finite(w, "/weight", epoch, "row(s)")

    def bias(self, epoch: int) -> np.ndarray | None:
        """Classifier bias b of ``epoch``, shape ``(n_classes,)``, or ``None``."""
        if not self.info.has_bias:
            return None
        b = self._read("/bias", self.slot(epoch), epoch)
        return self._finite(b, "/bias", epoch, "entries")

    def scalars(self, epoch: int) -> dict[str, float]:
        """The ``/scalars/<name>`` values of ``epoch``."""
        slot = self.slot(epoch)
        out = {}
        for name in self.info.scalars:
            value = float(self._file[f"/scalars/{name}"][slot])
            out[name] = value if math.isfinite(value) else None
        return out

    def chunk_rows(self, source: Source | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
        """Rows per read: about ``chunk_bytes``, rounded to the dataset's HDF5 chunk rows."""
        source = source or self.train
        ds = self._file[source.path]
        row_bytes = max(1, ds.shape[2] * ds.dtype.itemsize)
        rows = max(1, chunk_bytes // row_bytes)
        if ds.chunks is not None:
            crow = ds.chunks[1]
            rows = max(crow, (rows // crow) * crow)
        return int(min(rows, max(1, ds.shape[1])))

    def iter_chunks(self, epoch: int, source: Source | None = None, *, rows: int | None = None,
                    check_finite: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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

        Yields
        ------
        features : ndarray, shape (n_rows, n_features)
            In the file's dtype.
        labels : ndarray, shape (n_rows,)
        """
        source = source or self.train
        slot = self.slot(epoch)
        labels = self.labels(source)
        rows = rows or self.chunk_rows(source)
        n = source.num_samples
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            chunk = self._read(source.path, np.s_[slot, start:stop, :], epoch)
            if check_finite and not np.isfinite(chunk).all():
                bad = int((~np.isfinite(chunk)).any(axis=1).sum())
                raise self._error(f"{bad} row(s) in rows {start}..{stop - 1} contain NaN or Inf",
                                  source.path, epoch)
            yield chunk, labels[start:stop]


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
        The file is missing, not HDF5, damaged or does not follow SPEC §1.
    """
    return Run(path, allow_external=allow_external)
