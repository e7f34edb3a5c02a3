"""The signal-to-noise matrix Σ_W^{-1/2} M̄ and its singular values (Han, Papyan & Donoho 2022,
Def. 2; docs/CENTRAL_PATH.md §2).

The singular values ω_j of SNR = Σ_W^{-1/2} M̄ are the square roots of the eigenvalues of
M̄ᵀ Σ_W^{-1} M̄. With the Cholesky factor Σ_W = L Lᵀ, M̄ᵀ Σ_W^{-1} M̄ = (L^{-1}M̄)ᵀ(L^{-1}M̄), so
the ω_j are the singular values of L^{-1} M̄: one Cholesky factorisation and one solve, no
matrix square root and no inverse.

When Σ_W is singular — P > N − C (rank Σ_W ≤ N − C < P for every data set), or the Cholesky
factorisation fails, returns non-finite numbers (CuPy returns NaN instead of raising), or has
its smallest squared pivot below ``PIVOT_RTOL`` times the largest — the SNR is computed on the
support of Σ_W from its eigendecomposition: directions of zero within-class variance along
which the class means do not spread (dead ReLU units, constant or duplicated features) are
dropped and counted; a class-mean direction with zero within-class variance makes the SNR
infinite, reported as null keys with the reason (never a ridge-dependent number). ``ridge``
remains an explicit alternative. Indices j are 0-based, as in ``snr_singular_values_j``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import device

from ..backend import to_numpy
from .linalg import PIVOT_RTOL, checked_cholesky, default_rtol, solve_lower
from .precision import resolved_basis
from .accumulator import class_stats
from .stats import ClassStats
from .keys import keys_of
from .values import MetricValues

#: Keys of the ``snr`` command, in output order.
SNR_KEYS = keys_of("snr")  # output order, from the key catalogue

#: On a singular Σ_W, eigenvalues at or below this fraction of the largest count as zero
#: within-class variance (the same condition-number limit as ``PIVOT_RTOL``: a smaller
#: eigenvalue has too few correct digits to whiten by).
ZERO_VARIANCE_RTOL = PIVOT_RTOL
#: A zero-variance subspace U₀ carries between-class spread when ‖U₀ᵀM̄‖ > SPREAD_RTOL·‖M̄‖.
#: Rounding leaks at most ~ε/ZERO_VARIANCE_RTOL ≈ 1e-6 of M̄ into a computed null space of
#: Σ_W (eigenvector error ε·λ_max/gap, gap ≥ ZERO_VARIANCE_RTOL·λ_max); √ZERO_VARIANCE_RTOL ≈
#: 1.5e-5 stays clear of that.
SPREAD_RTOL = math.sqrt(ZERO_VARIANCE_RTOL)


def snr_rank_bound(features: int, classes: int) -> int:
    """min(P, C − 1): how many singular values of Σ_W^{-1/2} M̄ can be nonzero (M̄π = 0 for
    the class proportions π, and M̄ has P rows), the length of ``snr_singular_values``."""
    return max(1, min(int(features), int(classes) - 1))


def _feature_list(indices: np.ndarray) -> str:
    return ", ".join(str(i) for i in indices[:8]) + (", …" if indices.size > 8 else "")


def _null(out: MetricValues, reason: str) -> MetricValues:
    for key in SNR_KEYS:
        out.values[key] = None
    out.warnings.append(f"SNR keys are null: {reason}")
    return out


def _on_support(stats: ClassStats, sigma, mbar) -> tuple[Any, int, str | None]:
    """Whitening on the support of a singular Σ_W (docs/CENTRAL_PATH.md §2).

    Σ_W = U Λ Uᵀ; eigenvalues ≤ ``ZERO_VARIANCE_RTOL`` · λ_max count as zero within-class
    variance. Those directions are dropped when the class means do not spread along them
    (‖U₀ᵀM̄‖ ≤ ``SPREAD_RTOL`` · ‖M̄‖: dead units, constant or linearly dependent features);
    otherwise a class-mean direction has no within-class noise and the SNR is infinite.

    Returns
    -------
    whitened : array, shape (k, C), or None
        Λ₁^{-1/2} U₁ᵀ M̄ on the k kept directions (None when the SNR is infinite/undefined).
    dropped : int
        P − k.
    reason : str or None
        Why ``whitened`` is None.
    """
    xp = stats.xp
    p, c, n = int(sigma.shape[0]), stats.num_classes, stats.num_samples
    evals, evecs = xp.linalg.eigh(sigma)
    lam = np.asarray(to_numpy(evals), dtype=np.float64)
    top = float(lam.max()) if lam.size else 0.0
    zero = lam <= ZERO_VARIANCE_RTOL * top
    total = float(np.linalg.norm(np.asarray(to_numpy(mbar), dtype=np.float64)))
    k0 = int(zero.sum())
    if k0:
        u0 = xp.take(evecs, xp.asarray(np.flatnonzero(zero), device=device(evecs)), axis=1)
        along = float(np.linalg.norm(np.asarray(to_numpy(xp.matmul(u0.T, mbar)),
                                                dtype=np.float64)))
        if along > SPREAD_RTOL * total:
            return None, k0, _infinite_reason(stats, k0, along / total,
                                              stats.num_features > n - c)
    if k0 == p:
        return None, k0, ("every direction has zero within-class variance and zero "
                          "between-class spread (all features constant)")
    keep = xp.asarray(np.flatnonzero(~zero), device=device(evecs))
    u1 = xp.take(evecs, keep, axis=1)
    scale = 1.0 / xp.sqrt(xp.take(evals, keep))
    return xp.matmul(u1.T, mbar) * scale[:, None], k0, None


def _infinite_reason(stats: ClassStats, k0: int, share: float, wide: bool) -> str:
    """'infinite SNR: …' naming the features that are constant within classes but not between."""
    xp = stats.xp
    mbar = stats.centred_means("samples").T
    var = np.asarray(to_numpy(xp.linalg.diagonal(stats.within_scatter)), dtype=np.float64)
    rows = np.linalg.norm(np.asarray(to_numpy(mbar), dtype=np.float64), axis=1)
    top, spread = (float(var.max()) if var.size else 0.0), float(np.linalg.norm(rows))
    named = np.flatnonzero((var <= ZERO_VARIANCE_RTOL * top) & (rows > SPREAD_RTOL * spread))
    p, n, c = stats.num_features, stats.num_samples, stats.num_classes
    where = (f"; feature index {_feature_list(named)} constant within each class but not "
             "across classes" if named.size else "")
    size = f" (P = {p} > N − C = {n - c}: rank Σ_W ≤ N − C)" if wide else ""
    return (f"infinite SNR: Σ_W is singular{size} and {k0} direction(s) with zero "
            f"within-class variance carry "
            f"{100 * share**2:.2g}% of the between-class spread ‖M̄‖², so the class means are "
            f"separated without noise there{where}")


def snr_from_stats(stats: ClassStats, *, ridge: float | None = None,
                   global_mean: str = "samples") -> MetricValues:
    """SNR singular values and the keys derived from them for one epoch (docs/CENTRAL_PATH.md §2).

    Parameters
    ----------
    stats : ClassStats
    ridge : float, optional
        ε > 0: use Σ_W + εI instead of Σ_W (on every epoch, so that a series stays
        comparable). Default none: a singular Σ_W is handled on its support.
    global_mean : {"samples", "classes"}
        μ_G of M̄ = M − μ_G 1ᵀ.

    Returns
    -------
    MetricValues
        ``snr_singular_values`` (list of r = min(P, C − 1) floats, descending: the others
        are 0 by construction, M̄ having rank ≤ r; zeros appended when fewer than r
        directions remain: the ``snr_dropped_dims`` of a singular Σ_W), ``snr_min`` =
        ω_{r′−1} with r′ = min(P − snr_dropped_dims, C − 1) the rank the whitened means can
        have, ``snr_max`` = ω_0, ``snr_ratio`` = ω_0/ω_{r′−1}, ``nc1_whitened`` =
        Σ_{j<r′} ω_j^{-2}, ``loss_ls_predicted`` =
        ½ Σ_{j≤C−2} 1/(C + ω_j²) (j 0-based, ω_j = 0 for j ≥ r), ``snr_dropped_dims``
        (directions of zero within-class variance and zero between-class spread left out). Every key is ``None``,
        with one warning, when the SNR is infinite or undefined.
    """
    out = MetricValues()
    xp = stats.xp
    c, p, n = stats.num_classes, stats.num_features, stats.num_samples
    if c < 2:  # M̄ has no direction to whiten, ω_{C−2} does not exist
        return _null(out, "fewer than two classes have samples")
    sigma = stats.sigma_w
    mbar = stats.centred_means(global_mean).T  # (P, C)
    # Directions the stored features do not resolve (docs/METRICS.md, "Rank from the data's
    # precision") are left out first and counted with the dropped ones.
    basis = resolved_basis(stats)
    dims = p if basis is None else int(basis.shape[1])
    if basis is not None:
        sigma = xp.matmul(basis.T, xp.matmul(sigma, basis))
        mbar = xp.matmul(basis.T, mbar)
    dropped = p - dims
    if dims == 0:
        return _null(out, "every direction has zero within-class variance and zero "
                          "between-class spread (all features constant, to the rounding of "
                          f"the {stats.precision} features)")
    if ridge is not None:
        lower, reason = checked_cholesky(sigma + ridge * xp.eye(dims, dtype=sigma.dtype,
                                                                 device=device(sigma)))
        if lower is None:
            return _null(out, f"Σ_W + εI is singular: {reason}")
        whitened = solve_lower(lower, mbar)  # L^{-1} M̄, (P, C)
        out.warnings.append(f"SNR computed with Σ_W + εI, ε = {ridge:g}")
    else:
        # P > N − C: rank Σ_W ≤ N − C < P for any data, no factorisation can succeed.
        lower = checked_cholesky(sigma)[0] if dims <= n - c else None
        if lower is not None:
            whitened = solve_lower(lower, mbar)
        else:
            whitened, zero_dims, reason = _on_support(stats, sigma, mbar)
            dropped += zero_dims
            if whitened is None:
                return _null(out, reason)
    # M̄ has rank ≤ min(P, C − 1) (M̄π = 0): only that many ω_j can be nonzero, the rest are
    # 0 by construction and are not reported (a language model has C − 1 ≫ P).
    # Directions dropped on the support of Σ_W carry no class-mean spread either: the
    # whitened means have rank ≤ min(P − dropped, C − 1) = r_kept ≤ r; the list keeps its
    # length r (zeros at the end, counted by snr_dropped_dims) and snr_min is ω_{r_kept−1}.
    r = snr_rank_bound(p, c)
    r_kept = max(1, min(int(whitened.shape[0]), c - 1))
    omega = np.sort(np.asarray(to_numpy(xp.linalg.svdvals(whitened)), dtype=np.float64))[::-1]
    omega = np.concatenate([omega, np.zeros(max(0, r - omega.size))])[:r]
    out.values["snr_singular_values"] = [float(v) for v in omega]
    top, low = float(omega[0]), float(omega[r_kept - 1])
    out.values["snr_min"] = low
    out.values["snr_max"] = top
    tol = default_rtol(p, c) * top
    if top == 0.0 or low <= tol:
        kept = p - dropped
        why = ("all class means equal μ_G (M̄ = 0)" if top == 0.0 else
               f"the whitened class means have rank < {r_kept} = min(P, C − 1)"
               + (f" on the {kept} of P = {p} directions with within-class variance"
                  if kept < p else ""))
        out.set("snr_ratio", None, why)
        out.set("nc1_whitened", None, why)
    else:
        out.set("snr_ratio", top / low)
        out.set("nc1_whitened", float(np.sum(1.0 / omega[:r_kept]**2)))
    # ½ Σ_{j<C−1} 1/(C + ω_j²): the C − 1 − r structural zeros add 1/C each.
    out.values["loss_ls_predicted"] = float(0.5 * (np.sum(1.0 / (c + omega**2))
                                                   + (c - 1 - r) / c))
    out.values["snr_dropped_dims"] = dropped
    return out


def snr(features, labels, *, num_classes: int | None = None, ridge: float | None = None,
        global_mean: str = "samples") -> dict[str, Any]:
    """SNR keys (docs/CENTRAL_PATH.md §2) of in-memory arrays (NumPy, CuPy or any array-API namespace).

    Parameters
    ----------
    features : array, shape (n_samples, n_features)
    labels : integer array, shape (n_samples,)
    num_classes : int, optional
        Default ``max(labels) + 1``.
    ridge : float, optional
        Add εI to Σ_W.
    global_mean : {"samples", "classes"}

    Returns
    -------
    dict
        Key -> float, list or ``None``; ``"warnings"`` lists the reasons for ``None`` values.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(3), 50)
    >>> h = 5 * np.eye(3, 4)[y] + np.random.default_rng(0).normal(size=(150, 4))
    >>> out = snr(h, y)
    >>> len(out["snr_singular_values"]), out["snr_ratio"] > 1
    (2, True)
    """
    if ridge is not None and not (ridge > 0 and math.isfinite(ridge)):
        raise ValueError(f"ridge must be a positive finite number, got {ridge!r}")
    stats = class_stats(features, labels, num_classes)
    res = snr_from_stats(stats, ridge=ridge, global_mean=global_mean)
    out = dict(res.values)
    out["warnings"] = res.warnings
    return out
