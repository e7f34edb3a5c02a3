"""Dense linear algebra shared by the formulas: rank tolerance, checked Cholesky, triangular
solves. The library-specific parts (how a failed Cholesky factorisation is signalled, native
triangular solvers) are in :mod:`ncanalyze.backend`.

Rules (docs/METRICS.md, "Numerics"): pseudo-inverses are restricted to a numerical rank, and
systems are solved through a Cholesky factor, never by forming an inverse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace

from ..backend import cholesky, native_solve_lower, to_numpy

#: A symmetric matrix is treated as singular when its smallest squared Cholesky pivot is below
#: this fraction of the largest: beyond a condition number of ~1e6/ε, float64 results along the
#: weakest directions cannot meet 1e-6 relative accuracy (docs/METRICS.md, "Numerics").
PIVOT_RTOL = 1e6 * float(np.finfo(np.float64).eps)


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
    lower = cholesky(a)  # each library signals failure its own way
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

    Two triangular solves (:func:`solve_lower`); Lᵀ x = y
    is solved as the lower-triangular system of the reversed unknowns.
    """
    xp = array_namespace(lower, b)
    y = solve_lower(lower, b)
    rev = xp.flip(xp.flip(lower, axis=0), axis=1).T  # J Lᵀ J, lower triangular
    return xp.flip(solve_lower(rev, xp.flip(y, axis=0)), axis=0)


#: Below this size the generic :func:`solve_lower` hands the triangular system to
#: ``xp.linalg.solve``.
TRIANGULAR_LEAF = 64


def solve_lower(lower, b):
    """L^{-1} b for a lower-triangular ``lower`` (n, n) and ``b`` (n, k).

    PyTorch and CuPy have triangular solvers (``torch.linalg.solve_triangular``,
    ``cupyx.scipy.linalg.solve_triangular``; :func:`ncanalyze.backend.native_solve_lower`).
    The array API has none, and ``xp.linalg.solve`` would LU-factorise L (as costly as a
    Cholesky factorisation), so other namespaces use blocked forward substitution:
    L = [[L₁₁, 0], [L₂₁, L₂₂]] gives X₁ = L₁₁^{-1} b₁, X₂ = L₂₂^{-1} (b₂ − L₂₁ X₁),
    recursively, with ``xp.linalg.solve`` on the small diagonal blocks: O(n²k) work in matrix
    products (no SciPy, whose separate BLAS would compete with NumPy's for the cores).
    """
    native = native_solve_lower(lower, b)
    if native is not None:
        return native
    return _blocked_solve_lower(array_namespace(lower, b), lower, b)


def _blocked_solve_lower(xp, lower, b):
    n = int(lower.shape[0])
    if n <= TRIANGULAR_LEAF:
        return xp.linalg.solve(lower, b)
    h = n // 2
    x1 = _blocked_solve_lower(xp, lower[:h, :h], b[:h, ...])
    x2 = _blocked_solve_lower(xp, lower[h:, h:], b[h:, ...] - xp.matmul(lower[h:, :h], x1))
    return xp.concat([x1, x2], axis=0)
