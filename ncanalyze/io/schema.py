"""The run-file format (docs/FORMAT.md): what a file declares, and the rules it must follow.

The rules that concern values a writer chooses are in :mod:`ncanalyze.io.rules` (re-exported
here), what a file declares (:class:`RunInfo`, :class:`Source`) in :mod:`ncanalyze.io.info`,
the statistics-run layout in :mod:`ncanalyze.io.statistics`. :func:`validate` checks a file opened
with :func:`~ncanalyze.io.h5.open_file` without reading bulk data (labels and epoch numbers
are read, they are small) and returns the datasets it opened and checked, so the reader never
re-resolves a path. The module is longer than ~350 lines because it is one concept: the
validation of a file's layout.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..errors import InputError
from .h5 import (H5_ERRORS, MAX_CLASSES_X_FEATURES, MAX_EPOCHS, MAX_FEATURES,
                 MAX_SAMPLES, gib)
from .rules import (check_classes_present, check_labels, check_member_name,  # noqa: F401
                    check_num_classes, check_weight_decay)
from .info import RunInfo, Source
from .trust import (MAX_DECODE_BYTES, Refused, Resolved, check_dataset, chunk_cache_bytes,
                    note_link, resolve)

#: Highest format this version reads and writes: 1 (features runs), 2 (adds statistics runs,
#: docs/FORMAT.md); a features run is still written as format 1.
FORMAT_VERSION = 2
#: Fill value of ``/epoch``: a slot still holding it is incomplete (see the writer).
EPOCH_FILL = np.iinfo(np.int64).min
#: An integer attribute stored as a string: ASCII digits, optional sign.
_DECIMAL = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _is_float(dtype: np.dtype) -> bool:
    """float16/32/64 in either byte order (big-endian files are valid HDF5)."""
    return dtype.kind == "f" and dtype.itemsize in (2, 4, 8)


# The rules on values a writer chooses live in io/rules.py (re-exported here).


@dataclass
class Validated:
    """The result of :func:`validate`.

    Attributes
    ----------
    info : RunInfo
    datasets : dict of str to h5py.Dataset
        Every dataset the reader will read, opened and checked, by HDF5 path.
    labels : dict of str to ndarray
        The int64 labels of the training split and of every extra split, by HDF5 path.
    reads : set of str
        With ``allow_external``: the files outside this one that the reads may open (real
        paths; see :func:`~ncanalyze.io.trust.check_dataset`).
    decode_bytes : int
        The chunk caches of ``datasets``, in all (at most
        :data:`~ncanalyze.io.trust.MAX_DECODE_BYTES`).
    """

    info: RunInfo
    datasets: dict[str, h5py.Dataset]
    labels: dict[str, np.ndarray]
    reads: set[str] = field(default_factory=set)
    decode_bytes: int = 0
    #: A statistics run's first-epoch class counts, by source group (every epoch must match).
    counts: dict[str, np.ndarray] = field(default_factory=dict)


def validate(f: h5py.File, path: str, *, allow_external: bool = False) -> Validated:
    """Check that the open file ``f`` follows the run-file format.

    Parameters
    ----------
    f : h5py.File
        Opened read-only.
    path : str
        The file's path, for messages.
    allow_external : bool
        Follow external links / storage and virtual datasets pointing outside the file.

    Raises
    ------
    InputError
        Naming the file, the dataset and what is wrong.
    """
    v = _Validator(f, path, allow_external)
    try:
        info = v.validate()
    except InputError:
        raise
    except H5_ERRORS as exc:
        raise v._error(f"is damaged or malformed: {type(exc).__name__}: {exc}") from exc
    return Validated(info, v.datasets, v.labels, reads=v.reads, decode_bytes=v.decode_bytes,
                     counts=v.counts)


class _Validator:
    def __init__(self, f: h5py.File, path: str, allow_external: bool):
        self._file = f
        self.path = path
        self.allow_external = allow_external
        self.datasets: dict[str, h5py.Dataset] = {}
        self.labels: dict[str, np.ndarray] = {}
        self.reads: set[str] = set()
        self.decode_bytes = 0
        self.counts: dict[str, np.ndarray] = {}

    def _error(self, message, dataset=None, epoch=None) -> InputError:
        return InputError(message, file=self.path, dataset=dataset, epoch=epoch)

    def _attr(self, name: str):
        """A root attribute as a plain Python value, or ``None`` when absent."""
        try:
            if name not in self._file.attrs:
                return None
            value = self._file.attrs[name]
        except H5_ERRORS as exc:
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
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, str)) or (
                isinstance(value, str) and not _DECIMAL.fullmatch(value)):
            # a string must be plain ASCII digits: float() would take "1e3", "1_0" and "١"
            raise self._error(f"attribute {name}={value!r} is not an integer", "/")
        try:
            number = float(value)
        except ValueError:
            raise self._error(f"attribute {name}={value!r} is not an integer", "/") from None
        if not math.isfinite(number) or number != int(number):
            raise self._error(f"attribute {name}={value!r} is not an integer", "/")
        return int(number)

    def _refused(self, exc: Refused, name: str) -> InputError:
        advice = "; refused (pass --allow-external to follow it)" if exc.external else ""
        error = self._error(f"{exc}{advice}", name)
        error.refused = True  # never skipped, even where an unusable member is
        return error

    def _resolve(self, name: str) -> Resolved | None:
        try:
            where = resolve(self._file, name, allow_external=self.allow_external)
            if where is not None:
                note_link(self._file, where, self.reads)
            return where
        except Refused as exc:
            raise self._refused(exc, name) from None
        except H5_ERRORS as exc:
            raise self._error(f"cannot be opened: {exc}", name) from exc

    def _get(self, name: str, *, required: bool) -> h5py.Dataset | None:
        """The checked dataset ``name`` (see :func:`~ncanalyze.io.trust.check_dataset`)."""
        where = self._resolve(name)
        if where is None:
            if required:
                raise self._error("required dataset is missing", name)
            return None
        try:
            obj = check_dataset(self._file, where, allow_external=self.allow_external,
                                reads=self.reads)
        except Refused as exc:
            raise self._refused(exc, name) from None
        except TypeError as exc:
            raise self._error(str(exc), name) from None
        except H5_ERRORS as exc:
            raise self._error(f"cannot be opened: {exc}", name) from exc
        self.decode_bytes += chunk_cache_bytes(obj) or 0
        if self.decode_bytes > MAX_DECODE_BYTES:
            raise self._refused(Refused(
                f"has compressed chunks: with the datasets read before it, decoding needs "
                f"{gib(self.decode_bytes)} of chunk cache in all (limit "
                f"{gib(MAX_DECODE_BYTES)}; re-chunk with h5repack -l)", external=False), name)
        self.datasets[name] = obj
        return obj

    def _group(self, name: str, *, what: str = "must be a group") -> h5py.Group | None:
        """The group ``name`` (resolved like a dataset path), or None when absent."""
        where = self._resolve(name)
        if where is None:
            return None
        try:
            obj = self._file.get(where.path)
        except H5_ERRORS as exc:
            raise self._error(f"cannot be opened: {exc}", name) from exc
        if not isinstance(obj, h5py.Group):
            raise self._error(what, name)
        return obj

    def _group_members(self, name: str) -> list[str]:
        """Names in group ``name``; [] when absent."""
        group = self._group(name)
        return [] if group is None else sorted(group.keys())

    def _read_all(self, ds: h5py.Dataset, name: str) -> np.ndarray:
        try:
            return ds[()]
        except H5_ERRORS as exc:
            raise self._error(f"cannot be read: {exc}", name) from exc

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
                              f"{gib(8 * n)} in memory (limit N ≤ {MAX_SAMPLES})", name)
        raw = self._read_all(ds, name)
        try:
            check_labels(raw, num_classes)
        except ValueError as exc:
            raise self._error(str(exc), name) from None
        return raw.astype(np.int64, copy=False)

    def _check_features(self, ds, name, num_samples, num_epochs, num_features=None):
        if ds.ndim != 3:
            raise self._error(f"must be 3-D (E, N, P), has shape {ds.shape}", name)
        if not _is_float(ds.dtype):
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
                f"{gib(8 * p * p)} (limit P ≤ {MAX_FEATURES})", name)

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
        raw = self._read_all(ds, "/epoch")
        if raw.dtype == np.uint64 and raw.size and raw.max() > np.iinfo(np.int64).max:
            raise self._error("has epoch numbers beyond the int64 range", "/epoch")
        epochs = raw.astype(np.int64)
        # A slot still holding the fill value was being written when its writer stopped.
        # Only the last slot(s) can be incomplete: the writer fills one slot at a time.
        incomplete = np.flatnonzero(epochs == EPOCH_FILL)
        if incomplete.size:
            first = int(incomplete[0])
            later = np.flatnonzero(epochs[first:] != EPOCH_FILL)
            if later.size:
                j = first + int(later[0])
                raise self._error(f"slot {first} holds the fill value {EPOCH_FILL} (an epoch "
                                  f"not yet written) but slot {j} after it holds epoch "
                                  f"{epochs[j]}", "/epoch")
            epochs = epochs[:first]
        if epochs.size == 0:
            raise self._error("no complete epoch yet (/epoch is empty)", "/epoch")
        if epochs.size > 1 and np.any(np.diff(epochs) <= 0):
            i = int(np.flatnonzero(np.diff(epochs) <= 0)[0])
            raise self._error(f"epoch numbers must be strictly increasing (slot {i + 1} holds "
                              f"{epochs[i + 1]} after {epochs[i]})", "/epoch")
        return epochs

    def validate(self) -> RunInfo:
        """Check the whole layout; returns what the file declares."""
        version = self._int_attr("ncanalyze_format")
        if version is not None and version not in (1, FORMAT_VERSION):
            raise self._error(f"unknown ncanalyze_format {version} (this version reads "
                              f"formats 1 and {FORMAT_VERSION}; upgrade ncanalyze?)", "/")
        declared = self._int_attr("num_classes")
        if declared is not None:
            try:
                check_num_classes(declared)
            except ValueError as exc:
                raise self._error(str(exc), "/") from None
        if self._resolve("/statistics") is not None:
            from .statistics import validate_statistics  # a statistics run (format 2)

            return validate_statistics(self, version, declared)
        if version == FORMAT_VERSION and self._resolve("/labels") is None and \
                self._resolve("/features") is None:
            self._read_epochs(False)  # a statistics writer's header: "no complete epoch yet"

        labels = self._read_labels("/labels", declared)
        num_samples = labels.shape[0]
        num_classes = declared if declared is not None else int(labels.max()) + 1
        if num_classes < 2:
            raise self._error(f"C = {num_classes}: at least 2 classes are needed (all labels "
                              "are 0)", "/labels")
        # Classes without samples are valid (vocabulary-sized C); the analysis applies the
        # rule (ncanalyze.run_checks.absent_classes, --require-all-classes).
        self.labels["/labels"] = labels

        has_features = self._resolve("/features") is not None
        epochs = self._read_epochs(has_features)
        num_epochs = epochs.size

        feats = self._get("/features", required=True)
        self._check_features(feats, "/features", num_samples, num_epochs)
        num_features = feats.shape[2]
        self._check_size(num_classes, num_features, "/features")
        has_weight, has_bias = self._classifier(num_epochs, num_classes, num_features)
        scalars = self._scalars(num_epochs)

        layers = {}
        for name in self._group_members("/layers"):
            path = f"/layers/{name}"
            ds = self._get(path, required=True)
            self._check_features(ds, path, num_samples, num_epochs)
            layers[name] = Source("layer", name, path, "/labels", num_samples, ds.shape[2],
                                  _dtype_name(ds.dtype))
        splits = {}
        for name in self._group_members("/splits"):
            lpath, fpath = f"/splits/{name}/labels", f"/splits/{name}/features"
            if self._group(f"/splits/{name}",
                           what="must be a group holding labels and features") is None:
                raise self._error("must be a group holding labels and features",
                                  f"/splits/{name}")
            slabels = self._read_labels(lpath, num_classes)
            ds = self._get(fpath, required=True)
            self._check_features(ds, fpath, slabels.shape[0], num_epochs, num_features)
            self.labels[lpath] = slabels
            splits[name] = Source("split", name, fpath, lpath, slabels.shape[0], num_features,
                                  _dtype_name(ds.dtype))
        train = Source("train", "train", "/features", "/labels", num_samples, num_features,
                       _dtype_name(feats.dtype))
        return self._info(version, num_classes, epochs, train, has_weight, has_bias, scalars,
                          layers, splits)

    def _check_size(self, num_classes: int, num_features: int, name: str) -> None:
        if num_classes * num_features > MAX_CLASSES_X_FEATURES:
            raise self._error(f"C·P = {num_classes}·{num_features}: the C×P matrices would "
                              f"need {gib(8 * num_classes * num_features)} each", name)

    def _classifier(self, num_epochs: int, num_classes: int, num_features: int,
                    features: str = "/features") -> tuple[bool, bool]:
        """Check ``/weight`` and ``/bias``; return whether each is present."""
        weight = self._get("/weight", required=False)
        if weight is not None:
            if weight.ndim != 3 or weight.shape[0] < num_epochs:
                raise self._error(f"must be (E, C, P) with E ≥ {num_epochs}, has {weight.shape}",
                                  "/weight")
            if weight.shape[1] != num_classes:
                raise self._error(f"has {weight.shape[1]} rows but C = {num_classes}", "/weight")
            if weight.shape[2] != num_features:
                raise self._error(f"has P = {weight.shape[2]} but {features} has P = "
                                  f"{num_features}", "/weight")
            if not _is_float(weight.dtype):
                raise self._error(f"must hold float16/32/64, has dtype {weight.dtype}", "/weight")
        bias = self._get("/bias", required=False)
        if bias is not None:
            if weight is None:
                raise self._error("is present without /weight", "/bias")
            if bias.ndim != 2 or bias.shape[0] < num_epochs or bias.shape[1] != num_classes:
                raise self._error(f"must be (E, C) = (≥{num_epochs}, {num_classes}), "
                                  f"has {bias.shape}", "/bias")
            if not _is_float(bias.dtype):
                raise self._error(f"must hold float16/32/64, has dtype {bias.dtype}", "/bias")
        return weight is not None, bias is not None

    def _scalars(self, num_epochs: int) -> list[str]:
        """The usable ``/scalars/<name>`` (an unusable scalar is skipped, not fatal)."""
        scalars = []
        for name in self._group_members("/scalars"):
            try:
                ds = self._get(f"/scalars/{name}", required=True)
            except InputError as exc:
                if getattr(exc, "refused", False):
                    raise
                continue  # an unusable scalar is skipped, not fatal (it is informational)
            # Real numbers only: a complex scalar has no float value (it is skipped).
            if ds.ndim == 1 and ds.shape[0] >= num_epochs and ds.dtype.kind in "biuf":
                scalars.append(name)
        return scalars

    def _info(self, version, num_classes, epochs, train: Source, has_weight, has_bias,
              scalars, layers, splits, kind: str = "features") -> RunInfo:
        """The :class:`RunInfo`, with the root attributes checked."""
        wd = self._attr("weight_decay")
        if wd is not None:
            try:
                wd = check_weight_decay(wd)
            except ValueError as exc:
                raise self._error(f"attribute {exc}", "/") from None
        loss = self._attr("loss")
        steps_per_epoch = self._int_attr("steps_per_epoch")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise self._error(f"attribute steps_per_epoch={steps_per_epoch} must be ≥ 1", "/")
        return RunInfo(
            path=self.path,
            num_classes=num_classes,
            num_samples=train.num_samples,
            num_features=train.num_features,
            epochs=epochs,
            features_dtype=_numpy_dtype(train.feature_dtype),
            has_weight=has_weight,
            has_bias=has_bias,
            weight_decay=wd,
            loss=None if loss is None else str(loss),
            format_version=version,
            scalars=scalars,
            steps_per_epoch=steps_per_epoch,
            layers=layers,
            splits=splits,
            kind=kind,
            train=train,
        )


def _dtype_name(dtype: np.dtype) -> str:
    """``"float32"`` for ``<f4`` and ``>f4`` alike."""
    return np.dtype(dtype).newbyteorder("=").name


def _numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a stored precision; bfloat16 (not a NumPy type) has float32's size
    and is read as float32 (its precision is in ``Source.feature_dtype``)."""
    return np.dtype("float32" if name == "bfloat16" else name)
