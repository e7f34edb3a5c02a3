"""Whether two class vectors coincide, decided from their rows, never from the sign of a
cancellation (docs/METRICS.md, "Coincident class means").

The pairwise keys take ‖x_c − x_c′‖² from a Gram tile as ‖x_c‖² + ‖x_c′‖² − 2 x_c·x_c′. That
difference cancels: its rounding error is up to ~2(P + 4)·ε·(‖x_c‖² + ‖x_c′‖²), so for two
equal rows it comes out as ±ε-sized noise, and a key defined only for distinct rows (CDNV,
GNC2) would be a number at one epoch and null at the next. Here every entry of a tile within
``CANDIDATE_FACTOR`` of that rounding bound is a *candidate*: its distance is recomputed
directly from the rows (‖x_c − x_c′‖², no cancellation; exactly 0 for equal rows), and the
pair *coincides* when that
distance is at most ``COINCIDE_RTOL · (s_c + s_c′)``, s the scale the rows were computed at (the
norm of the uncentred class mean: two means of identical rows agree to a few ulps of it).
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, device

from ..backend import to_numpy

EPS = float(np.finfo(np.float64).eps)
#: Two rows coincide when ‖x_c − x_c′‖ ≤ COINCIDE_RTOL · (s_c + s_c′): class means of the same
#: rows, summed in different orders, differ by a few ulps of ‖μ_c‖.
COINCIDE_RTOL = 16 * EPS
#: Entries within this factor of their rounding bound are recomputed from the rows: the
#: Gram-based value keeps at least ~1e-6 relative accuracy above it.
CANDIDATE_FACTOR = 1e6


class Coincidence:
    """Checks the squared distances of one pass over the tiles of x xᵀ and counts the pairs of
    rows that coincide.

    Parameters
    ----------
    rows : array, shape (K, P)
        The vectors whose squared distances the tiles hold.
    scales : ndarray, shape (K,)
        s_c, host float64: the size of the numbers row c was computed from.
    examples : int
        How many coinciding pairs to keep (row indices), for the warning.
    """

    def __init__(self, rows, scales: np.ndarray, examples: int = 4):
        self.rows = rows
        self.scales = np.asarray(scales, dtype=np.float64)
        self.keep = examples
        self.count = 0
        self.examples: list[tuple[int, int]] = []
        self.bound = CANDIDATE_FACTOR * 2.0 * (int(rows.shape[1]) + 4) * EPS

    def fix(self, values, sum_sq, i0: int, j0: int, diagonal: bool):
        """The tile ``values`` of squared distances (rows i0…, columns j0…) with every candidate
        entry recomputed from the rows; coinciding pairs are counted and get the placeholder
        1.0 (a key that needs distinct rows is null once any pair coincides).

        Parameters
        ----------
        values : array, shape (a, b)
            ‖x_i‖² + ‖x_j‖² − 2 x_i·x_j as computed.
        sum_sq : array, shape (a, b)
            ‖x_i‖² + ‖x_j‖² (sets the rounding bound of ``values``).
        """
        xp = array_namespace(values)
        dev = device(values)
        mask = values <= self.bound * sum_sq
        if diagonal:
            r = xp.arange(values.shape[0], device=dev)
            mask = mask & (r[:, None] < r[None, :])
        if not bool(xp.any(mask)):
            return values
        host = np.asarray(to_numpy(mask), dtype=bool)
        ii, jj = np.nonzero(host)
        gi, gj = ii + i0, jj + j0
        a = xp.take(self.rows, xp.asarray(gi, device=dev), axis=0)
        b = xp.take(self.rows, xp.asarray(gj, device=dev), axis=0)
        direct = np.asarray(to_numpy(xp.sum((a - b) ** 2, axis=1)), dtype=np.float64)
        same = direct <= (COINCIDE_RTOL * (self.scales[gi] + self.scales[gj])) ** 2
        self.count += int(same.sum())
        for p, q in zip(gi[same][: self.keep - len(self.examples)],
                        gj[same][: self.keep - len(self.examples)]):
            self.examples.append((int(p), int(q)))
        fixed = np.zeros(host.shape)
        fixed[ii, jj] = np.where(same, 1.0, direct)
        return xp.where(xp.asarray(host, device=dev),
                        xp.asarray(fixed, dtype=values.dtype, device=dev), values)
