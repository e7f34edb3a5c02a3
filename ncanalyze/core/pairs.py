"""Reductions over pairs of classes in square tiles: memory O(tile), never C×C.

The pairwise keys of docs/METRICS.md (cdnv, equiangle, maxangle, gnc2) and the normalised
Gram distances (ETF/OF distances, NC3) are sums over the entries of a C×C Gram matrix
``G = A Bᵀ`` of class vectors (rows of the C×P matrices A, B). Here G is produced one
``B × B`` tile at a time (``A_I B_Jᵀ``, a BLAS product), reduced at once in float64, and
dropped. Per-tile sums are added at the end with :func:`math.fsum`; variances merge per-tile
``(count, mean, M2)`` triples with Chan et al.'s pairwise formula. Results therefore agree to
float64 rounding whatever the tile size (tests/core/test_many_classes.py).

The Gram norms ‖G‖_F that normalise the distances come from P×P products
(‖A Bᵀ‖²_F = ⟨AᵀA, BᵀB⟩_F), so one pass over the tiles suffices.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Any, Callable

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import to_numpy

#: Default memory for one tile and its temporaries.
DEFAULT_TILE_BYTES = 64 * 2**20
#: float64 temporaries of tile size alive at once in a pass (Gram, cosines, kernel, mask …).
_TEMPS = 8


def tile_edge(tile_bytes: int | None, n: int) -> int:
    """Rows of a square tile that fits ``tile_bytes`` (with its temporaries), at most ``n``."""
    budget = DEFAULT_TILE_BYTES if tile_bytes is None else int(tile_bytes)
    return max(1, min(n, math.isqrt(max(1, budget // (8 * _TEMPS)))))


class Moments:
    """Count, mean and sum of squared deviations of values added tile by tile (Chan et al.)."""

    def __init__(self, xp):
        self.xp = xp
        self._parts: list = []

    def add(self, v) -> None:
        """Add a 1-D array of values (float64)."""
        xp = self.xp
        n = int(v.shape[0])
        if n == 0:
            return
        total = xp.sum(v)
        dev = v - total / n
        self._parts.append((n, total, xp.sum(dev * dev)))

    def result(self) -> tuple[int, float, float]:
        """``(count, mean, M2)``; M2 = Σ (v − mean)²."""
        if not self._parts:
            return 0, math.nan, math.nan
        xp = self.xp
        counts = np.array([p[0] for p in self._parts], dtype=np.float64)
        stacked = np.asarray(to_numpy(xp.stack([xp.stack([p[1], p[2]]) for p in self._parts])),
                             dtype=np.float64)
        sums, m2 = stacked[:, 0], stacked[:, 1]
        n = float(counts.sum())
        mean = math.fsum(sums) / n
        spread = counts * (sums / counts - mean) ** 2
        return int(n), mean, math.fsum(m2) + math.fsum(spread)


class Total:
    """A float64 sum over tiles (tile sums kept on the device, added with fsum at the end)."""

    def __init__(self, xp):
        self.xp = xp
        self._parts: list = []

    def add(self, value) -> None:
        self._parts.append(value)

    def result(self) -> float:
        if not self._parts:
            return 0.0
        xp = self.xp
        return math.fsum(np.asarray(to_numpy(xp.stack(self._parts)), dtype=np.float64).tolist())


class Minimum:
    """Smallest value over tiles."""

    def __init__(self, xp):
        self.xp = xp
        self._parts: list = []

    def add(self, v) -> None:
        if int(v.shape[0]):
            self._parts.append(self.xp.min(v))

    def result(self) -> float:
        if not self._parts:
            return math.inf
        return float(np.min(np.asarray(to_numpy(self.xp.stack(self._parts)))))


#: Called with the number of entries of each tile :func:`blocks` has yielded, once the caller
#: asks for the next one (a progress report of the class-pair passes; None: nothing). A context
#: variable, so that analyses in other threads do not share it.
TILE_PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar("ncanalyze_tile_progress",
                                                                   default=None)


def blocks(n: int, edge: int, symmetric: bool):
    """``(i0, i1, j0, j1)`` of the tiles of an n×n matrix: upper tiles only if symmetric."""
    hook = TILE_PROGRESS.get()
    for i0 in range(0, n, edge):
        i1 = min(n, i0 + edge)
        for j0 in range(i0 if symmetric else 0, n, edge):
            j1 = min(n, j0 + edge)
            yield i0, i1, j0, j1
            if hook is not None:
                hook((i1 - i0) * (j1 - j0))


def pair_values(xp, tile, diagonal: bool):
    """The entries of ``tile`` that are unordered pairs c < c′: the strict upper triangle of a
    diagonal tile, every entry of an off-diagonal one; 1-D."""
    if diagonal:
        r = xp.arange(tile.shape[0], device=device(tile))
        return tile[r[:, None] < r[None, :]]
    return xp.reshape(tile, (-1,))


class GramDistance:
    """‖G/‖G‖ − T‖_F accumulated tile by tile, T = Π/√(C−1) (``"etf"``) or I/√C (``"of"``).

    Parameters
    ----------
    xp : namespace
    norm : float
        ‖G‖_F (from a P×P product).
    size : int
        C.
    target : {"etf", "of"}
    """

    def __init__(self, xp, norm: float, size: int, target: str):
        self.xp, self.norm, self.size, self.target = xp, float(norm), int(size), target
        self._sum = Total(xp)
        if target == "etf":
            self._off = 1.0 / (size * math.sqrt(size - 1)) if size > 1 else math.nan
            self._diag = 1.0 / math.sqrt(size - 1) if size > 1 else math.nan
        elif target == "of":
            self._off, self._diag = 0.0, 1.0 / math.sqrt(size)
        else:
            raise ValueError(target)

    def add(self, tile, diagonal: bool, weight: float = 1.0) -> None:
        """Add one tile of G (``weight`` 2 for an off-diagonal tile of a symmetric G)."""
        if self.norm == 0.0:
            return
        xp = self.xp
        if is_numpy_namespace(xp):
            self._sum.add(weight * _numpy_sq_distance(tile, self.norm, self._off,
                                                      self._diag if diagonal else None))
            return
        e = tile / self.norm + self._off
        if diagonal:
            e = e - self._diag * xp.eye(tile.shape[0], dtype=tile.dtype, device=device(tile))
        self._sum.add(weight * xp.sum(e * e))

    def result(self) -> float | None:
        if self.norm == 0.0 or not math.isfinite(self.norm):
            return None
        return math.sqrt(max(self._sum.result(), 0.0))


def _numpy_sq_distance(tile: np.ndarray, norm: float, off: float, diag: float | None):
    """NumPy twin of the generic tile term Σ (G/‖G‖ + off − diag·I)²: in place, one BLAS dot."""
    e = np.multiply(tile, 1.0 / norm)
    e += off
    if diag is not None:
        e.flat[:: e.shape[1] + 1] -= diag
    flat = e.reshape(-1)
    return np.asarray(np.dot(flat, flat))


def gram_norm(a, b=None) -> float:
    """‖A Bᵀ‖_F (B = A when omitted) from P×P products: ‖AᵀA‖_F, or √⟨AᵀA, BᵀB⟩_F."""
    xp = array_namespace(a)
    ga = xp.matmul(a.T, a)
    if b is None:
        return float(xp.sqrt(xp.sum(ga * ga)))
    gb = xp.matmul(b.T, b)
    return math.sqrt(max(float(xp.sum(ga * gb)), 0.0))


# ---------------------------------------------------------------------- passes

_TINY = 1e-300


def pair_pass(x, *, tile_bytes=None, angles=True, variances=None, grams=(), scales=None):
    """One pass over the tiles of x xᵀ (x: (K, P) class vectors as rows).

    Parameters
    ----------
    x : array, shape (K, P)
    tile_bytes : int, optional
        Memory for one tile (:func:`tile_edge`).
    angles : bool
        Compute the cosine statistics of the unordered pairs (equiangle, maxangle, gnc2).
    variances : array, shape (K,), optional
        σ_c²: compute the CDNV with these (and count the coinciding rows).
    grams : sequence of (GramDistance, shift)
        Distances fed with each tile of x xᵀ, or ``shift(tile, i0, i1, j0, j1)`` of it.
    scales : ndarray, shape (K,), optional
        Host float64 size of the numbers each row was computed from (default ‖x_c‖): two
        rows closer than a few ulps of it coincide (:mod:`ncanalyze.core.coincide`).

    Returns
    -------
    dict
        ``equiangle``, ``maxangle``, ``gnc2``, ``gnc2_energy``, ``cdnv`` (present when
        computed; ``None`` when undefined), and with ``variances`` ``coincident`` (the number
        of pairs of equal rows) and ``coincident_examples`` (a few of them as row indices).
    """
    from .coincide import Coincidence

    xp = array_namespace(x)
    k = int(x.shape[0])
    sq = xp.sum(x * x, axis=1)
    norms = xp.sqrt(sq)
    norms_h = np.asarray(to_numpy(norms), dtype=np.float64)
    scales = norms_h if scales is None else np.asarray(scales, dtype=np.float64)
    angles = angles and k >= 2 and float(norms_h.min()) > 0.0
    cos_m, log_m = Moments(xp), Moments(xp)
    max_sum, ratio_sum = Total(xp), Total(xp)
    same_dir = Coincidence(x / norms[:, None], scales / norms_h) if angles else None
    same = Coincidence(x, scales) if variances is not None else None
    edge = tile_edge(tile_bytes, k)
    for i0, i1, j0, j1 in blocks(k, edge, symmetric=True):
        g = xp.matmul(x[i0:i1, ...], x[j0:j1, ...].T)
        diag = i0 == j0
        for dist, shift in grams:
            dist.add(g if shift is None else shift(g, i0, i1, j0, j1), diag,
                     1.0 if diag else 2.0)
        if angles:
            cos = g / (norms[i0:i1, None] * norms[None, j0:j1])
            c = pair_values(xp, cos, diag)
            cos_m.add(c)
            max_sum.add(xp.sum(xp.abs(c + 1.0 / (k - 1))))
            # ‖û_c − û_c′‖² = 2 − 2 cos, decided exactly where it cancels
            gap = pair_values(xp, same_dir.fix(2.0 - 2.0 * cos, 2.0, i0, j0, diag), diag)
            log_m.add(-0.5 * xp.log(xp.maximum(gap, _TINY)))
        if same is not None:
            sum_sq = sq[i0:i1, None] + sq[None, j0:j1]
            d = pair_values(xp, same.fix(sum_sq - 2.0 * g, sum_sq, i0, j0, diag), diag)
            v = pair_values(xp, variances[i0:i1, None] + variances[None, j0:j1], diag)
            ratio_sum.add(xp.sum(v / (2.0 * xp.maximum(d, _TINY))))
    out: dict[str, Any] = {}
    pairs = k * (k - 1) // 2
    if angles:
        n, mean, m2 = cos_m.result()
        out["equiangle"] = math.sqrt(m2 / (n - 1)) if n >= 2 else None
        out["maxangle"] = max_sum.result() / pairs
        ok = same_dir.count == 0
        n, mean, m2 = log_m.result()
        out["gnc2"] = m2 / n if ok else None
        out["gnc2_energy"] = mean if ok else None
    else:
        out.update(equiangle=None, maxangle=None, gnc2=None, gnc2_energy=None)
    if same is not None:
        out["cdnv"] = ratio_sum.result() / pairs if pairs and same.count == 0 else None
        out["coincident"] = same.count
        out["coincident_examples"] = same.examples
    return out


def cross_pass(a, b, grams, tile_bytes=None) -> None:
    """Feed every tile of A Bᵀ (A, B: (K, P)) to ``grams`` = [(GramDistance, shift)]."""
    xp = array_namespace(a)
    k = int(a.shape[0])
    edge = tile_edge(tile_bytes, k)
    for i0, i1, j0, j1 in blocks(k, edge, symmetric=False):
        g = xp.matmul(a[i0:i1, ...], b[j0:j1, ...].T)
        for dist, shift in grams:
            dist.add(g if shift is None else shift(g, i0, i1, j0, j1), i0 == j0)


def row_shift(v):
    """shift(tile) = tile + v_i (a rank-one term along rows)."""
    return lambda g, i0, i1, j0, j1: g + v[i0:i1, None]
