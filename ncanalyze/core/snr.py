"""The signal-to-noise matrix Σ_W^{-1/2} M̄ and its singular values (SPEC §2.4).

The singular values ω_j of SNR = Σ_W^{-1/2} M̄ are the square roots of the eigenvalues of
M̄ᵀ Σ_W^{-1} M̄. With the Cholesky factor Σ_W = L Lᵀ, M̄ᵀ Σ_W^{-1} M̄ = (L^{-1}M̄)ᵀ(L^{-1}M̄), so
the ω_j are the singular values of L^{-1} M̄: one Cholesky factorisation and one solve, no
matrix square root and no inverse.

Σ_W is declared singular (the keys are ``null`` with the reason, unless a ridge ε is given)
when P > N − C (then rank Σ_W ≤ N − C < P for every data set), when the Cholesky
factorisation fails or returns non-finite numbers (CuPy returns NaN instead of raising), or
when its smallest squared pivot is below ``PIVOT_RTOL`` times the largest (condition number
beyond ~1/PIVOT_RTOL: ω along the weakest directions would not have 6 correct digits).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from .. import backend
from ..backend import solve_lower, to_numpy
from .metrics import MetricValues, default_rtol
from .stats import ClassStats, class_stats

#: Keys of the ``snr`` command, in output order.
SNR_KEYS = ("snr_singular_values", "snr_min", "snr_max", "snr_ratio", "nc1_whitened",
            "loss_ls_predicted")

#: A symmetric matrix is treated as singular when its smallest squared Cholesky pivot is below
#: this fraction of the largest: beyond a condition number of ~1e6/ε, float64 results along the
#: weakest directions cannot meet the 1e-6 relative accuracy of SPEC §6.
PIVOT_RTOL = 1e6 * float(np.finfo(np.float64).eps)


def checked_cholesky(a) -> tuple[Any, str | None]:
    """Cholesky factor of a symmetric positive semi-definite matrix, or the reason it has none.

    Parameters
    ----------
    a : array, shape (n, n)
        Symmetric, float64.

    Returns
    -------
    lower : array, shape (n, n), or None
        L with a = L Lᵀ when ``a`` is numerically positive definite.
    reason : str or None
        Why ``a`` counts as singular (``None`` when ``lower`` is returned).
    """
    xp = array_namespace(a)
    lower = backend.cholesky(a)  # each library signals failure its own way
    if lower is None:
        return None, "the Cholesky factorisation failed (not positive definite)"
    pivots = np.asarray(to_numpy(xp.linalg.diagonal(lower)), dtype=np.float64)
    if not np.all(np.isfinite(pivots)):  # CuPy signals failure with NaN
        return None, "the Cholesky factorisation failed (not positive definite)"
    sq = pivots**2
    top = float(sq.max()) if sq.size else 0.0
    if top == 0.0:
        return None, "the matrix is zero"
    ratio = float(sq.min()) / top
    if ratio <= PIVOT_RTOL:
        return None, f"numerically singular (smallest/largest Cholesky pivot² = {ratio:.2g})"
    return lower, None


def cholesky_solve(lower, b):
    """a^{-1} b given the Cholesky factor ``lower`` of ``a`` = L Lᵀ (n, n); ``b`` (n, k).

    Two triangular solves (:func:`ncanalyze.backend.solve_lower`); Lᵀ x = y is solved as the
    lower-triangular system of the reversed unknowns.
    """
    xp = array_namespace(lower, b)
    y = solve_lower(lower, b)
    rev = xp.flip(xp.flip(lower, axis=0), axis=1).T  # J Lᵀ J, lower triangular
    return xp.flip(solve_lower(rev, xp.flip(y, axis=0)), axis=0)


def _dead_features(stats: ClassStats) -> str:
    """'k features have zero within-class variance (dead units?), e.g. i, j; ' or a hint."""
    xp = stats.xp
    var = np.asarray(to_numpy(xp.linalg.diagonal(stats.within_scatter)), dtype=np.float64)
    top = float(var.max()) if var.size else 0.0
    dead = np.flatnonzero(var <= PIVOT_RTOL * top)
    if dead.size == 0:
        return "linearly dependent features? "
    shown = ", ".join(str(i) for i in dead[:8]) + (", …" if dead.size > 8 else "")
    return (f"{dead.size} feature(s) have zero within-class variance (dead units?): "
            f"index {shown}; ")


def _null(out: MetricValues, reason: str) -> MetricValues:
    for key in SNR_KEYS:
        out.values[key] = None
    out.warnings.append(f"SNR keys are null: {reason}")
    return out


def snr_from_stats(stats: ClassStats, *, ridge: float | None = None,
                   global_mean: str = "samples") -> MetricValues:
    """SNR singular values and the keys derived from them for one epoch (SPEC §2.4).

    Parameters
    ----------
    stats : ClassStats
    ridge : float, optional
        ε > 0: use Σ_W + εI instead of Σ_W (on every epoch, so that a series stays
        comparable). Default none: a singular Σ_W makes every key ``None``.
    global_mean : {"samples", "classes"}
        μ_G of M̄ = M − μ_G 1ᵀ.

    Returns
    -------
    MetricValues
        ``snr_singular_values`` (list of C floats, descending; zeros appended when P < C),
        ``snr_min`` = ω_{C−1}, ``snr_max`` = ω_1, ``snr_ratio`` = ω_1/ω_{C−1},
        ``nc1_whitened`` = Σ_{j≤C−1} ω_j^{-2}, ``loss_ls_predicted`` = ½ Σ_{j≤C−1} 1/(C + ω_j²).
    """
    out = MetricValues()
    xp = stats.xp
    c, p, n = stats.num_classes, stats.num_features, stats.num_samples
    sigma = stats.sigma_w
    if ridge is not None:
        sigma = sigma + ridge * xp.eye(p, dtype=sigma.dtype, device=device(sigma))
    elif p > n - c:
        return _null(out, f"Σ_W is singular: P = {p} > N − C = {n - c} (rank Σ_W ≤ N − C); "
                          "use --ridge ε")
    lower, reason = checked_cholesky(sigma)
    if lower is None:
        if ridge is not None:
            return _null(out, f"Σ_W + εI is singular: {reason}")
        return _null(out, f"Σ_W is singular: {reason}; {_dead_features(stats)}use --ridge ε")
    mbar = stats.centred_means(global_mean).T  # (P, C)
    whitened = solve_lower(lower, mbar)  # L^{-1} M̄, (P, C)
    omega = np.sort(np.asarray(to_numpy(xp.linalg.svdvals(whitened)), dtype=np.float64))[::-1]
    if omega.size < c:
        omega = np.concatenate([omega, np.zeros(c - omega.size)])
    if ridge is not None:
        out.warnings.append(f"SNR computed with Σ_W + εI, ε = {ridge:g}")
    out.values["snr_singular_values"] = [float(v) for v in omega]
    nonzero = omega[: c - 1]
    top = float(omega[0])
    out.values["snr_min"] = float(nonzero[-1])
    out.values["snr_max"] = top
    tol = default_rtol(p, c) * top
    if top == 0.0 or float(nonzero[-1]) <= tol:
        why = ("all class means equal μ_G (M̄ = 0)" if top == 0.0 else
               f"the whitened class means have rank < C − 1 = {c - 1}"
               + (f" (P = {p} < C − 1)" if p < c - 1 else ""))
        out.set("snr_ratio", None, why)
        out.set("nc1_whitened", None, why)
    else:
        out.set("snr_ratio", top / float(nonzero[-1]))
        out.set("nc1_whitened", float(np.sum(1.0 / nonzero**2)))
    out.values["loss_ls_predicted"] = float(0.5 * np.sum(1.0 / (c + nonzero**2)))
    return out


def snr(features, labels, *, num_classes: int | None = None, ridge: float | None = None,
        global_mean: str = "samples") -> dict[str, Any]:
    """SNR keys (SPEC §2.4) of in-memory arrays (NumPy, CuPy or any array-API namespace).

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
    (3, True)
    """
    if ridge is not None and not (ridge > 0 and math.isfinite(ridge)):
        raise ValueError(f"ridge must be a positive finite number, got {ridge!r}")
    stats = class_stats(features, labels, num_classes)
    res = snr_from_stats(stats, ridge=ridge, global_mean=global_mean)
    out = dict(res.values)
    out["warnings"] = res.warnings
    return out
