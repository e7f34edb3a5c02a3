"""The neural-collapse metrics (docs/METRICS.md), from :class:`~ncanalyze.core.stats.ClassStats`.

Every formula of the ``metrics`` command is in this file. Conventions (see docs/METRICS.md):
NC1 uses Σ_B^† restricted to the numerical rank of M̄ and is divided by C; μ_G is weighted by
samples unless ``global_mean="classes"``; standard deviations use ddof=1 over classes or over
unordered class pairs; self-duality is squared; the ETF distance of the weights uses W as
stored unless ``center_weights``.

Absent classes. Only the K classes with samples enter these formulas (C in docs/METRICS.md
is K here); the classifier rows of absent classes are used by the decision pass only.

Memory is O(K·P + P² + tile): the pairwise keys and the Gram distances are reduced over class
tiles (:mod:`ncanalyze.core.pairs`), never as a K×K matrix.

Length: above the ~350-line guide; one function per key family plus the tiled passes that
feed several keys at once (one tile serves cdnv, the angles, gnc2 and the Gram distances).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import detach, to_numpy

from .decisions import PredictionAccumulator
from .linalg import default_rtol
from .precision import resolved_basis
from .pairs import GramDistance, cross_pass, gram_norm, pair_pass, row_shift
from .stats import ClassStats
from .values import FEATURE_KEYS, METRIC_KEYS, MetricValues

def _fro(x) -> float:
    xp = array_namespace(x)
    return float(xp.sqrt(xp.sum(x * x)))


# ---------------------------------------------------------------------- NC1


def _left_singular(mbar_rows):
    """Left singular vectors (P, r) and singular values of M̄ = ``mbar_rows``ᵀ (P × K).

    For K > P a QR factorisation M̄ᵀ = Q R comes first (M̄ and Rᵀ share U and S), so the SVD
    is of a P×P matrix and nothing K×K or K×P beyond Q is formed.
    """
    xp = array_namespace(mbar_rows)
    k, p = mbar_rows.shape
    if k <= p:
        u, s, _ = xp.linalg.svd(mbar_rows.T, full_matrices=False)
        return u, s
    if is_numpy_namespace(xp):
        r = np.linalg.qr(np.asarray(mbar_rows), mode="r")
    else:
        _, r = xp.linalg.qr(mbar_rows)
    u, s, _ = xp.linalg.svd(xp.asarray(r).T, full_matrices=False)
    return u, s


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
    u, s = _left_singular(stats.centred_means(global_mean))
    s_host = np.asarray(to_numpy(s), dtype=np.float64)
    if s_host.size == 0 or s_host[0] == 0.0:
        return None, 0
    tol = (default_rtol(stats.num_features, stats.num_classes) if rtol is None else rtol)
    # M̄ has at most min(C − 1, P) independent columns (Σ_c n_c μ̄_c = 0, or Σ_c μ̄_c = 0 for
    # the class-mean μ_G): a rounding-level C-th singular value must never enter the inverse.
    # M̄ spans no more directions than the stored features resolve: beyond those, its
    # singular values are rounding noise (the direction a final LayerNorm removes, stored as
    # float32; docs/METRICS.md, "Rank from the data's precision").
    basis = resolved_basis(stats)
    resolved = stats.num_features if basis is None else int(basis.shape[1])
    rank = min(int(np.sum(s_host > tol * s_host[0])), stats.num_classes - 1, resolved)
    if rank == 0:
        return None, 0
    ur, sr = u[:, :rank], s[:rank]
    # u_jᵀ Σ_W u_j ≥ 0 since Σ_W is PSD; at exact collapse (Σ_W = 0) rounding can leave
    # ±1e-30, which must not make NC1 negative.
    proj = xp.maximum(xp.sum(ur * xp.matmul(stats.sigma_w, ur), axis=0), 0.0)
    value = float(xp.sum(proj / (sr ** 2)))
    return value, rank


def trace_ratio(stats: ClassStats, global_mean: str = "samples"):
    """tr Σ_W / tr Σ_B (Tirer et al. 2023), tr Σ_B = ‖M̄‖²_F / C."""
    xp = stats.xp
    mbar = stats.centred_means(global_mean)
    tr_b = float(xp.sum(mbar * mbar)) / stats.num_classes
    if tr_b == 0.0:
        return None
    return float(xp.sum(xp.linalg.diagonal(stats.sigma_w))) / tr_b


# ---------------------------------------------------------------------- geometry


def equinorm(vectors):
    """std_c ‖v_c‖ / mean_c ‖v_c‖ (ddof=1) over the rows of ``vectors`` (n_classes, n_features)."""
    xp = array_namespace(vectors)
    norms = xp.sqrt(xp.sum(vectors * vectors, axis=1))
    mean = float(xp.mean(norms))
    if mean == 0.0 or norms.shape[0] < 2:
        return None
    return float(xp.std(norms, correction=1)) / mean


def self_duality(weight, mbar_rows):
    """‖Wᵀ/‖W‖ − M̄/‖M̄‖‖² (squared), with M̄ given as rows (n_classes, n_features)."""
    nw, nm = _fro(weight), _fro(mbar_rows)
    if nw == 0.0 or nm == 0.0:
        return None
    diff = weight / nw - mbar_rows / nm
    return _fro(diff) ** 2


def duality(weight, mbar_rows):
    """``(unc3, duality_mean)``: std (ddof=1) and mean over classes of cos(w_c, μ_c − μ_G)
    (Wu & Papyan 2024); ``None`` where a norm is zero or fewer than two classes."""
    xp = array_namespace(weight)
    nw = xp.sqrt(xp.sum(weight * weight, axis=1))
    nm = xp.sqrt(xp.sum(mbar_rows * mbar_rows, axis=1))
    den = nw * nm
    if float(xp.min(den)) == 0.0:
        return None, None
    cos = xp.sum(weight * mbar_rows, axis=1) / den
    std = float(xp.std(cos, correction=1)) if cos.shape[0] > 1 else None
    return std, float(xp.mean(cos))


# ---------------------------------------------------------------------- all keys


def frequency_keys(stats: ClassStats) -> dict[str, Any]:
    """``classes_present``, ``class_count_min``/``max`` (over the classes present) and
    ``effective_classes`` = exp(−Σ_c π_c log π_c), π_c = n_c / N."""
    counts = np.asarray(to_numpy(stats.counts), dtype=np.float64)
    pi = counts / counts.sum()
    return {"classes_present": int(counts.size), "class_count_min": int(counts.min()),
            "class_count_max": int(counts.max()),
            "effective_classes": float(math.exp(-math.fsum((pi * np.log(pi)).tolist())))}


def feature_metrics(stats: ClassStats, *, global_mean: str = "samples",
                    rtol: float | None = None, keys=FEATURE_KEYS,
                    tile_bytes: int | None = None) -> MetricValues:
    """The feature-only keys (NCC accuracy excluded: it needs a second pass)."""
    out = MetricValues()
    xp = stats.xp
    c, p = stats.num_classes, stats.num_features
    out.values.update({k: v for k, v in frequency_keys(stats).items() if k in keys})
    if c < 2:
        for key in keys:
            if key not in out.values and key != "ncc_accuracy":
                out.set(key, None, "fewer than two classes have samples")
        return out
    mbar = stats.centred_means(global_mean)
    if "nc1" in keys:
        value, rank = nc1(stats, global_mean, rtol)
        out.set("nc1", value, "the class means coincide (Σ_B = 0)")
        out.values["nc1_rank"] = rank
    if "nc1_trace_ratio" in keys:
        out.set("nc1_trace_ratio", trace_ratio(stats, global_mean),
                "the class means coincide (Σ_B = 0)")
    if "equinorm_means" in keys:
        out.set("equinorm_means", equinorm(mbar), "all class means equal μ_G")
    grams = []
    if "etf_distance_means" in keys:
        etf = GramDistance(xp, gram_norm(mbar), c, "etf")
        grams.append((etf, None))
    if "of_distance_means" in keys:
        # μ_c·μ_c′ = m̄_c·m̄_c′ + a_c + a_c′ + ‖μ_G‖², a = M̄ᵀ μ_G: the tile of the uncentred Gram
        # from the centred one.
        mu_g = stats.global_mean(global_mean)
        a = xp.matmul(mbar, mu_g)
        mu2 = xp.sum(mu_g * mu_g)
        of = GramDistance(xp, gram_norm(stats.means), c, "of")
        grams.append((of, lambda g, i0, i1, j0, j1: g + a[i0:i1, None] + a[None, j0:j1] + mu2))
    angles = any(k in keys for k in ("equiangle_means", "maxangle_means", "gnc2", "gnc2_energy"))
    distances = "cdnv" in keys or "coincident_pairs" in keys
    means_h = np.asarray(to_numpy(stats.means), dtype=np.float64)
    pairs = pair_pass(mbar, tile_bytes=tile_bytes, angles=angles,
                      variances=stats.class_scatter / stats.counts if distances else None,
                      grams=grams, scales=np.sqrt(np.einsum("ij,ij->i", means_h, means_h)))
    if distances:
        same = pairs["coincident"]
        out.values["coincident_pairs"] = same
        if same:
            out.warnings.append(coincident_note(stats, same, pairs["coincident_examples"]))
    if "cdnv" in keys:
        out.set("cdnv", pairs["cdnv"], "two class means coincide (coincident_pairs > 0)")
    zero = "a class mean equals μ_G (cosine 0/0)"
    if "equiangle_means" in keys:
        out.set("equiangle_means", pairs["equiangle"], zero if c > 2 else "needs at least 3 classes")
    if "maxangle_means" in keys:
        out.set("maxangle_means", pairs["maxangle"], zero)
    if "gnc2" in keys:
        out.set("gnc2", pairs["gnc2"], zero + " or two class directions coincide")
        out.set("gnc2_energy", pairs["gnc2_energy"], zero + " or two class directions coincide")
    if "etf_distance_means" in keys:
        out.set("etf_distance_means", etf.result(), "all class means equal μ_G")
    if "of_distance_means" in keys:
        out.set("of_distance_means", of.result(), "all class means are zero")
    if c - 1 > p and any(k in keys for k in ("etf_distance_means", "maxangle_means")):
        out.warnings.append(etf_impossible_note(c, p))
    return out


def coincident_note(stats: ClassStats, count: int, examples) -> str:
    """The warning line for class means that coincide (docs/METRICS.md, "Coincident class
    means"), naming a few pairs by class index."""
    ids = stats.class_ids
    named = ", ".join(f"{ids[a]} = {ids[b]}" for a, b in examples)
    more = ", …" if count > len(examples) else ""
    return (f"{count} pair(s) of classes have identical means (classes {named}{more}): cdnv "
            "and gnc2 are undefined for them (in a language model: tokens only ever seen after "
            "the same contexts get the same features, see docs/METRICS.md)")


#: The words of :func:`etf_impossible_note` (a run-level fact: said once per run by the CLI).
ETF_IMPOSSIBLE = "an exact simplex ETF is impossible"


def etf_impossible_note(classes: int, features: int) -> str:
    """Why the ETF distances cannot reach 0 when C − 1 > P."""
    return (f"C − 1 = {classes - 1} > P = {features}: {ETF_IMPOSSIBLE} (Zhou et al., d < K−1); "
            "ETF distances cannot reach 0")


def present_rows(stats: ClassStats, a):
    """The rows of a per-class array (C, …) that belong to the classes present."""
    if stats.num_classes == stats.num_classes_total or a is None:
        return a
    xp = array_namespace(a)
    return xp.take(a, xp.asarray(stats.class_ids, device=device(a)), axis=0)


def weight_metrics(stats: ClassStats, weight, bias=None, *, global_mean: str = "samples",
                   center_weights: bool = False, tile_bytes: int | None = None) -> MetricValues:
    """The classifier keys (accuracy and NC4 excluded: per-sample pass), over the rows of the
    classes present."""
    out = MetricValues()
    xp = stats.xp
    c = stats.num_classes
    w, b = present_rows(stats, weight), present_rows(stats, bias)
    mbar = stats.centred_means(global_mean)
    mu_g = stats.global_mean(global_mean)
    shift = xp.matmul(w, mu_g)
    out.values["bias_collapse"] = float(xp.sqrt(xp.sum((shift if b is None else shift + b) ** 2)))
    if c < 2:
        for key in ("equinorm_weights", "equiangle_weights", "maxangle_weights",
                    "gnc2_weights", "gnc2_energy_weights", "etf_distance_weights",
                    "of_distance_weights", "self_duality", "nc3_etf", "nc3_of", "unc3",
                    "duality_mean"):
            out.set(key, None, "fewer than two classes have samples")
        return out
    out.set("equinorm_weights", equinorm(w), "W = 0")
    of = GramDistance(xp, gram_norm(w), c, "of")
    grams = [(of, None)]
    if not center_weights:
        etf = GramDistance(xp, of.norm, c, "etf")
        grams.append((etf, None))
    pairs = pair_pass(w, tile_bytes=tile_bytes, grams=grams)
    if center_weights:
        w_c = w - xp.mean(w, axis=0)[None, :]
        etf = GramDistance(xp, gram_norm(w_c), c, "etf")
        pair_pass(w_c, tile_bytes=tile_bytes, angles=False, grams=[(etf, None)])
    zero = "a classifier row is zero (cosine 0/0)"
    out.set("equiangle_weights", pairs["equiangle"], zero if c > 2 else "needs at least 3 classes")
    out.set("maxangle_weights", pairs["maxangle"], zero)
    out.set("gnc2_weights", pairs["gnc2"], zero + " or two classifier directions coincide")
    out.set("gnc2_energy_weights", pairs["gnc2_energy"],
            zero + " or two classifier directions coincide")
    out.set("etf_distance_weights", etf.result(), "W = 0")
    out.set("of_distance_weights", of.result(), "W = 0")
    out.set("self_duality", self_duality(w, mbar), "W = 0 or M̄ = 0")
    nc3_etf = GramDistance(xp, gram_norm(w, mbar), c, "etf")
    nc3_of = GramDistance(xp, gram_norm(w, stats.means), c, "of")
    cross_pass(w, mbar, [(nc3_etf, None), (nc3_of, row_shift(shift))], tile_bytes)
    out.set("nc3_etf", nc3_etf.result(), "W M̄ = 0")
    out.set("nc3_of", nc3_of.result(), "W M = 0")
    unc3, dmean = duality(w, mbar)
    out.set("unc3", unc3, "a classifier row or a centred class mean is zero")
    out.set("duality_mean", dmean, "a classifier row or a centred class mean is zero")
    return out


def nc_metrics_from_stats(stats: ClassStats, weight=None, bias=None, predictions=None, *,
                          global_mean: str = "samples", center_weights: bool = False,
                          rtol: float | None = None,
                          tile_bytes: int | None = None) -> MetricValues:
    """Every key of docs/METRICS.md for one epoch, in its order.

    Parameters
    ----------
    stats : ClassStats
    weight : array, shape (C, n_features), optional
        All C classifier rows (absent classes included).
    bias : array, shape (C,), optional
    predictions : PredictionAccumulator, optional
        Filled by a pass over the samples; gives ``accuracy``, ``ncc_accuracy`` and
        ``ncc_mismatch``.
    tile_bytes : int, optional
        Memory for one tile of the pairwise reductions.
    """
    out = feature_metrics(stats, global_mean=global_mean, rtol=rtol, tile_bytes=tile_bytes)
    if weight is not None:
        w = weight_metrics(stats, weight, bias, global_mean=global_mean,
                           center_weights=center_weights, tile_bytes=tile_bytes)
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


def absent_note(stats: ClassStats) -> str | None:
    """The warning line for classes without samples, or ``None`` when all are present."""
    missing = stats.num_classes_total - stats.num_classes
    if missing == 0:
        return None
    return (f"{missing} of {stats.num_classes_total} classes have no samples: they are left out "
            f"of every class-mean key (C = {stats.num_classes} there); accuracy, NCC and NC4 "
            "still range over all classifier rows")


def nc_metrics(features, labels, weight=None, bias=None, *, num_classes: int | None = None,
               global_mean: str = "samples", center_weights: bool = False,
               rtol: float | None = None, tile_bytes: int | None = None) -> dict[str, Any]:
    """All metrics of docs/METRICS.md for in-memory arrays (NumPy, CuPy or any array-API
    namespace).

    Parameters
    ----------
    features : array, shape (n_samples, n_features)
    labels : integer array, shape (n_samples,)
    weight : array, shape (n_classes, n_features), optional
    bias : array, shape (n_classes,), optional
    num_classes : int, optional
        C; default ``max(labels) + 1``. Classes without samples are allowed (see
        docs/METRICS.md, "Absent classes").
    tile_bytes : int, optional
        Memory for one tile of the pairwise reductions and the decision pass.

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

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(3), 20)
    >>> h = np.eye(3, 4)[y] + 0.01 * np.random.default_rng(0).normal(size=(60, 4))
    >>> round(nc_metrics(h, y)["ncc_accuracy"], 3)
    1.0
    """
    from .accumulator import class_stats
    from .inputs import check_inputs

    check_inputs(features, labels, weight, bias, num_classes=num_classes)
    features = detach(features)
    xp = array_namespace(features)
    dev = device(features)
    stats = class_stats(features, labels, num_classes)
    w = as_float64(xp, weight, dev)
    b = as_float64(xp, bias, dev)
    pred = PredictionAccumulator(stats.means, w, b, ncc_classes=stats.class_ids,
                                 tile_bytes=tile_bytes)
    lab = xp.asarray(to_numpy(labels).astype(np.int64), device=dev)
    pred.update(features, lab)
    res = nc_metrics_from_stats(stats, w, b, pred, global_mean=global_mean,
                                center_weights=center_weights, rtol=rtol,
                                tile_bytes=tile_bytes)
    out = dict(res.values)
    note = absent_note(stats)
    out["warnings"] = ([note] if note else []) + res.warnings
    return out
