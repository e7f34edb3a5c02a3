"""The per-sample decision pass: classifier argmax, nearest-class-centre argmin and NC4.

Accuracy, NCC accuracy and the NC4 mismatch need one pass over the rows after the class
means are known. :class:`PredictionAccumulator` counts the decisions chunk by chunk. Both
rules are linear scores ``h·v_c + k_c`` maximised over classes; the classes are scanned in
tiles with a running maximum, so memory is O(rows × tile), never rows × C (docs/METRICS.md,
"Many classes"). Ties go to the lowest class index; a NaN score wins, as in ``argmax``.

The generic path scores in float64 on any array namespace and keeps the tiles on the device.
Its NumPy twin (:func:`_numpy_decide32`) scores float16/float32 features in float32 with a
running top two, and re-scores in float64 every row whose margin is not larger than a
rigorous bound on the float32 error, so the counts are exactly those of the generic path
(tests/core/test_fast_paths.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import host_view, to_numpy, to_numpy_many

#: Default memory for one tile of scores and its temporaries.
DEFAULT_TILE_BYTES = 64 * 2**20
#: Rows scored together (a sub-chunk): keeps a tile of scores wide in classes.
ROW_BLOCK = 4096
#: Up to this many classes in a tile, the NumPy twin finds the top two with a loop over
#: classes (faster than argmax along a short axis).
LOOP_CLASSES = 32
_U = 2.0**-24  # unit roundoff of float32


def tile_classes(tile_bytes: int | None, rows: int, itemsize: int = 8) -> int:
    """Classes per tile of scores for ``rows`` rows (three temporaries of the tile size)."""
    budget = DEFAULT_TILE_BYTES if tile_bytes is None else int(tile_bytes)
    return max(1, budget // (3 * itemsize * max(1, rows)))


@dataclass
class DecisionCounts:
    """Decision counts of a set of rows; counts of disjoint row sets add up (``+``)."""

    total: int = 0
    ncc_correct: int = 0
    classifier_correct: int = 0
    mismatch: int = 0
    with_classifier: bool = False

    def __add__(self, other: "DecisionCounts") -> "DecisionCounts":
        return DecisionCounts(self.total + other.total, self.ncc_correct + other.ncc_correct,
                              self.classifier_correct + other.classifier_correct,
                              self.mismatch + other.mismatch,
                              self.with_classifier or other.with_classifier)

    def values(self) -> dict[str, float]:
        """``ncc_accuracy`` and, with a classifier, ``accuracy`` and ``ncc_mismatch``."""
        out = {"ncc_accuracy": self.ncc_correct / self.total}
        if self.with_classifier:
            out["accuracy"] = self.classifier_correct / self.total
            out["ncc_mismatch"] = self.mismatch / self.total
        return out


class _Rule:
    """argmax_c of h·v_c + k_c, with an accurate float64 form of the scores.

    ``exact(prepare(x), c0, c1)`` gives the float64 scores of the rows ``x`` (float64) for
    classes ``c0:c1``; ``vectors``/``offset`` are the linear form used by the float32 twin.
    """

    def __init__(self, vectors, offset, exact, prepare=lambda x: x):
        self.vectors, self.offset, self.exact, self.prepare = vectors, offset, exact, prepare
        self.size = int(vectors.shape[0])
        self.np32 = None  # the NumPy twin's float32 data, built on first use


def argmax_tiled(rule: _Rule, x, edge: int):
    """Index of the largest float64 score per row of ``x`` (float64), class tile by class
    tile; same result as ``argmax`` over all classes (lowest index on ties, NaN wins)."""
    xp = array_namespace(x)
    n, dev = int(x.shape[0]), device(x)
    best = xp.zeros((n,), dtype=xp.int64, device=dev)
    top = xp.full((n,), -math.inf, dtype=xp.float64, device=dev)
    x = rule.prepare(x)
    for c0 in range(0, rule.size, edge):
        c1 = min(rule.size, c0 + edge)
        s = rule.exact(x, c0, c1)
        j = xp.astype(xp.argmax(s, axis=1), xp.int64)
        v = xp.max(s, axis=1)  # NaN when the row has one, as argmax picks that NaN
        better = (v > top) | (xp.isnan(v) & ~xp.isnan(top))
        best = xp.where(better, j + c0, best)
        top = xp.where(better, v, top)
    return best


class PredictionAccumulator:
    """Count classifier / NCC decisions over row chunks (accuracy, NCC accuracy, NC4).

    Parameters
    ----------
    ncc_means : array, shape (K, n_features)
        Class means of the nearest-class-centre rule (the training means of the classes
        present).
    weight : array, shape (C, n_features), optional
        Any floating dtype (widened to float64 a class tile at a time when scored).
    bias : array, shape (C,), optional
    ncc_classes : ndarray, shape (K,), optional
        Class index of each row of ``ncc_means`` (default ``0..K-1``).
    tile_bytes : int, optional
        Memory for one tile of scores.
    """

    def __init__(self, ncc_means, weight=None, bias=None, *, ncc_classes=None,
                 tile_bytes: int | None = None):
        xp = array_namespace(ncc_means)
        self.xp = xp
        self.tile_bytes = tile_bytes
        # ‖h − μ_c‖² = ‖h − o‖² − 2(h − o)·(μ_c − o) + ‖μ_c − o‖², with o the mean of the
        # class means: centring keeps the decision accurate when the means are far from 0.
        origin = xp.mean(ncc_means, axis=0)
        centred = ncc_means - origin[None, :]
        half_sq = 0.5 * xp.sum(centred * centred, axis=1)
        # score_c = h·m_c − k_c with m_c = μ_c − o and k_c = o·m_c + ½‖m_c‖² (float32 twin).
        self.ncc = _Rule(centred, -xp.matmul(centred, origin) - half_sq,
                         lambda xc, c0, c1: xp.matmul(xc, centred[c0:c1, ...].T)
                         - half_sq[None, c0:c1], prepare=lambda x: x - origin[None, :])
        self.classifier = None
        if weight is not None:
            def logits(x, c0, c1):
                # A float32 classifier is widened one class tile at a time (exactly).
                w = weight[c0:c1, ...]
                out = xp.matmul(x, w.T if w.dtype == x.dtype else xp.astype(w, x.dtype).T)
                if bias is None:
                    return out
                b = bias[c0:c1]
                return out + (b if b.dtype == x.dtype else xp.astype(b, x.dtype))[None, :]

            self.classifier = _Rule(weight, bias, logits)
        dev = device(ncc_means)
        self._classes = None if ncc_classes is None else xp.asarray(
            np.asarray(ncc_classes, dtype=np.int64), device=dev)
        self.weight = weight
        self.total = 0
        zero = xp.zeros((), dtype=xp.int64, device=dev)
        self._ncc_correct = self._classifier_correct = self._mismatch = zero
        self.rescored_rows = 0

    def update(self, features, labels, norm_bounds=None) -> None:
        """Add one chunk: ``features`` (n_rows, n_features), ``labels`` (n_rows,).

        ``norm_bounds`` (NumPy float64, n_rows), optional: upper bounds on the rows' ‖h‖
        (e.g. :meth:`~ncanalyze.core.accumulator.StatsAccumulator.row_norm_bounds`), used by the
        float32 twin instead of computing the norms again.
        """
        xp = self.xp
        n = int(features.shape[0])
        self.total += n
        for r0 in range(0, n, ROW_BLOCK):
            r1 = min(n, r0 + ROW_BLOCK)
            x, y = features[r0:r1, ...], labels[r0:r1]
            bounds = None if norm_bounds is None else norm_bounds[r0:r1]
            ncc = self._decide(self.ncc, x, bounds)
            if self._classes is not None:
                ncc = xp.take(self._classes, ncc)
            self._ncc_correct = self._ncc_correct + xp.sum(xp.astype(ncc == y, xp.int64))
            if self.classifier is not None:
                pred = self._decide(self.classifier, x, bounds)
                self._classifier_correct = self._classifier_correct + xp.sum(
                    xp.astype(pred == y, xp.int64))
                self._mismatch = self._mismatch + xp.sum(xp.astype(pred != ncc, xp.int64))

    def _decide(self, rule: _Rule, x, bounds):
        xp = self.xp
        # float16/32 rows in host memory (NumPy, or torch on the CPU, viewed without a copy):
        # the float32 twin with exact re-scoring, the same decisions as float64 at about a
        # third of the cost (docs/PERFORMANCE.md, "torch on the CPU").
        host = host_view(x) if _is_half_or_single(xp, x) else None
        if host is not None:
            if rule.np32 is None:
                rule.np32 = _Numpy32(to_numpy(rule.vectors), None if rule.offset is None
                                     else to_numpy(rule.offset))
            if rule.np32.usable:
                numpy = is_numpy_namespace(xp)
                lift = None if numpy else (lambda a: xp.asarray(a, device=device(x)))
                best, rescored = _numpy_decide32(rule, np.asarray(host, dtype=np.float32),
                                                 bounds, self.tile_bytes, lift)
                self.rescored_rows += rescored
                return best if numpy else xp.asarray(best, device=device(x))
        edge = tile_classes(self.tile_bytes, int(x.shape[0]))
        return argmax_tiled(rule, xp.astype(x, xp.float64, copy=False), edge)

    def _counts(self) -> tuple[int, int, int]:
        """The three device counters, brought to the host in one transfer."""
        xp = self.xp
        if is_numpy_namespace(xp):
            return int(self._ncc_correct), int(self._classifier_correct), int(self._mismatch)
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

    def counts(self) -> DecisionCounts:
        """The counts so far (plain integers)."""
        ncc, classifier, mismatch = self._counts()
        return DecisionCounts(self.total, ncc, classifier, mismatch, self.weight is not None)

    def values(self) -> dict[str, float]:
        """``ncc_accuracy`` and, with a classifier, ``accuracy`` and ``ncc_mismatch``."""
        return self.counts().values()


class _Numpy32:
    """float32 copies of a rule's v, k and the constants of its error bound."""

    def __init__(self, vectors: np.ndarray, offset: np.ndarray | None):
        with np.errstate(over="ignore"):
            self.v32 = np.ascontiguousarray(vectors, dtype=np.float32)  # (C, P)
            self.k32 = None if offset is None else np.asarray(offset, dtype=np.float32)
        #: False when v or k do not fit in float32: the caller must score in float64.
        self.usable = bool(np.isfinite(self.v32).all() and (
            self.k32 is None or np.isfinite(self.k32).all()))
        p = vectors.shape[1]
        vmax = float(np.sqrt(np.max(np.einsum("ij,ij->i", vectors, vectors))))
        # float32 rounding of v (u per entry) plus the dot product's γ_P, via Cauchy–Schwarz.
        self.dot_factor = (p + 4) * _U * vmax * (1.0 + 1e-3)
        self.kmax = 0.0 if offset is None else float(np.max(np.abs(offset)))


def _is_half_or_single(xp, x) -> bool:
    return str(x.dtype).rsplit(".", 1)[-1] in ("float16", "float32")


def _numpy_decide32(rule: _Rule, x: np.ndarray, norms, tile_bytes, lift=None):
    """NumPy twin of ``argmax_tiled`` for float32 rows ``x``: float32 scores, a running top
    two over class tiles, float64 re-scoring of the rows too close to call.

    Each row's margin (best − second) is compared with twice the bound
    ``(P+4)·u·‖h‖·max_c‖v_c‖ + 2u·(|k|_max + |score|)`` (u = 2⁻²⁴, Cauchy–Schwarz on the dot
    products); a row within it (ties, NaN and inf included) is decided by ``argmax_tiled``.

    ``lift`` turns the float64 rows to re-score into arrays of the rule's library (torch on
    the CPU); ``None`` for NumPy.

    Returns
    -------
    best : ndarray, shape (n_rows,)
    rescored : int
    """
    f = rule.np32
    n = x.shape[0]
    size = rule.size
    with np.errstate(over="ignore", invalid="ignore"):
        if norms is None:
            norms = np.sqrt(np.einsum("ij,ij->i", x, x).astype(np.float64))
        edge = size if size <= LOOP_CLASSES else tile_classes(tile_bytes, n, 4)
        best = np.zeros(n, dtype=np.int64)
        first = np.full(n, -np.inf, dtype=np.float32)
        second = np.full(n, -np.inf, dtype=np.float32)
        rows = np.arange(n)
        for c0 in range(0, size, edge):
            c1 = min(size, c0 + edge)
            s = x @ f.v32[c0:c1].T  # (n, T)
            if f.k32 is not None:
                s += f.k32[c0:c1]
            if c1 - c0 <= LOOP_CLASSES:
                j, f_t, s_t = _numpy_top2_loop(s.T)
            else:
                j = np.argmax(s, axis=1)
                f_t = s[rows, j]
                s[rows, j] = -np.inf
                s_t = np.max(s, axis=1)
            gt = f_t > first  # False for NaN: NaN scores end up in ``second``
            np.copyto(second, np.where(gt, np.maximum(first, s_t), np.maximum(second, f_t)))
            np.copyto(first, f_t, where=gt)
            np.copyto(best, j + c0, where=gt)
        margin = first.astype(np.float64) - second
        smax = np.maximum(np.abs(first), np.abs(second)).astype(np.float64)
        bound = norms * f.dot_factor + 2.0 * _U * (f.kmax + smax + 1e-30)
        unsure = np.flatnonzero(~(margin > 2.0 * bound))  # NaN margins are unsure too
    if unsure.size:
        x64 = x[unsure].astype(np.float64)
        edge = tile_classes(tile_bytes, unsure.size)
        best[unsure] = (argmax_tiled(rule, x64, edge) if lift is None
                        else to_numpy(argmax_tiled(rule, lift(x64), edge)))
    return best, int(unsure.size)


def _numpy_top2_loop(st: np.ndarray):
    """Best index, largest and second-largest value per column of ``st`` (T, n), class by
    class on contiguous rows.

    Ties keep the lowest index and give a zero margin; a NaN score anywhere in a column makes
    its largest value NaN (``np.maximum`` propagates it), hence the row unsure.
    """
    first = st[0].copy()
    second = np.full_like(first, -np.inf)
    best = np.zeros(first.shape, dtype=np.int64)
    gt = np.empty(first.shape, dtype=bool)
    for j in range(1, st.shape[0]):
        row = st[j]
        np.greater(row, first, out=gt)
        # second ← first where row wins, else max(second, row)
        np.maximum(second, row, out=second)
        np.copyto(second, first, where=gt)
        np.copyto(best, j, where=gt)
        np.maximum(first, row, out=first)
    return best, first, second
