"""The neural-collapse metrics (docs/METRICS.md), from :class:`~ncanalyze.core.stats.ClassStats`.

Every formula of the ``metrics`` command is in this file. Conventions (see docs/METRICS.md):
NC1 uses Σ_B^† restricted to the numerical rank of M̄ and is divided by C; μ_G is weighted by
samples unless ``global_mean="classes"``; standard deviations use ddof=1 over classes or over
unordered class pairs; self-duality is squared; the ETF distance of the weights uses W as
stored unless ``center_weights``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from ..backend import detach, to_numpy

from .decisions import PredictionAccumulator
from .linalg import default_rtol
from .stats import ClassStats
from .values import FEATURE_KEYS, METRIC_KEYS, MetricValues


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


# ---------------------------------------------------------------------- all of §2.2


def feature_metrics(stats: ClassStats, *, global_mean: str = "samples",
                    rtol: float | None = None, keys=FEATURE_KEYS) -> MetricValues:
    """The feature-only keys of docs/METRICS.md (NCC accuracy excluded: it needs a second pass)."""
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
    """The classifier keys of docs/METRICS.md (accuracy and NC4 excluded: per-sample pass)."""
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
    """Every key of docs/METRICS.md for one epoch, in its order.

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
