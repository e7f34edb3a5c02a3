"""Statistics runs (docs/FORMAT.md, "Statistics runs"): their layout, rules and validation.

A statistics run holds, per recorded epoch and per source (the training data, each layer,
each split), the sufficient statistics of docs/METRICS.md ("Statistics") instead of the
per-sample features: class counts n_c, class means μ_c, N·Σ_W, the per-class sums
Σ_{y_i=c}‖h_i − μ_c‖², and the decision-pass counts (accuracy, NCC accuracy, NC4) computed
with the epoch's final training class means.

The per-epoch rules (:func:`check_statistics`, :func:`check_decisions`) raise
:class:`StatisticsError` naming the member at fault: the reader reports it as ``InputError``
(file, dataset, epoch), :class:`~ncanalyze.io.writer.RunWriter` as ``UsageError`` before
anything is written. :func:`validate_statistics` checks the layout when a file is opened
(shapes, dtypes, the ``feature_dtype`` attributes, the first epoch's counts); the values of
an epoch are checked when it is read, as a features run's NaN rows are.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from .rules import magnitude_problem, statistics_beyond_magnitude
from .h5 import H5_ERRORS, MAX_FEATURES, gib
from .info import RunInfo, Source

#: The training data's statistics group (a layer's is ``/layers/<name>``, a split's
#: ``/splits/<name>``).
TRAIN_GROUP = "/statistics"
#: Per-epoch statistics of every source: (E, C) int, (E, C, P) f8, (E, P, P) f8, (E, C) f8.
STATISTICS = ("counts", "means", "within_scatter", "class_scatter")
#: Decision-pass counts (E,) of the training data and of each split; the last two only in a
#: run with ``/weight``.
DECISIONS = ("ncc_correct", "classifier_correct", "ncc_mismatch")
#: Precisions the ``feature_dtype`` attribute may name.
FEATURE_DTYPES = ("float16", "bfloat16", "float32", "float64")
#: Largest |Σ_W − Σ_Wᵀ| allowed, relative to the largest diagonal entry (sums reduced in a
#: different order per entry, e.g. across devices, differ by rounding; the reader symmetrises).
SYMMETRY_RTOL = 1e-9
#: tr(N·Σ_W) and Σ_c Σ_{y_i=c}‖h_i − μ_c‖² are one sum computed two ways; they must agree to
#: this relative tolerance (float32 products of the recorder differ by rounding), plus
#: ``TRACE_ATOL`` times Σ_c n_c‖μ_c‖² for sums that are rounding noise (total collapse).
TRACE_RTOL = 1e-4
TRACE_ATOL = 1e-12


class StatisticsError(ValueError):
    """A statistics rule broken; ``member`` names the dataset (``"means"``, …)."""

    def __init__(self, member: str, message: str):
        self.member = member
        super().__init__(message)


@dataclass
class StoredStatistics:
    """One source's statistics of one epoch, over all C classes (host NumPy).

    Attributes
    ----------
    counts : ndarray of int64, shape (C,)
        n_c; 0 marks a class without samples (its rows below are 0).
    means : ndarray of float64, shape (C, P)
    within_scatter : ndarray of float64, shape (P, P)
        N·Σ_W, symmetric.
    class_scatter : ndarray of float64, shape (C,)
        Σ_{y_i=c}‖h_i − μ_c‖².
    decisions : dict of str to int, or None
        ``total`` and the members of :data:`DECISIONS` present (None for a layer).
    feature_dtype : str
        One of :data:`FEATURE_DTYPES`.
    """

    counts: np.ndarray
    means: np.ndarray
    within_scatter: np.ndarray
    class_scatter: np.ndarray
    decisions: dict[str, int] | None
    feature_dtype: str

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())


def feature_dtype_name(value) -> str:
    """The precision ``value`` names (a string, NumPy or torch dtype) as one of
    :data:`FEATURE_DTYPES`; ``ValueError`` otherwise."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        text = value
    else:
        try:
            text = np.dtype(value).name  # NumPy dtypes and types (np.float32)
        except TypeError:
            text = str(value).removeprefix("torch.")  # torch.bfloat16 -> "bfloat16"
    if text not in FEATURE_DTYPES:
        raise ValueError(f"feature_dtype {value!r} must name one of {', '.join(FEATURE_DTYPES)}")
    return text


def check_statistics(counts: np.ndarray, means: np.ndarray, within_scatter: np.ndarray,
                     class_scatter: np.ndarray, *, num_classes: int,
                     expected: np.ndarray | None = None, expected_what: str = "") -> None:
    """Check one source's statistics of one epoch (host arrays, full C rows).

    Parameters
    ----------
    counts : ndarray, shape (C,)
    means : ndarray, shape (C, P)
    within_scatter : ndarray, shape (P, P)
    class_scatter : ndarray, shape (C,)
    num_classes : int
    expected : ndarray, shape (C,), optional
        The counts these must equal (the labels' counts, the first epoch's, the training
        data's for a layer), described by ``expected_what``.

    Raises
    ------
    StatisticsError
    """
    c = num_classes
    if counts.shape != (c,):
        raise StatisticsError("counts", f"must have shape ({c},) (C = {c}), has {counts.shape}")
    if means.ndim != 2 or means.shape[0] != c or means.shape[1] < 1:
        raise StatisticsError("means", f"must have shape ({c}, P), has {means.shape}")
    p = means.shape[1]
    if within_scatter.shape != (p, p):
        raise StatisticsError("within_scatter", f"must have shape ({p}, {p}) (P = {p}), has "
                                                f"{within_scatter.shape}")
    if class_scatter.shape != (c,):
        raise StatisticsError("class_scatter", f"must have shape ({c},), has "
                                               f"{class_scatter.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        raise StatisticsError("counts", f"must hold integers, has dtype {counts.dtype}")
    if counts.min() < 0:
        bad = int(np.flatnonzero(counts < 0)[0])
        raise StatisticsError("counts", f"class {bad} has a negative count {counts[bad]}")
    if counts.sum() < 1:
        raise StatisticsError("counts", "every class count is 0 (no samples)")
    if expected is not None and not np.array_equal(counts, expected):
        diff = np.flatnonzero(counts != expected)
        k = int(diff[0])
        raise StatisticsError("counts", f"differ from {expected_what} in {diff.size} class(es) "
                                        f"(class {k}: {counts[k]} vs {expected[k]})")
    for name, arr in (("means", means), ("within_scatter", within_scatter),
                      ("class_scatter", class_scatter)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise StatisticsError(name, f"holds {int(bad.sum())} NaN or Inf value(s)")
    beyond = statistics_beyond_magnitude(means, within_scatter, int(counts.sum()))
    if beyond == "means":
        raise StatisticsError("means", magnitude_problem())
    if beyond:
        raise StatisticsError("within_scatter", "implies a " + magnitude_problem().replace(
            "holds values", "within-class spread", 1))
    if class_scatter.min() < 0:
        k = int(np.argmin(class_scatter))
        raise StatisticsError("class_scatter", f"class {k} has a negative sum of squares "
                                               f"{float(class_scatter[k]):g}")
    absent = counts == 0
    if absent.any():
        rows = absent & (np.any(means != 0, axis=1) | (class_scatter != 0))
        if rows.any():
            k = int(np.flatnonzero(rows)[0])
            member = "class_scatter" if class_scatter[k] != 0 else "means"
            raise StatisticsError(member, f"class {k} has no samples (count 0) but a non-zero "
                                          "row (a class without samples is written as 0)")
    diag = np.diagonal(within_scatter)
    if diag.min() < 0:
        k = int(np.argmin(diag))
        raise StatisticsError("within_scatter", f"diagonal entry {k} is negative "
                                                f"({float(diag[k]):g}): not a sum of squares")
    asym = float(np.max(np.abs(within_scatter - within_scatter.T)))
    if asym > SYMMETRY_RTOL * float(diag.max()):
        raise StatisticsError("within_scatter", f"is not symmetric (max |S − Sᵀ| = {asym:.3g}, "
                                                f"largest diagonal entry {diag.max():.3g})")
    trace, total = float(diag.sum()), float(class_scatter.sum())
    scale = float(np.sum(counts * np.einsum("ij,ij->i", means, means)))
    if abs(trace - total) > TRACE_RTOL * max(trace, total) + TRACE_ATOL * scale:
        raise StatisticsError("class_scatter", f"sums to {total:.17g} but the trace of "
                                               f"within_scatter is {trace:.17g} (both are "
                                               "Σ_i ‖h_i − μ_(y_i)‖²)")


def check_decisions(decisions: dict[str, int], total: int, with_classifier: bool) -> None:
    """Check decision-pass counts over ``total`` samples.

    ``decisions`` holds ``ncc_correct`` and, ``with_classifier``, ``classifier_correct`` and
    ``ncc_mismatch``. Rows where the classifier and NCC agree count in both or neither
    correct count, so |classifier − ncc| ≤ mismatch and classifier + ncc + mismatch ≤ 2·total.

    Raises
    ------
    StatisticsError
    """
    names = DECISIONS if with_classifier else DECISIONS[:1]
    for name in names:
        value = decisions.get(name)
        if value is None:
            raise StatisticsError(name, "is missing" + (" (the run has /weight)"
                                                        if with_classifier else ""))
        if not 0 <= value <= total:
            raise StatisticsError(name, f"is {value}, outside 0..{total} (the samples counted)")
    if with_classifier:
        ncc, clf, mis = (decisions[n] for n in DECISIONS)
        if abs(clf - ncc) > mis or clf + ncc + mis > 2 * total:
            raise StatisticsError("ncc_mismatch", f"{mis} disagreements cannot explain "
                                                  f"{clf} classifier and {ncc} NCC correct "
                                                  f"decisions of {total} samples")


# ---------------------------------------------------------------- the layout, at open
def validate_statistics(v, version: int | None, declared: int | None) -> RunInfo:
    """Check a statistics run's layout (``v``: the schema's validator, the file has
    ``/statistics``); returns its :class:`RunInfo` and records each source's first-epoch
    counts in ``v.counts`` (by group path)."""
    if v._resolve("/features") is not None:
        raise v._error("a run is either a features run or a statistics run: this file has "
                       "/features and /statistics", "/features")
    if version == 1:
        raise v._error("a statistics run (/statistics) needs ncanalyze_format 2, the file "
                       "declares 1", "/")
    counts_ds = v._get(f"{TRAIN_GROUP}/counts", required=True)
    if counts_ds.ndim != 2:
        raise v._error(f"must be (E, C), has shape {counts_ds.shape}", f"{TRAIN_GROUP}/counts")
    num_classes = declared if declared is not None else counts_ds.shape[1]
    if num_classes < 2:
        raise v._error(f"C = {num_classes}: at least 2 classes are needed",
                       f"{TRAIN_GROUP}/counts")
    labels_path = "/labels" if v._resolve("/labels") is not None else None
    if labels_path:
        v.labels[labels_path] = v._read_labels(labels_path, num_classes)
    epochs = v._read_epochs(True)
    ne = epochs.size
    train = _source(v, TRAIN_GROUP, "train", "train", epochs, num_classes, labels_path)
    v._check_size(num_classes, train.num_features, f"{TRAIN_GROUP}/means")
    has_weight, has_bias = v._classifier(ne, num_classes, train.num_features,
                                         f"{TRAIN_GROUP}/means")
    _decisions(v, TRAIN_GROUP, ne, has_weight)
    layers = {}
    for name in v._group_members("/layers"):
        group = f"/layers/{name}"
        layers[name] = _source(v, group, "layer", name, epochs, num_classes, labels_path)
    splits = {}
    for name in v._group_members("/splits"):
        group = f"/splits/{name}"
        lpath = f"{group}/labels" if v._resolve(f"{group}/labels") is not None else None
        if lpath:
            v.labels[lpath] = v._read_labels(lpath, num_classes)
        splits[name] = _source(v, group, "split", name, epochs, num_classes, lpath,
                               train.num_features)
        _decisions(v, group, ne, has_weight)
    return v._info(version, num_classes, epochs, train, has_weight, has_bias,
                   v._scalars(ne), layers, splits, kind="statistics")


def _source(v, group: str, kind: str, name: str, epochs: np.ndarray, num_classes: int,
            labels_path: str | None, num_features: int | None = None) -> Source:
    """Check one source's statistics group; returns its :class:`Source`."""
    g = v._group(group, what="must be a group of statistics in a statistics run (per-sample "
                             "features cannot be mixed with statistics)")
    if g is None:
        raise v._error("required group is missing", group)
    if v._resolve(f"{group}/features") is not None:
        raise v._error("per-sample features in a statistics run (a run is either one or the "
                       "other)", f"{group}/features")
    c, num_epochs, first_epoch = num_classes, epochs.size, int(epochs[0])
    ds = {k: v._get(f"{group}/{k}", required=True) for k in STATISTICS}
    means = ds["means"]
    if means.ndim != 3:
        raise v._error(f"must be (E, C, P), has shape {means.shape}", f"{group}/means")
    p = means.shape[2]
    if p < 1 or p > MAX_FEATURES:
        raise v._error(f"declares P = {p} features (limit 1 ≤ P ≤ {MAX_FEATURES}; the P×P "
                       f"matrix would need {gib(8 * p * p)})", f"{group}/means")
    if num_features is not None and p != num_features:
        raise v._error(f"has P = {p} features but the training statistics have "
                       f"{num_features}", f"{group}/means")
    for key, shape in (("counts", (c,)), ("means", (c, p)), ("within_scatter", (p, p)),
                       ("class_scatter", (c,))):
        d = ds[key]
        if d.ndim != 1 + len(shape) or d.shape[1:] != shape or d.shape[0] < num_epochs:
            raise v._error(f"must be (E, {', '.join(map(str, shape))}) with E ≥ {num_epochs} "
                           f"(C = {c}), has shape {d.shape}", f"{group}/{key}")
        integer = key == "counts"
        if integer and not np.issubdtype(d.dtype, np.integer):
            raise v._error(f"must hold integers, has dtype {d.dtype}", f"{group}/{key}")
        if not integer and not (d.dtype.kind == "f" and d.dtype.itemsize == 8):
            raise v._error(f"must hold float64 (sums of squares lose deep collapse in less), "
                           f"has dtype {d.dtype}", f"{group}/{key}")
    try:
        raw = g.attrs["feature_dtype"] if "feature_dtype" in g.attrs else None
        dtype = None if raw is None else feature_dtype_name(raw)
    except (ValueError, OSError, TypeError) as exc:
        raise v._error(f"attribute {exc}", group) from None
    if dtype is None:
        raise v._error("attribute feature_dtype (the precision the features had) is missing",
                       group)
    try:
        first = np.asarray(ds["counts"][0]).astype(np.int64)  # N: the first epoch's counts
    except H5_ERRORS as exc:
        raise v._error(f"cannot be read: {exc}", f"{group}/counts", first_epoch) from exc
    if first.min() < 0 or first.sum() < 1:
        raise v._error("has negative counts or none above 0", f"{group}/counts", first_epoch)
    if labels_path is not None:
        expected = np.bincount(v.labels[labels_path], minlength=c)
        if not np.array_equal(first, expected):
            k = int(np.flatnonzero(first != expected)[0])
            raise v._error(f"counts differ from {labels_path} (class {k}: {first[k]} vs "
                           f"{expected[k]})", f"{group}/counts", first_epoch)
    v.counts[group] = first
    return Source(kind, name, group, labels_path, int(first.sum()), p, dtype)


def _decisions(v, group: str, num_epochs: int, has_weight: bool) -> None:
    for key in DECISIONS if has_weight else DECISIONS[:1]:
        d = v._get(f"{group}/{key}", required=True)
        if d.ndim != 1 or d.shape[0] < num_epochs or not np.issubdtype(d.dtype, np.integer):
            raise v._error(f"must be (E,) integers with E ≥ {num_epochs}, has shape "
                           f"{d.shape} dtype {d.dtype}", f"{group}/{key}")
