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

from .linalg import PIVOT_RTOL, checked_cholesky, default_rtol, solve_lower
from .stats import ClassStats, class_stats, to_host
from .values import MetricValues

#: Keys of the ``snr`` command, in output order.
SNR_KEYS = ("snr_singular_values", "snr_min", "snr_max", "snr_ratio", "nc1_whitened",
            "loss_ls_predicted")


def _dead_features(stats: ClassStats) -> str:
    """'k features have zero within-class variance (dead units?), e.g. i, j; ' or a hint."""
    xp = stats.xp
    var = np.asarray(to_host(xp.linalg.diagonal(stats.within_scatter)), dtype=np.float64)
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
        sigma = sigma + ridge * xp.eye(p, dtype=sigma.dtype)
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
    omega = np.sort(np.asarray(to_host(xp.linalg.svdvals(whitened)), dtype=np.float64))[::-1]
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
