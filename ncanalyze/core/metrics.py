"""The neural-collapse metrics of SPEC §2.2, from :class:`~ncanalyze.core.stats.ClassStats`.

Every formula of the ``metrics`` command is in this file. Conventions (see docs/METRICS.md):
NC1 uses Σ_B^† restricted to the numerical rank of M̄ and is divided by C; μ_G is weighted by
samples unless ``global_mean="classes"``; standard deviations use ddof=1 over classes or over
unordered class pairs; self-duality is squared; the ETF distance of the weights uses W as
stored unless ``center_weights``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import detach, to_numpy, to_numpy_many
from .stats import ClassStats

#: Keys computed from the features alone.
FEATURE_KEYS = (
    "nc1", "nc1_rank", "cdnv", "equinorm_means", "equiangle_means", "maxangle_means",
    "etf_distance_means", "of_distance_means", "ncc_accuracy",
)
#: Keys that need the classifier W (and b when present).
WEIGHT_KEYS = (
    "equinorm_weights", "equiangle_weights", "maxangle_weights", "etf_distance_weights",
    "of_distance_weights", "self_duality", "nc3_etf", "nc3_of", "bias_collapse", "accuracy",
    "ncc_mismatch",
)
#: Output order of the ``metrics`` keys (SPEC §2.2 order).
METRIC_KEYS = (
    "nc1", "nc1_rank", "cdnv", "equinorm_means", "equinorm_weights", "equiangle_means",
    "equiangle_weights", "maxangle_means", "maxangle_weights", "etf_distance_means",
    "etf_distance_weights", "of_distance_means", "of_distance_weights", "self_duality",
    "nc3_etf", "nc3_of", "bias_collapse", "accuracy", "ncc_accuracy", "ncc_mismatch",
)
#: Keys computed for every ``/layers/<name>`` (depth-wise collapse).
LAYER_KEYS = ("nc1", "nc1_rank", "cdnv", "etf_distance_means", "of_distance_means",
              "equinorm_means")


@dataclass
class MetricValues:
    """Values of one epoch: ``values[key]`` is a float, an int or ``None`` (undefined)."""

    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def set(self, key: str, value, undefined_reason: str | None = None) -> None:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            self.values[key] = None
            self.warnings.append(f"{key} is undefined: {undefined_reason or 'not finite'}")
        else:
            self.values[key] = value


def default_rtol(num_features: int, num_classes: int) -> float:
    """rtol of the numerical rank of M̄: ``max(P, C) · ε_float64`` (SPEC §2.1)."""
    return max(num_features, num_classes) * float(np.finfo(np.float64).eps)


def _fro(x) -> float:
    xp = array_namespace(x)
    return float(xp.sqrt(xp.sum(x * x)))


def _pairs_mask(xp, c: int, dev=None):
    idx = xp.arange(c, device=dev)
    return idx[:, None] < idx[None, :]


# ---------------------------------------------------------------------- NC1


def nc1(stats: ClassStats, global_mean: str = "samples", rtol: float | None = None):
    """NC1 = tr(Σ_W Σ_B^†) / C with Σ_B^† restricted to the numerical rank r of M̄.

    With the thin SVD M̄ = U S Vᵀ (P×C) and Σ_B = M̄M̄ᵀ/C, Σ_B^† = C U_r S_r^{-2} U_rᵀ, so
    NC1 = Σ_{j<r} u_jᵀ Σ_W u_j / s_j². No P×P pseudo-inverse is formed.

    Returns
    -------
    nc1 : float or None
    rank : int
        r, the number of singular values of M̄ above ``rtol · s_max``.
    """
    xp = stats.xp
    mbar = stats.centred_means(global_mean).T  # (P, C)
    u, s, _ = xp.linalg.svd(mbar, full_matrices=False)
    s_host = np.asarray(to_numpy(s), dtype=np.float64)
    if s_host.size == 0 or s_host[0] == 0.0:
        return None, 0
    tol = (default_rtol(stats.num_features, stats.num_classes) if rtol is None else rtol)
    # M̄ has at most min(C − 1, P) independent columns (Σ_c n_c μ̄_c = 0, or Σ_c μ̄_c = 0 for
    # the class-mean μ_G): a rounding-level C-th singular value must never enter the inverse.
    rank = min(int(np.sum(s_host > tol * s_host[0])), stats.num_classes - 1,
               stats.num_features)
    ur = u[:, :rank]
    # u_jᵀ Σ_W u_j ≥ 0 since Σ_W is PSD; at exact collapse (Σ_W = 0) rounding can leave
    # ±1e-30, which must not make NC1 negative.
    proj = xp.maximum(xp.sum(ur * xp.matmul(stats.sigma_w, ur), axis=0), 0.0)
    value = float(xp.sum(proj / (s[:rank] ** 2)))
    return value, rank


# ---------------------------------------------------------------------- geometry helpers


def cdnv(stats: ClassStats):
    """Mean over c<c′ of (σ_c² + σ_c′²) / (2‖μ_c − μ_c′‖²), σ_c² = scatter_c / n_c."""
    xp = stats.xp
    c = stats.num_classes
    var = stats.class_scatter / stats.counts
    m = stats.centred_means("samples")  # centring first keeps ‖μ_c − μ_c′‖² accurate
    sq = xp.sum(m * m, axis=1)
    dist2 = sq[:, None] + sq[None, :] - 2.0 * xp.matmul(m, m.T)
    mask = _pairs_mask(xp, c, device(m))
    d = dist2[mask]
    if float(xp.min(d)) <= 0.0:
        return None
    ratio = (var[:, None] + var[None, :])[mask] / (2.0 * d)
    return float(xp.mean(ratio))


def equinorm(vectors):
    """std_c ‖v_c‖ / mean_c ‖v_c‖ (ddof=1) over the rows of ``vectors`` (n_classes, n_features)."""
    xp = array_namespace(vectors)
    norms = xp.sqrt(xp.sum(vectors * vectors, axis=1))
    mean = float(xp.mean(norms))
    if mean == 0.0:
        return None
    return float(xp.std(norms, correction=1)) / mean


def pair_cosines(vectors):
    """cos(v_c, v_c′) for the unordered pairs c<c′ of the rows; ``None`` if a row is zero."""
    xp = array_namespace(vectors)
    norms = xp.sqrt(xp.sum(vectors * vectors, axis=1))
    if float(xp.min(norms)) == 0.0:
        return None
    unit = vectors / norms[:, None]
    gram = xp.matmul(unit, unit.T)
    return gram[_pairs_mask(xp, vectors.shape[0], device(vectors))]


def equiangle(vectors):
    """std over unordered pairs c<c′ of cos(v_c, v_c′) (ddof=1)."""
    xp = array_namespace(vectors)
    cos = pair_cosines(vectors)
    if cos is None or cos.shape[0] < 2:
        return None
    return float(xp.std(cos, correction=1))


def maxangle(vectors):
    """mean over unordered pairs c<c′ of |cos(v_c, v_c′) + 1/(C−1)|."""
    xp = array_namespace(vectors)
    cos = pair_cosines(vectors)
    if cos is None:
        return None
    c = vectors.shape[0]
    return float(xp.mean(xp.abs(cos + 1.0 / (c - 1))))


def gram_distance(gram, target: str):
    """‖G/‖G‖ − T‖ with T = Π/√(C−1) (``"etf"``) or I/√C (``"of"``) for a C×C matrix G."""
    xp = array_namespace(gram)
    c = gram.shape[0]
    norm = _fro(gram)
    if norm == 0.0:
        return None
    dev = device(gram)
    eye = xp.eye(c, dtype=gram.dtype, device=dev)
    if target == "etf":
        ref = (eye - xp.ones((c, c), dtype=gram.dtype, device=dev) / c) / math.sqrt(c - 1)
    elif target == "of":
        ref = eye / math.sqrt(c)
    else:
        raise ValueError(target)
    return _fro(gram / norm - ref)


def self_duality(weight, mbar_rows):
    """‖Wᵀ/‖W‖ − M̄/‖M̄‖‖² (squared), with M̄ given as rows (n_classes, n_features)."""
    nw, nm = _fro(weight), _fro(mbar_rows)
    if nw == 0.0 or nm == 0.0:
        return None
    diff = weight / nw - mbar_rows / nm
    return _fro(diff) ** 2


# ---------------------------------------------------------------------- per-sample pass


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
            self._update_numpy32(np.asarray(features, dtype=np.float32), np.asarray(labels),
                                 norm_bounds)
            return
        x = xp.astype(features, xp.float64)
        ncc = xp.argmax(self._ncc_scores64(x), axis=1)  # argmin distance = argmax of this score
        self._ncc_correct = self._ncc_correct + xp.sum(xp.astype(ncc == labels, xp.int64))
        if self.weight is not None:
            pred = xp.argmax(self._logits64(x), axis=1)
            self._classifier_correct = self._classifier_correct + xp.sum(
                xp.astype(pred == labels, xp.int64))
            self._mismatch = self._mismatch + xp.sum(xp.astype(pred != ncc, xp.int64))

    def _update_numpy32(self, x: np.ndarray, labels: np.ndarray, norms=None) -> None:
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


# ---------------------------------------------------------------------- all of §2.2


def feature_metrics(stats: ClassStats, *, global_mean: str = "samples",
                    rtol: float | None = None, keys=FEATURE_KEYS) -> MetricValues:
    """The feature-only keys of SPEC §2.2 (NCC accuracy excluded: it needs a second pass)."""
    out = MetricValues()
    xp = stats.xp
    c, p = stats.num_classes, stats.num_features
    mbar = stats.centred_means(global_mean)
    if "nc1" in keys:
        value, rank = nc1(stats, global_mean, rtol)
        out.set("nc1", value, "the class means coincide (Σ_B = 0)")
        out.values["nc1_rank"] = rank
    if "cdnv" in keys:
        out.set("cdnv", cdnv(stats), "two class means coincide")
    if "equinorm_means" in keys:
        out.set("equinorm_means", equinorm(mbar), "all class means equal μ_G")
    if "equiangle_means" in keys:
        out.set("equiangle_means", equiangle(mbar),
                "a class mean equals μ_G (cosine 0/0)" if c > 2 else "needs at least 3 classes")
    if "maxangle_means" in keys:
        out.set("maxangle_means", maxangle(mbar), "a class mean equals μ_G (cosine 0/0)")
    if "etf_distance_means" in keys:
        out.set("etf_distance_means", gram_distance(xp.matmul(mbar, mbar.T), "etf"),
                "all class means equal μ_G")
    if "of_distance_means" in keys:
        out.set("of_distance_means", gram_distance(xp.matmul(stats.means, stats.means.T), "of"),
                "all class means are zero")
    if c - 1 > p and any(k in keys for k in ("etf_distance_means", "maxangle_means")):
        out.warnings.append(f"C − 1 = {c - 1} > P = {p}: an exact simplex ETF is impossible "
                            "(Zhou et al., d < K−1); ETF distances cannot reach 0")
    return out


def weight_metrics(stats: ClassStats, weight, bias=None, *, global_mean: str = "samples",
                   center_weights: bool = False) -> MetricValues:
    """The classifier keys of SPEC §2.2 (accuracy and NC4 excluded: per-sample pass)."""
    out = MetricValues()
    xp = stats.xp
    mbar = stats.centred_means(global_mean)
    out.set("equinorm_weights", equinorm(weight), "W = 0")
    out.set("equiangle_weights", equiangle(weight),
            "a classifier row is zero (cosine 0/0)" if stats.num_classes > 2
            else "needs at least 3 classes")
    out.set("maxangle_weights", maxangle(weight), "a classifier row is zero (cosine 0/0)")
    w_etf = weight - xp.mean(weight, axis=0)[None, :] if center_weights else weight
    out.set("etf_distance_weights", gram_distance(xp.matmul(w_etf, w_etf.T), "etf"), "W = 0")
    out.set("of_distance_weights", gram_distance(xp.matmul(weight, weight.T), "of"), "W = 0")
    out.set("self_duality", self_duality(weight, mbar), "W = 0 or M̄ = 0")
    out.set("nc3_etf", gram_distance(xp.matmul(weight, mbar.T), "etf"), "W M̄ = 0")
    out.set("nc3_of", gram_distance(xp.matmul(weight, stats.means.T), "of"), "W M = 0")
    shift = xp.matmul(weight, stats.global_mean(global_mean))
    if bias is not None:
        shift = shift + bias
    out.values["bias_collapse"] = float(xp.sqrt(xp.sum(shift * shift)))
    return out


def nc_metrics_from_stats(stats: ClassStats, weight=None, bias=None, predictions=None, *,
                          global_mean: str = "samples", center_weights: bool = False,
                          rtol: float | None = None) -> MetricValues:
    """Every key of SPEC §2.2 for one epoch, in SPEC order.

    Parameters
    ----------
    stats : ClassStats
    weight : array, shape (n_classes, n_features), optional
    bias : array, shape (n_classes,), optional
    predictions : PredictionAccumulator, optional
        Filled by a pass over the samples; gives ``accuracy``, ``ncc_accuracy`` and
        ``ncc_mismatch``.
    """
    out = feature_metrics(stats, global_mean=global_mean, rtol=rtol)
    if weight is not None:
        w = weight_metrics(stats, weight, bias, global_mean=global_mean,
                           center_weights=center_weights)
        out.values.update(w.values)
        out.warnings.extend(w.warnings)
    if predictions is not None:
        out.values.update(predictions.values())
    out.values = {k: out.values[k] for k in METRIC_KEYS if k in out.values}
    return out


def as_float64(xp, array, dev):
    """``array`` (any library, grad or not; ``None`` passes) as float64 in ``xp`` on ``dev``."""
    if array is None:
        return None
    array = detach(array)
    try:
        same = array_namespace(array) is xp and device(array) == dev
    except TypeError:  # not an array-API array (e.g. a list)
        same = False
    if not same:
        array = xp.asarray(to_numpy(array), device=dev)
    return xp.astype(array, xp.float64)


def nc_metrics(features, labels, weight=None, bias=None, *, num_classes: int | None = None,
               global_mean: str = "samples", center_weights: bool = False,
               rtol: float | None = None) -> dict[str, Any]:
    """All §2.2 metrics of in-memory arrays (NumPy, CuPy or any array-API namespace).

    Parameters
    ----------
    features : array, shape (n_samples, n_features)
    labels : integer array, shape (n_samples,)
    weight : array, shape (n_classes, n_features), optional
    bias : array, shape (n_classes,), optional
    num_classes : int, optional

    Returns
    -------
    dict
        Key -> float, int or ``None`` (plain Python numbers whatever the device);
        ``"warnings"`` holds the reasons for ``None`` values.

    Notes
    -----
    Computed on the device of ``features``; tensors that require grad are detached (no
    copy). ``weight``, ``bias`` and ``labels`` may live elsewhere (e.g. NumPy): they are
    copied to that device.
    """
    from .stats import class_stats

    features = detach(features)
    xp = array_namespace(features)
    dev = device(features)
    stats = class_stats(features, labels, num_classes)
    w = as_float64(xp, weight, dev)
    b = as_float64(xp, bias, dev)
    pred = PredictionAccumulator(stats.means, w, b)
    lab = xp.asarray(to_numpy(labels).astype(np.int64), device=dev)
    pred.update(features, lab)
    res = nc_metrics_from_stats(stats, w, b, pred, global_mean=global_mean,
                                center_weights=center_weights, rtol=rtol)
    out = dict(res.values)
    out["warnings"] = res.warnings
    return out
