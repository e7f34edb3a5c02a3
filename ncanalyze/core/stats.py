"""The per-epoch sufficient statistics (docs/METRICS.md, "Statistics") and their exact merge.

:class:`ClassStats` holds, for the classes present, the counts n_c, the class means μ_c, the
within-class scatter N Σ_W and the per-class scatter n_c σ_c²; every quantity of
docs/METRICS.md is a function of these (plus W, b and one per-sample pass for the
argmax/argmin counts), so one pass over the features feeds ``metrics``, ``decompose`` and
``snr`` at once. :func:`merge_class_stats` joins the statistics of disjoint row sets (shards,
workers, ranks) exactly. They are computed from features by
:class:`~ncanalyze.core.accumulator.StatsAccumulator` (the numerics are explained there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from ..backend import to_numpy_many
from .precision import coarser

GLOBAL_MEANS = ("samples", "classes")


@dataclass
class ClassStats:
    """Sufficient statistics of one feature matrix and its labels (docs/METRICS.md, "Statistics").

    Only the classes with samples have a row: ``n_classes`` is the number of classes present
    (K in docs/METRICS.md) and :attr:`class_ids` maps rows to class indices.

    Attributes
    ----------
    counts : array, shape (n_classes,)
        n_c > 0, float64.
    means : array, shape (n_classes, n_features)
        Class means μ_c as rows (Mᵀ in the notation of docs/METRICS.md).
    within_scatter : array, shape (n_features, n_features)
        N Σ_W = Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ.
    class_scatter : array, shape (n_classes,)
        Σ_{y_i=c} ‖h_i − μ_c‖² (n_c σ_c² of the CDNV).
    num_samples : int
        N.
    """

    counts: Any
    means: Any
    within_scatter: Any
    class_scatter: Any
    num_samples: int
    #: Class index (``0..C-1``) of each row, host int64, shape (n_classes,); ``None``: row c is
    #: class c. Classes without samples have no row (docs/METRICS.md, "Absent classes").
    classes: np.ndarray | None = None
    #: C, the number of classes of the run, present or not (``None``: ``n_classes``).
    total_classes: int | None = None
    #: The coarsest precision the features were stored or computed in ("float16",
    #: "bfloat16", "float32" or "float64"): it sets the rounding floors of every rank cut-off
    #: (:mod:`ncanalyze.core.precision`). Statistics read from a file carry the recorded one.
    precision: str = "float64"

    @property
    def xp(self):
        return array_namespace(self.means)

    @property
    def num_classes(self) -> int:
        return int(self.means.shape[0])

    @property
    def class_ids(self) -> np.ndarray:
        """Class index of each row, host int64, shape ``(n_classes,)``."""
        return (np.arange(self.num_classes, dtype=np.int64) if self.classes is None
                else self.classes)

    @property
    def num_classes_total(self) -> int:
        """C of the run: the rows here plus the classes without samples."""
        return self.num_classes if self.total_classes is None else int(self.total_classes)

    @property
    def num_features(self) -> int:
        return int(self.means.shape[1])

    @property
    def sigma_w(self):
        """Within-class covariance Σ_W, shape ``(n_features, n_features)``."""
        return self.within_scatter / self.num_samples

    def global_mean(self, kind: str = "samples"):
        """μ_G, shape ``(n_features,)``: sample-weighted (default) or the mean of class means."""
        xp = self.xp
        if kind == "samples":
            return xp.sum(self.counts[:, None] * self.means, axis=0) / self.num_samples
        if kind == "classes":
            return xp.mean(self.means, axis=0)
        raise ValueError(f"global mean must be one of {GLOBAL_MEANS}, got {kind!r}")

    def centred_means(self, kind: str = "samples"):
        """M̄ᵀ = rows μ_c − μ_G, shape ``(n_classes, n_features)``."""
        return self.means - self.global_mean(kind)[None, :]

    def is_finite(self) -> bool:
        """Whether the means, Σ_W and the per-class scatter hold no NaN or Inf."""
        xp = self.xp
        return all(bool(xp.all(xp.isfinite(a)))
                   for a in (self.class_scatter, self.within_scatter, self.means))

    def on_host(self) -> "ClassStats":
        """The same statistics as NumPy arrays, in one device-to-host transfer."""
        counts, means, scatter, class_scatter = to_numpy_many(
            self.counts, self.means, self.within_scatter, self.class_scatter)
        return ClassStats(counts, means, scatter, class_scatter, self.num_samples,
                          classes=self.classes, total_classes=self.total_classes,
                          precision=self.precision)


def merge_class_stats(parts: list[ClassStats]) -> ClassStats:
    """The statistics of the union of disjoint row sets from theirs (host NumPy arrays).

    The parallel merge of Chan, Golub & LeVeque: with μ_c = Σ_k n_kc μ_kc / n_c,
    N Σ_W = Σ_k N_k Σ_W,k + Σ_{k,c} n_kc (μ_kc − μ_c)(μ_kc − μ_c)ᵀ and the per-class scatter
    likewise; only deviations of part means from the merged mean are multiplied, so the merge
    keeps the accuracy of the parts. Equal to the statistics of all rows at once up to
    float64 rounding.

    Parameters
    ----------
    parts : list of ClassStats
        NumPy statistics of disjoint row sets of one epoch (a part may lack some classes).
    """
    total = parts[0].num_classes_total
    ids = np.unique(np.concatenate([p.class_ids for p in parts]))
    k, dim = ids.size, parts[0].num_features
    n = np.zeros(k)
    weighted = np.zeros((k, dim))
    where = []
    for p in parts:
        idx = np.searchsorted(ids, p.class_ids)
        where.append(idx)
        cnt = np.asarray(p.counts, dtype=np.float64)
        np.add.at(n, idx, cnt)
        np.add.at(weighted, idx, cnt[:, None] * np.asarray(p.means))
    means = weighted / n[:, None]
    scatter = np.zeros((dim, dim))
    class_scatter = np.zeros(k)
    for p, idx in zip(parts, where):
        cnt = np.asarray(p.counts, dtype=np.float64)
        dev = np.asarray(p.means) - means[idx]
        scatter += np.asarray(p.within_scatter) + (dev * cnt[:, None]).T @ dev
        np.add.at(class_scatter, idx, np.asarray(p.class_scatter) + cnt * np.sum(dev * dev, 1))
    precision = parts[0].precision
    for p in parts[1:]:
        precision = coarser(precision, p.precision)
    return ClassStats(n, means, (scatter + scatter.T) / 2, class_scatter,
                      int(sum(p.num_samples for p in parts)), classes=ids, total_classes=total,
                      precision=precision)
