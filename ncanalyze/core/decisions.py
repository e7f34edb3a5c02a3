"""The per-sample decision pass: classifier argmax, nearest-class-centre argmin and NC4.

Accuracy, NCC accuracy and the NC4 mismatch need one pass over the rows after the class
means are known. :class:`PredictionAccumulator` counts the decisions chunk by chunk; on NumPy
the scores come from one float32 product and rows too close to call are re-scored in float64
(:class:`_Linear32`), so the counts are exactly those of the float64 rule (docs/METRICS.md,
"Decisions"). Ties go to the lowest class index.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import to_numpy_many


class PredictionAccumulator:
    """Count classifier / NCC decisions over row chunks (accuracy, NCC accuracy, NC4).

    Parameters
    ----------
    ncc_means : array, shape (n_classes, n_features)
        Class means of the nearest-class-centre rule (the training means).
    weight : array, shape (n_classes, n_features), optional
    bias : array, shape (n_classes,), optional

    Ties in argmax/argmin go to the lowest class index.

    Notes
    -----
    The decisions are those of the float64 scores below. On NumPy with float16/float32
    features the scores are first computed in float32 (one ``rows × P × C`` BLAS product);
    every row whose best-vs-second margin is not larger than twice a rigorous bound on the
    float32 error, ``(P+4)·u·‖h‖·max_c‖v_c‖ + 2u·(|const| + |score|)`` (u = 2⁻²⁴, Cauchy–
    Schwarz on the dot products), is scored again in float64. The counts are therefore
    exactly those of the float64 computation. Other backends score in float64 and keep the
    counts on the device until :meth:`values` (no host round trip per chunk).
    """

    def __init__(self, ncc_means, weight=None, bias=None):
        xp = array_namespace(ncc_means)
        self.xp = xp
        # ‖h − μ_c‖² = ‖h − o‖² − 2(h − o)·(μ_c − o) + ‖μ_c − o‖², with o the mean of the
        # class means: centring keeps the decision accurate when the means are far from 0.
        self._origin = xp.mean(ncc_means, axis=0)
        self._centred = ncc_means - self._origin[None, :]
        self._half_sq = 0.5 * xp.sum(self._centred * self._centred, axis=1)
        self.weight = weight
        self.bias = bias
        self.total = 0
        self._numpy = is_numpy_namespace(xp)
        zero = xp.zeros((), dtype=xp.int64, device=device(ncc_means))
        self._ncc_correct = self._classifier_correct = self._mismatch = zero
        self.rescored_rows = 0
        if self._numpy:
            # score_c = h·m_c − k_c with m_c = μ_c − o and k_c = o·m_c + ½‖m_c‖².
            m = np.asarray(self._centred)
            self._ncc32 = _Linear32(m, -(m @ np.asarray(self._origin)) - np.asarray(self._half_sq))
            parts = [self._ncc32.v32]
            if weight is not None:
                self._cls32 = _Linear32(np.asarray(weight),
                                        None if bias is None else np.asarray(bias))
                parts.append(self._cls32.v32)
            # Both rules' float32 scores come from one product h @ [v_ncc | v_w].
            self._v32 = np.ascontiguousarray(np.concatenate(parts, axis=1))
            self._use32 = self._ncc32.usable and (weight is None or self._cls32.usable)

    def _ncc_scores64(self, x):
        xp = self.xp
        return xp.matmul(x - self._origin[None, :], self._centred.T) - self._half_sq[None, :]

    def _logits64(self, x):
        xp = self.xp
        logits = xp.matmul(x, self.weight.T)
        return logits if self.bias is None else logits + self.bias[None, :]

    def update(self, features, labels, norm_bounds=None) -> None:
        """Add one chunk: ``features`` (n_rows, n_features), ``labels`` (n_rows,).

        ``norm_bounds`` (NumPy float64, n_rows), optional: upper bounds on the rows' ‖h‖
        (e.g. :meth:`~ncanalyze.core.stats.StatsAccumulator.row_norm_bounds`), used by the
        float32 pass instead of computing the norms again.
        """
        xp = self.xp
        self.total += int(features.shape[0])
        if self._numpy and features.dtype in (np.float32, np.float16) and self._use32:
            self._numpy_update32(np.asarray(features, dtype=np.float32), np.asarray(labels),
                                 norm_bounds)
            return
        x = xp.astype(features, xp.float64, copy=False)
        ncc = xp.argmax(self._ncc_scores64(x), axis=1)  # argmin distance = argmax of this score
        self._ncc_correct = self._ncc_correct + xp.sum(xp.astype(ncc == labels, xp.int64))
        if self.weight is not None:
            pred = xp.argmax(self._logits64(x), axis=1)
            self._classifier_correct = self._classifier_correct + xp.sum(
                xp.astype(pred == labels, xp.int64))
            self._mismatch = self._mismatch + xp.sum(xp.astype(pred != ncc, xp.int64))

    def _numpy_update32(self, x: np.ndarray, labels: np.ndarray, norms=None) -> None:
        # Huge finite features overflow float32 here; such rows get inf/NaN bounds or scores
        # and are rescored in float64 by ``decide``.
        c = self._ncc32.v32.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            if norms is None:
                norms = np.sqrt(np.einsum("ij,ij->i", x, x).astype(np.float64))
            scores = x @ self._v32  # (rows, 2C); decide takes (C, rows) views
            s_ncc, s_cls = scores[:, :c].T, scores[:, c:].T
        ncc = self._ncc32.decide(s_ncc, norms, lambda rows: np.asarray(
            self._ncc_scores64(x[rows].astype(np.float64))))
        self._ncc_correct = self._ncc_correct + int(np.count_nonzero(ncc == labels))
        self.rescored_rows += self._ncc32.last_rescored
        if self.weight is not None:
            pred = self._cls32.decide(s_cls, norms, lambda rows: np.asarray(
                self._logits64(x[rows].astype(np.float64))))
            self.rescored_rows += self._cls32.last_rescored
            self._classifier_correct = self._classifier_correct + int(
                np.count_nonzero(pred == labels))
            self._mismatch = self._mismatch + int(np.count_nonzero(pred != ncc))

    def _counts(self) -> tuple[int, int, int]:
        """The three device counters, brought to the host in one transfer."""
        if self._numpy:
            return int(self._ncc_correct), int(self._classifier_correct), int(self._mismatch)
        xp = self.xp
        counts = [xp.reshape(xp.asarray(v), (1,)) for v in
                  (self._ncc_correct, self._classifier_correct, self._mismatch)]
        return tuple(int(v) for v in to_numpy_many(xp.concat(counts))[0])

    @property
    def ncc_correct(self) -> int:
        return self._counts()[0]

    @property
    def classifier_correct(self) -> int:
        return self._counts()[1]

    @property
    def mismatch(self) -> int:
        return self._counts()[2]

    def values(self) -> dict[str, float]:
        """``ncc_accuracy`` and, with a classifier, ``accuracy`` and ``ncc_mismatch``."""
        ncc, classifier, mismatch = self._counts()
        out = {"ncc_accuracy": ncc / self.total}
        if self.weight is not None:
            out["accuracy"] = classifier / self.total
            out["ncc_mismatch"] = mismatch / self.total
        return out


class _Linear32:
    """argmax_c (h·v_c + k_c) in float32, with rows too close to call redone in float64.

    Parameters
    ----------
    vectors : ndarray, shape (n_classes, n_features)
        float64 v_c.
    offset : ndarray, shape (n_classes,), optional
        float64 k_c.
    """

    _U = 2.0 ** -24
    #: Up to this many classes, decide finds the top two scores with a loop over classes.
    LOOP_CLASSES = 32

    def __init__(self, vectors: np.ndarray, offset: np.ndarray | None):
        with np.errstate(over="ignore"):
            self.v32 = np.ascontiguousarray(vectors, dtype=np.float32).T  # (P, C)
            self.k32 = None if offset is None else np.asarray(offset, dtype=np.float32)
        #: False when v or k do not fit in float32: the caller must score in float64.
        self.usable = bool(np.isfinite(self.v32).all() and (
            self.k32 is None or np.isfinite(self.k32).all()))
        p = vectors.shape[1]
        vmax = float(np.sqrt(np.max(np.sum(vectors * vectors, axis=1))))
        # float32 rounding of v (u per entry) plus the dot product's γ_P, via Cauchy–Schwarz.
        self.dot_factor = (p + 4) * self._U * vmax * (1.0 + 1e-3)
        self.kmax = 0.0 if offset is None else float(np.max(np.abs(offset)))
        self.last_rescored = 0

    def decide(self, st: np.ndarray, norms: np.ndarray, exact) -> np.ndarray:
        """Class index per row from float32 scores ``st = (h @ v32)ᵀ`` (C, n) and ``norms``
        (n,), upper bounds on ‖h‖ (up to the slack in ``dot_factor``).

        ``exact(rows)`` returns the float64 scores of those rows.
        """
        c = st.shape[0]
        if c == 1:
            self.last_rescored = 0
            return np.zeros(st.shape[1], dtype=np.intp)
        if c <= self.LOOP_CLASSES:
            best, first, second = self._top2_loop(st)
        else:
            s = st.T if self.k32 is None else st.T + self.k32
            best = np.argmax(s, axis=1)
            top2 = np.partition(s, c - 2, axis=1)[:, c - 2:]
            second, first = top2[:, 0], top2[:, 1]
        with np.errstate(invalid="ignore", over="ignore"):  # inf − inf, NaN: rows made unsure
            margin = first.astype(np.float64) - second
            smax = np.maximum(np.abs(first), np.abs(second)).astype(np.float64)
            bound = norms * self.dot_factor + 2.0 * self._U * (self.kmax + smax + 1e-30)
            unsure = np.flatnonzero(~(margin > 2.0 * bound))  # NaN margins are unsure too
        self.last_rescored = int(unsure.size)
        if unsure.size:
            best[unsure] = np.argmax(exact(unsure), axis=1)
        return best

    def _top2_loop(self, st: np.ndarray):
        """Best index, largest and second-largest score per row of ``st + k`` (C, n), class
        by class on contiguous rows (faster than np.partition/argmax along a short axis).

        Ties keep the lowest index and give a zero margin; a NaN score anywhere in a row makes
        its largest score NaN (``np.maximum`` propagates it), hence the row unsure.
        """
        k = self.k32
        first = st[0] + k[0] if k is not None else st[0].copy()
        second = np.full_like(first, -np.inf)
        best = np.zeros(first.shape, dtype=np.intp)
        gt = np.empty(first.shape, dtype=bool)
        for j in range(1, st.shape[0]):
            row = st[j] + k[j] if k is not None else st[j]
            np.greater(row, first, out=gt)
            # second ← first where row wins, else max(second, row)
            np.maximum(second, row, out=second)
            np.copyto(second, first, where=gt)
            np.copyto(best, j, where=gt)
            np.maximum(first, row, out=first)
        return best, first, second
