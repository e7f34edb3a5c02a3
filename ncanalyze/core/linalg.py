"""Dense linear algebra shared by the formulas: rank tolerance, checked Cholesky, triangular
solves.

Rules (docs/METRICS.md, "Numerics"): pseudo-inverses are restricted to a numerical rank, and
systems are solved through a Cholesky factor, never by forming an inverse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace

from .stats import to_host

#: A symmetric matrix is treated as singular when its smallest squared Cholesky pivot is below
#: this fraction of the largest: beyond a condition number of ~1e6/ε, float64 results along the
#: weakest directions cannot meet 1e-6 relative accuracy (docs/METRICS.md, "Numerics").
PIVOT_RTOL = 1e6 * float(np.finfo(np.float64).eps)
#: Below this size ``solve_lower`` hands the triangular system to ``xp.linalg.solve``.
_TRIANGULAR_LEAF = 64


def default_rtol(num_features: int, num_classes: int) -> float:
    """rtol of the numerical rank of M̄: ``max(P, C) · ε_float64`` (docs/METRICS.md)."""
    return max(num_features, num_classes) * float(np.finfo(np.float64).eps)


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
    try:
        lower = xp.linalg.cholesky(a)
    except ValueError:  # numpy / array-api-strict raise LinAlgError (a ValueError)
        return None, "the Cholesky factorisation failed (not positive definite)"
    pivots = np.asarray(to_host(xp.linalg.diagonal(lower)), dtype=np.float64)
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


def solve_lower(lower, b):
    """L^{-1} b for a lower-triangular ``lower`` (n, n) and ``b`` (n, k).

    The array API has no triangular solve, and ``xp.linalg.solve`` would LU-factorise L
    (as costly as a Cholesky factorisation). Blocked forward substitution instead:
    L = [[L₁₁, 0], [L₂₁, L₂₂]] gives X₁ = L₁₁^{-1} b₁, X₂ = L₂₂^{-1} (b₂ − L₂₁ X₁), recursively,
    with ``xp.linalg.solve`` on the small diagonal blocks: O(n²k) work in matrix products
    (no SciPy, whose separate BLAS would compete with NumPy's for the cores).
    """
    xp = array_namespace(lower, b)
    n = int(lower.shape[0])
    if n <= _TRIANGULAR_LEAF:
        return xp.linalg.solve(lower, b)
    h = n // 2
    x1 = solve_lower(lower[:h, :h], b[:h, ...])
    x2 = solve_lower(lower[h:, h:], b[h:, ...] - xp.matmul(lower[h:, :h], x1))
    return xp.concat([x1, x2], axis=0)


def cholesky_solve(lower, b):
    """a^{-1} b given the Cholesky factor ``lower`` of ``a`` = L Lᵀ (n, n); ``b`` (n, k).

    Two triangular solves (:func:`solve_lower`); Lᵀ x = y is solved as the lower-triangular
    system of the reversed unknowns.
    """
    xp = array_namespace(lower, b)
    y = solve_lower(lower, b)
    rev = xp.flip(xp.flip(lower, axis=0), axis=1).T  # J Lᵀ J, lower triangular
    return xp.flip(solve_lower(rev, xp.flip(y, axis=0)), axis=0)
