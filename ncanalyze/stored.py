"""A statistics run's stored epoch as the objects the formulas take (docs/FORMAT.md,
"Statistics runs"): :class:`~ncanalyze.core.stats.ClassStats` over the classes present and
:class:`~ncanalyze.core.decisions.DecisionCounts` — what the two passes over a features run
produce, so every key is computed by the same code from either kind of run."""

from __future__ import annotations

import numpy as np

from .core.decisions import DecisionCounts
from .core.stats import ClassStats
from .io.statistics import StoredStatistics


def class_stats(stored: StoredStatistics) -> ClassStats:
    """The statistics of the classes with samples (rows of absent classes dropped), host
    NumPy float64, as :meth:`~ncanalyze.core.accumulator.StatsAccumulator.finalize` returns them."""
    ids = np.flatnonzero(stored.counts).astype(np.int64)
    return ClassStats(stored.counts[ids].astype(np.float64), stored.means[ids],
                      stored.within_scatter, stored.class_scatter[ids], stored.num_samples,
                      classes=ids, total_classes=int(stored.counts.shape[0]))


def decision_counts(stored: StoredStatistics) -> DecisionCounts:
    """The stored decision-pass counts (a training or split source)."""
    d = stored.decisions or {}
    with_classifier = "classifier_correct" in d
    return DecisionCounts(d["total"], d["ncc_correct"], d.get("classifier_correct", 0),
                          d.get("ncc_mismatch", 0), with_classifier)
