"""``RunWriter.add_statistics``: one epoch of a statistics run as checked arrays.

The recorder's objects (:class:`~ncanalyze.core.stats.ClassStats`,
:class:`~ncanalyze.core.decisions.DecisionCounts`, duck-typed so that ``io`` does not import
``core``) or plain mappings become full-C host arrays by HDF5 path, checked with the reader's
own rules (:mod:`ncanalyze.io.statistics`); a broken rule is a ``UsageError`` before anything
is written.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..backend import to_numpy
from ..errors import UsageError
from .rules import check_member_name
from .statistics import (DECISIONS, STATISTICS, StatisticsError, check_decisions,
                         check_statistics, feature_dtype_name)


class StatisticsWriting:
    """The statistics-run half of :class:`~ncanalyze.io.writer.RunWriter` (its base class):
    the epoch is built and checked here, then appended by the writer's own crash-safe
    ``_commit``."""

    def add_statistics(self, epoch: int, stats, decisions, weight=None, bias=None, *,
                       layers: Mapping[str, Any] | None = None,
                       splits: Mapping[str, tuple] | None = None, feature_dtype=None,
                       **scalars: float) -> None:
        """Append one epoch of a statistics run (``RunWriter(..., statistics=True)``).

        Parameters
        ----------
        epoch : int
            Epoch number, larger than the previous one.
        stats : ClassStats or mapping
            The training data's statistics: a :class:`~ncanalyze.core.stats.ClassStats`
            (rows for the classes in ``class_ids``, on any device) or a mapping of full-C
            arrays ``counts`` (C,), ``means`` (C, P), ``within_scatter`` (P, P) = N·Σ_W,
            ``class_scatter`` (C,). Classes without samples are written as count 0, zero rows.
        decisions : DecisionCounts or mapping
            The decision pass over the same samples with this epoch's final training class
            means (:class:`~ncanalyze.core.decisions.DecisionCounts`, or a mapping with
            ``ncc_correct`` and, with ``weight``, ``classifier_correct``, ``ncc_mismatch``).
        weight : array_like, shape (n_classes, n_features), optional
        bias : array_like, shape (n_classes,), optional
        layers : mapping of str to ClassStats, optional
            Statistics of earlier layers over the same samples (no decisions).
        splits : mapping of str to (ClassStats, DecisionCounts), optional
            Each split declared in the constructor; its NCC decisions use the TRAINING means.
        feature_dtype : str, dtype or mapping, optional
            The precision the features had (``"float16"``, ``"bfloat16"``, ``"float32"``,
            ``"float64"``, or a NumPy / torch dtype): one for every source, or a mapping from
            ``"train"``, ``"layers/<name>"``, ``"splits/<name>"``. Required at the first
            call; later calls may omit it or must repeat it.
        **scalars : float
            Per-epoch scalars, as in :meth:`add_epoch`.

        Raises
        ------
        UsageError
            Any rule of docs/FORMAT.md broken (shapes against C, counts, finite values, a
            symmetric Σ_W, non-negative sums of squares, decisions that fit the counts),
            before anything is written: the rules are the reader's (io/statistics.py).
        """
        if not self.statistics:
            raise UsageError("add_statistics needs RunWriter(..., statistics=True)")
        epoch = self._next(epoch)
        arrays, dtypes = statistics_epoch(self, stats, decisions, weight, bias, layers or {},
                                          splits or {}, feature_dtype)
        scalar_values = self._scalar_values(scalars)
        first = self._group_dtypes is None
        self._group_dtypes = dtypes  # written as attributes when the layout is built
        try:
            self._commit(epoch, arrays, scalar_values)
        except BaseException:
            if first:
                self._group_dtypes = None
            raise
        for path, arr in arrays.items():
            if path.endswith("/counts") and path not in self._first_counts:
                self._first_counts[path] = arr


def statistics_epoch(writer, stats, decisions, weight, bias, layers: Mapping[str, Any],
                     splits: Mapping[str, tuple], feature_dtype
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays of one :meth:`~ncanalyze.io.writer.RunWriter.add_statistics` call.

    Returns
    -------
    arrays : dict of str to ndarray
        By HDF5 path (``statistics/means``, ``layers/<name>/counts``, ``weight``, …).
    dtypes : dict of str to str
        ``feature_dtype`` by source group.
    """
    c = writer.num_classes
    with_clf = weight is not None
    if bias is not None and not with_clf:
        raise UsageError("bias without weight")
    dtypes = _feature_dtypes(writer, feature_dtype, layers, splits)
    train_counts = None if writer.labels is None else np.bincount(writer.labels, minlength=c)
    arrays = _source(writer, "statistics", stats, decisions, with_clf, train_counts,
                     "the labels")
    counts = arrays["statistics/counts"]
    p = arrays["statistics/means"].shape[1]
    for name, layer in layers.items():
        try:
            check_member_name("layer", name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        arrays.update(_source(writer, f"layers/{name}", layer, None, with_clf, counts,
                              "the training data's counts"))
    for name, pair in splits.items():
        if name not in writer.splits:
            raise UsageError(f"split {name!r} was not declared in RunWriter(splits=...)")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise UsageError(f"split {name!r}: pass (stats, decisions)")
        labels = writer.splits[name]
        expected = None if labels is None else np.bincount(labels, minlength=c)
        part = _source(writer, f"splits/{name}", pair[0], pair[1], with_clf, expected,
                       f"split {name!r} labels")
        if part[f"splits/{name}/means"].shape[1] != p:
            raise UsageError(f"split {name!r}: P = {part[f'splits/{name}/means'].shape[1]} "
                             f"but the training statistics have P = {p}")
        arrays.update(part)
    if with_clf:
        arrays["weight"] = to_numpy(weight)
        if arrays["weight"].shape != (c, p):
            raise UsageError(f"weight must have shape ({c}, {p}), got {arrays['weight'].shape}")
    if bias is not None:
        arrays["bias"] = to_numpy(bias)
        if arrays["bias"].shape != (c,):
            raise UsageError(f"bias must have shape ({c},), got {arrays['bias'].shape}")
    return arrays, dtypes


def _feature_dtypes(writer, value, layers: Mapping, splits: Mapping) -> dict[str, str]:
    """``feature_dtype`` as {source group: name}; the first epoch fixes it."""
    groups = {"train": "statistics", **{f"layers/{n}": f"layers/{n}" for n in layers},
              **{f"splits/{n}": f"splits/{n}" for n in splits}}
    first = writer._group_dtypes
    if value is None:
        if first is None:
            raise UsageError("feature_dtype (the precision the features had: float16, "
                             "bfloat16, float32 or float64) is required at the first "
                             "add_statistics")
        return first
    given = value if isinstance(value, Mapping) else {key: value for key in groups}
    out = {}
    for key, group in groups.items():
        if key not in given:
            raise UsageError(f"feature_dtype has no entry for {key!r}")
        try:
            out[group] = feature_dtype_name(given[key])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if first is not None and out != first:
        raise UsageError(f"feature_dtype {out} differs from the first epoch's {first}")
    return out


def _source(writer, group: str, stats, decisions, with_clf: bool, expected,
            what: str) -> dict[str, np.ndarray]:
    """One source's checked arrays by HDF5 path."""
    if expected is None:
        expected, what = writer._first_counts.get(f"{group}/counts"), "the first epoch's"
    try:
        counts, means, ws, cs = full_statistics(stats, writer.num_classes)
        check_statistics(counts, means, ws, cs, num_classes=writer.num_classes,
                         expected=expected, expected_what=what)
        out = dict(zip((f"{group}/{k}" for k in STATISTICS), (counts, means, ws, cs)))
        if group.startswith("layers/"):
            return out
        if decisions is None:
            raise StatisticsError("ncc_correct", "decisions are required (the decision pass "
                                                 "with the training means)")
        values = decision_values(decisions, with_clf)
        total = values.pop("total", int(counts.sum()))
        if total != int(counts.sum()):
            raise StatisticsError("ncc_correct", f"the decisions count {total} samples, the "
                                                 f"statistics {int(counts.sum())}")
        check_decisions(values, total, with_clf)
    except StatisticsError as exc:
        raise UsageError(f"{group}/{exc.member}: {exc}") from None
    out.update({f"{group}/{k}": np.asarray(v, dtype=np.int64) for k, v in values.items()})
    return out


def full_statistics(stats, num_classes: int) -> tuple[np.ndarray, ...]:
    """``(counts, means, within_scatter, class_scatter)`` over all C classes, host NumPy.

    ``stats`` is a :class:`~ncanalyze.core.stats.ClassStats` (duck-typed: rows for the
    classes in ``class_ids``, on any device) or a mapping of full-C arrays named as
    :data:`STATISTICS` (passed on as given, for :func:`check_statistics` to judge). Absent
    classes get count 0 and zero rows.
    """
    if isinstance(stats, Mapping):
        counts, means, ws, cs = (np.asarray(to_numpy(stats[k])) for k in STATISTICS)
        return (_whole(counts), means.astype(np.float64, copy=False),
                ws.astype(np.float64, copy=False), cs.astype(np.float64, copy=False))
    counts, means, ws, cs = (np.asarray(to_numpy(getattr(stats, k))) for k in STATISTICS)
    ids = getattr(stats, "class_ids", None)
    ids = np.arange(counts.shape[0]) if ids is None else np.asarray(ids)
    if counts.ndim != 1 or means.ndim != 2 or means.shape[0] != counts.shape[0] or (
            ids.shape != counts.shape or cs.shape != counts.shape):
        raise StatisticsError("counts", f"counts {counts.shape}, means {means.shape}, "
                                        f"class_scatter {cs.shape} and class ids {ids.shape} "
                                        "disagree")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise StatisticsError("counts", f"class ids must lie in 0..{num_classes - 1}")
    out_counts = np.zeros(num_classes, dtype=np.int64)
    out_means = np.zeros((num_classes, means.shape[1]))
    out_cs = np.zeros(num_classes)
    out_counts[ids] = _whole(counts)
    out_means[ids] = means
    out_cs[ids] = cs
    return out_counts, out_means, ws.astype(np.float64, copy=False), out_cs


def _whole(counts: np.ndarray) -> np.ndarray:
    """Counts as int64 (ClassStats holds them as float64); fractions are refused."""
    if np.issubdtype(counts.dtype, np.integer):
        return counts.astype(np.int64, copy=False)
    if not np.issubdtype(counts.dtype, np.floating) or not np.all(np.isfinite(counts)) or \
            np.any(counts != np.round(counts)):
        raise StatisticsError("counts", "must be whole numbers")
    return counts.astype(np.int64)


def decision_values(decisions, with_classifier: bool) -> dict[str, int]:
    """The stored counts of a :class:`~ncanalyze.core.decisions.DecisionCounts` (duck-typed)
    or of a mapping named as :data:`DECISIONS`, plus ``total`` when it is given."""
    if isinstance(decisions, dict):
        values = {k: decisions[k] for k in (*DECISIONS, "total") if k in decisions}
    else:
        values = {"ncc_correct": decisions.ncc_correct, "total": decisions.total}
        if getattr(decisions, "with_classifier", False):
            values.update(classifier_correct=decisions.classifier_correct,
                          ncc_mismatch=decisions.mismatch)
    if not with_classifier:
        values.pop("classifier_correct", None)
        values.pop("ncc_mismatch", None)
    return {k: int(v) for k, v in values.items()}

