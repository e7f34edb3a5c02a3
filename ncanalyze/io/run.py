"""Reading run files (SPEC §1): validation, lazy per-epoch access, row-chunked reads.

This package is the only code that touches h5py. Files are always opened read-only (the input
file's bytes are never changed); a file being appended to by a
:class:`~ncanalyze.io.writer.RunWriter` is opened in SWMR-read mode and only complete epochs
(slots whose number ``/epoch`` holds) are seen.

Files are treated as untrusted (SPEC §7): every declared size is checked against the limits
below before anything is allocated, external links / external raw storage / virtual datasets
pointing outside the file are refused unless ``allow_external=True``, and nothing in a file is
evaluated or unpickled (only numeric datasets and plain attributes are read).
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import re
from dataclasses import dataclass, field
from typing import Iterator

import h5py
import numpy as np

from ..errors import InputError

FORMAT_VERSION = 1
#: Fill value of ``/epoch``: a slot still holding it is incomplete (see the writer).
EPOCH_FILL = np.iinfo(np.int64).min
#: Target size of one row chunk read from ``/features`` (bytes, in the file's dtype).
DEFAULT_CHUNK_BYTES = 16 * 2**20
#: Largest P accepted: Σ_W is P×P float64 (4 GiB at this limit).
MAX_FEATURES = 23_000
#: Largest C accepted (memory is O(C·P), bounded by MAX_CLASSES_X_FEATURES and the analysis'
#: memory estimate; this bounds the per-class vectors of length C).
MAX_CLASSES = 2**21
#: Largest C·P accepted: W and the class means are C×P float64 (2 GiB each at this limit).
MAX_CLASSES_X_FEATURES = 2**28
#: Largest N accepted: the labels are held in memory as int64 (1 GiB at this limit).
MAX_SAMPLES = 2**27
#: Largest number of epoch slots accepted.
MAX_EPOCHS = 10_000_000
#: Largest HDF5 chunk of a filtered (compressed) dataset: HDF5 decodes whole chunks.
MAX_FILTERED_CHUNK_BYTES = 256 * 2**20
#: Metadata read attempts of a SWMR reader. HDF5's default (100, sleeping 1 ns, 2 ns, 4 ns, …
#: between attempts) makes opening a file with a bad checksum hang for hours; 24 attempts
#: wait at most ~17 ms per metadata entry, ample for a writer's flush in progress.
SWMR_READ_ATTEMPTS = 24
_FLOATS = (np.float16, np.float32, np.float64)
#: What h5py raises for damaged or malformed files.
_H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


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


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def open_file(path) -> h5py.File:
    """Open an HDF5 file read-only, in SWMR-read mode when possible.

    Raises
    ------
    InputError
        Missing, unreadable, not HDF5, truncated, damaged, or held open by a non-SWMR writer.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("no such file", file=path)
    if os.path.isdir(path):
        raise InputError("is a directory, not a run file", file=path)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied (cannot read the file)", file=path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise InputError(f"cannot be read: {exc}", file=path) from exc
    if not is_hdf5:
        size = os.path.getsize(path)
        what = "is empty (0 bytes)" if size == 0 else "is not an HDF5 file (no HDF5 signature)"
        raise InputError(what, file=path)
    try:
        # SWMR-read sees a consistent file while a RunWriter appends to it.
        return _open_swmr_read(path)
    except _H5_ERRORS:
        pass
    try:
        return h5py.File(path, "r")
    except _H5_ERRORS as exc:
        text = str(exc)
        if "already open for write" in text and _set_read_attempts() is None:
            try:  # a live SWMR writer, on a platform where retries cannot be bounded
                return h5py.File(path, "r", swmr=True)
            except OSError:
                pass
        if "already open for write" in text:
            raise InputError(
                "no complete epoch yet: the file is held open by a writer that is not in SWMR "
                "mode, or such a writer was killed (HDF5: file is already open for write; "
                "`h5clear -s` on a copy clears the flag of a dead writer)", file=path) from exc
        if "truncated" in text:
            raise InputError(f"is truncated (HDF5: {text})", file=path) from exc
        raise InputError(f"cannot be read as HDF5 (damaged?): {text}", file=path) from exc


@functools.lru_cache(maxsize=1)
def _set_read_attempts():
    """``H5Pset_metadata_read_attempts`` of the HDF5 library h5py uses (h5py does not wrap it).

    Returns ``None`` where the library cannot be located (then SWMR-read is not used).
    """
    try:
        with open("/proc/self/maps") as fh:
            paths = {m.group(1) for m in (re.search(r"(/\S*/libhdf5[-.][^/\s]*)$", line.rstrip())
                                          for line in fh) if m}
        paths = [p for p in paths if ".so" in p and "hdf5_hl" not in p]
        if len(paths) != 1:
            return None
        fn = ctypes.CDLL(paths[0]).H5Pset_metadata_read_attempts
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
    return fn


def _open_swmr_read(path: str) -> h5py.File:
    """Open read-only in SWMR-read mode with a bounded number of metadata read attempts."""
    set_attempts = _set_read_attempts()
    if set_attempts is None:
        raise OSError("SWMR-read with bounded retries is unavailable here")
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    if set_attempts(fapl.id, SWMR_READ_ATTEMPTS) < 0:
        raise OSError("H5Pset_metadata_read_attempts failed")
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


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
    """Describe a filter of ``obj`` that cannot be decoded here, or a too-large filtered chunk."""
    dcpl = obj.id.get_create_plist()
    nfilters = dcpl.get_nfilters()
    for i in range(nfilters):
        code, _flags, _values, name = dcpl.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            return (f"needs HDF5 filter {code} ({label or 'unnamed'}), which is not available "
                    "here (install the plugin, e.g. hdf5plugin, or re-write the file with "
                    "h5repack -f NONE)")
    if nfilters and obj.chunks is not None:
        nbytes = math.prod(obj.chunks) * obj.dtype.itemsize
        if nbytes > MAX_FILTERED_CHUNK_BYTES:
            return (f"has compressed chunks of {_gib(nbytes)}, which must be decoded whole "
                    f"(limit {_gib(MAX_FILTERED_CHUNK_BYTES)}; re-chunk with h5repack -l)")
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
        self._datasets: dict[str, h5py.Dataset] = {}
        self._file = open_file(self.path)
        try:
            self.info = self._validate()
        except InputError:
            self._file.close()
            raise
        except _H5_ERRORS as exc:
            self._file.close()
            raise self._error(f"is damaged or malformed: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        """Close the file."""
        self._datasets.clear()
        self._file.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ validation
    def _error(self, message, dataset=None, epoch=None) -> InputError:
        return InputError(message, file=self.path, dataset=dataset, epoch=epoch)

    def _attr(self, name: str):
        """A root attribute as a plain Python value, or ``None`` when absent."""
        try:
            if name not in self._file.attrs:
                return None
            value = self._file.attrs[name]
        except _H5_ERRORS as exc:
            raise self._error(f"attribute {name} cannot be read: {exc}", "/") from exc
        if isinstance(value, bytes):
            return value.decode(errors="replace")
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(())[()]
        return value.item() if isinstance(value, np.generic) else value

    def _int_attr(self, name: str) -> int | None:
        value = self._attr(name)
        if value is None:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, str)):
            raise self._error(f"attribute {name}={value!r} is not an integer", "/")
        try:
            number = float(value)
        except ValueError:
            raise self._error(f"attribute {name}={value!r} is not an integer", "/") from None
        if not math.isfinite(number) or number != int(number):
            raise self._error(f"attribute {name}={value!r} is not an integer", "/")
        return int(number)

    def _link_problem(self, name: str, depth: int = 0) -> str | None:
        """Describe an external link met while resolving ``name`` (each component), or None."""
        if depth > 16:
            return "soft links nest too deeply"
        current = ""
        for part in [p for p in name.split("/") if p]:
            parent, current = current or "/", f"{current}/{part}"
            link = self._file.get(current, getlink=True)
            if link is None:
                return None
            if isinstance(link, h5py.ExternalLink):
                who = "is" if current == name and depth == 0 else f"{current} is"
                return f"{who} an external link to {link.filename}:{link.path}"
            if isinstance(link, h5py.SoftLink):
                target = link.path if link.path.startswith("/") else \
                    f"{parent.rstrip('/')}/{link.path}"
                problem = self._link_problem(target, depth + 1)
                if problem:
                    return problem
        return None

    def _get(self, name: str, *, required: bool) -> h5py.Dataset | None:
        f = self._file
        if not self.allow_external:
            try:
                problem = self._link_problem(name)
            except _H5_ERRORS as exc:
                raise self._error(f"cannot be opened: {exc}", name) from exc
            if problem:
                raise self._error(f"{problem}; refused (pass --allow-external to follow it)",
                                  name)
        try:
            obj = f.get(name)
        except _H5_ERRORS as exc:
            raise self._error(f"cannot be opened: {exc}", name) from exc
        if obj is None:
            if required:
                raise self._error("required dataset is missing", name)
            return None
        if not isinstance(obj, h5py.Dataset):
            raise self._error(f"is a {type(obj).__name__.lower()}, expected a dataset", name)
        if self.allow_external:
            # External raw storage and virtual sources resolve beside the file, not in the
            # current directory (HDF5's default for external storage).
            dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
            dapl.set_efile_prefix(b"${ORIGIN}")
            dapl.set_virtual_prefix(b"${ORIGIN}")
            obj = None  # HDF5 refuses a second open of a dataset under another prefix
            try:
                obj = h5py.Dataset(h5py.h5d.open(f.id, name.encode(), dapl))
            except _H5_ERRORS as exc:
                raise self._error(f"cannot be opened: {exc}", name) from exc
        self._datasets[name] = obj
        try:
            if not self.allow_external:
                problem = _external_problem(obj)
                if problem:
                    raise self._error(f"{problem}; refused (pass --allow-external to read it)",
                                      name)
            problem = _filter_problem(obj)
        except _H5_ERRORS as exc:
            raise self._error(f"cannot be inspected: {exc}", name) from exc
        if problem:
            raise self._error(problem, name)
        return obj

    def _group_members(self, name: str) -> list[str]:
        """Names in group ``name`` (checked like a dataset path); [] when absent."""
        f = self._file
        if not self.allow_external:
            problem = self._link_problem(name)
            if problem:
                raise self._error(f"{problem}; refused (pass --allow-external to follow it)",
                                  name)
        obj = f.get(name)
        if obj is None:
            return []
        if not isinstance(obj, h5py.Group):
            raise self._error("must be a group", name)
        return sorted(obj.keys())

    def _read_labels(self, name: str, num_classes: int | None = None) -> np.ndarray:
        """Read and check a labels dataset; returns int64 labels."""
        ds = self._get(name, required=True)
        if ds.ndim != 1:
            raise self._error(f"must be 1-D (N,), has shape {ds.shape}", name)
        if not np.issubdtype(ds.dtype, np.integer):
            raise self._error(f"must hold integers (class indices), has dtype {ds.dtype}", name)
        n = ds.shape[0]
        if n == 0:
            raise self._error("is empty (no samples)", name)
        if n > MAX_SAMPLES:
            raise self._error(f"declares N = {n} samples; the labels alone would need "
                              f"{_gib(8 * n)} in memory (limit N ≤ {MAX_SAMPLES})", name)
        raw = self._read(name, (), None)
        lo, hi = raw.min(), raw.max()
        if lo < 0:
            raise self._error(f"has negative labels ({int(np.sum(raw < 0))} of them, min {lo})",
                              name)
        if num_classes is not None and hi >= num_classes:
            bad = int(np.sum(raw >= num_classes))
            raise self._error(f"has {bad} label(s) ≥ C = {num_classes} (max {hi}); labels must "
                              f"lie in 0..{num_classes - 1}", name)
        if hi >= MAX_CLASSES:
            raise self._error(f"has label {hi}: C would be above the limit {MAX_CLASSES}", name)
        return raw.astype(np.int64, copy=False)

    def _check_features(self, ds, name, num_samples, num_epochs, num_features=None):
        if ds.ndim != 3:
            raise self._error(f"must be 3-D (E, N, P), has shape {ds.shape}", name)
        if ds.dtype not in _FLOATS:
            raise self._error(f"must hold float16/32/64, has dtype {ds.dtype}", name)
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
                f"{_gib(8 * p * p)} (limit P ≤ {MAX_FEATURES})", name)

    def _read_epochs(self, has_features: bool) -> np.ndarray:
        ds = self._get("/epoch", required=False)
        if ds is None:
            if has_features:
                raise self._error("required dataset is missing (it lists the complete epochs)",
                                  "/epoch")
            raise self._error("no complete epoch yet (no /epoch: a RunWriter that has not "
                              "finished its first add_epoch leaves none)", "/epoch")
        if ds.ndim != 1 or not np.issubdtype(ds.dtype, np.integer):
            raise self._error(f"must be 1-D integers, has shape {ds.shape} dtype {ds.dtype}",
                              "/epoch")
        if ds.shape[0] > MAX_EPOCHS:
            raise self._error(f"declares {ds.shape[0]} epochs (limit {MAX_EPOCHS})", "/epoch")
        raw = self._read("/epoch", (), None)
        if raw.dtype == np.uint64 and raw.size and raw.max() > np.iinfo(np.int64).max:
            raise self._error("has epoch numbers beyond the int64 range", "/epoch")
        epochs = raw.astype(np.int64)
        # A slot still holding the fill value was being written when its writer stopped.
        incomplete = np.flatnonzero(epochs == EPOCH_FILL)
        if incomplete.size:
            epochs = epochs[: incomplete[0]]
        if epochs.size == 0:
            raise self._error("no complete epoch yet (/epoch is empty)", "/epoch")
        if epochs.size > 1 and np.any(np.diff(epochs) <= 0):
            i = int(np.flatnonzero(np.diff(epochs) <= 0)[0])
            raise self._error(f"epoch numbers must be strictly increasing (slot {i + 1} holds "
                              f"{epochs[i + 1]} after {epochs[i]})", "/epoch")
        return epochs

    def _validate(self) -> RunInfo:
        version = self._int_attr("ncanalyze_format")
        if version is not None and version != FORMAT_VERSION:
            raise self._error(f"unknown ncanalyze_format {version} (this version reads "
                              f"format {FORMAT_VERSION}; upgrade ncanalyze?)", "/")
        declared = self._int_attr("num_classes")
        if declared is not None and declared < 2:
            raise self._error(f"num_classes = {declared}: at least 2 classes are needed", "/")
        if declared is not None and declared > MAX_CLASSES:
            raise self._error(f"num_classes = {declared} is above the limit {MAX_CLASSES}", "/")

        labels = self._read_labels("/labels", declared)
        num_samples = labels.shape[0]
        num_classes = declared if declared is not None else int(labels.max()) + 1
        if num_classes < 2:
            raise self._error(f"C = {num_classes}: at least 2 classes are needed (all labels "
                              "are 0)", "/labels")
        # Classes without samples are valid (vocabulary-sized C); the analysis applies the
        # rule (ncanalyze.analysis.absent_classes, --require-all-classes).
        self._labels_cache = {"/labels": labels}

        has_features = self._file.get("/features", getlink=True) is not None
        epochs = self._read_epochs(has_features)
        num_epochs = epochs.size

        feats = self._get("/features", required=True)
        self._check_features(feats, "/features", num_samples, num_epochs)
        num_features = feats.shape[2]
        if num_classes * num_features > MAX_CLASSES_X_FEATURES:
            raise self._error(f"C·P = {num_classes}·{num_features}: the C×P matrices would "
                              f"need {_gib(8 * num_classes * num_features)} each", "/features")

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
            if weight.dtype not in _FLOATS:
                raise self._error(f"must hold float16/32/64, has dtype {weight.dtype}", "/weight")
        bias = self._get("/bias", required=False)
        if bias is not None:
            if weight is None:
                raise self._error("is present without /weight", "/bias")
            if bias.ndim != 2 or bias.shape[0] < num_epochs or bias.shape[1] != num_classes:
                raise self._error(f"must be (E, C) = (≥{num_epochs}, {num_classes}), "
                                  f"has {bias.shape}", "/bias")
            if bias.dtype not in _FLOATS:
                raise self._error(f"must hold float16/32/64, has dtype {bias.dtype}", "/bias")

        scalars = []
        for name in self._group_members("/scalars"):
            try:
                ds = self._get(f"/scalars/{name}", required=True)
            except InputError:
                continue  # an unusable scalar is skipped, not fatal (it is informational)
            if ds.ndim == 1 and ds.shape[0] >= num_epochs and (
                    np.issubdtype(ds.dtype, np.number) or ds.dtype == bool):
                scalars.append(name)

        layers = {}
        for name in self._group_members("/layers"):
            path = f"/layers/{name}"
            ds = self._get(path, required=True)
            self._check_features(ds, path, num_samples, num_epochs)
            layers[name] = Source("layer", name, path, "/labels", num_samples, ds.shape[2])
        splits = {}
        for name in self._group_members("/splits"):
            lpath, fpath = f"/splits/{name}/labels", f"/splits/{name}/features"
            if not isinstance(self._file.get(f"/splits/{name}"), h5py.Group):
                raise self._error("must be a group holding labels and features",
                                  f"/splits/{name}")
            slabels = self._read_labels(lpath, num_classes)
            ds = self._get(fpath, required=True)
            self._check_features(ds, fpath, slabels.shape[0], num_epochs, num_features)
            self._labels_cache[lpath] = slabels
            splits[name] = Source("split", name, fpath, lpath, slabels.shape[0], num_features)

        wd = self._attr("weight_decay")
        if wd is not None:
            try:
                wd = float(wd)
            except (TypeError, ValueError):
                raise self._error(f"attribute weight_decay={wd!r} is not a number", "/") from None
            if not math.isfinite(wd) or wd < 0:
                raise self._error(f"attribute weight_decay={wd!r} must be finite and ≥ 0", "/")
        loss = self._attr("loss")
        return RunInfo(
            path=self.path,
            num_classes=num_classes,
            num_samples=num_samples,
            num_features=num_features,
            epochs=epochs,
            features_dtype=feats.dtype,
            has_weight=weight is not None,
            has_bias=bias is not None,
            weight_decay=wd,
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

    def _read(self, path: str, sel, epoch: int | None):
        try:
            ds = self._datasets.get(path)
            data = (ds if ds is not None else self._file[path])[sel]
        except _H5_ERRORS as exc:
            raise self._error(f"cannot be read: {exc}", path, epoch) from exc
        return data

    def _finite(self, arr: np.ndarray, path: str, epoch: int, what: str) -> np.ndarray:
        bad = ~np.isfinite(arr)
        if bad.any():
            n = int(bad.any(axis=-1).sum()) if arr.ndim > 1 else int(bad.sum())
            raise self._error(f"{n} of {arr.shape[0]} {what} contain NaN or Inf", path, epoch)
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
                raise self._nonfinite_error(epoch, source, start, rows)
            yield chunk, labels[start:stop]

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
        or empty), or does not follow SPEC §1.
    """
    return Run(path, allow_external=allow_external)
