"""The NumPy fast paths of the two passes keep their guarantees.

* ``StatsAccumulator.row_norm_bounds`` (a by-product of the CDNV's per-row ‖z‖²) are upper
  bounds on ‖h_i‖, whatever the features' dtype, the products' dtype and the offset;
* with those bounds in place of freshly computed norms, the float32 decision pass still gives
  exactly the float64 counts on rows built on decision boundaries;
* the NumPy twin of the decision pass (``_numpy_decide32``: float32 scores, running top two
  over class tiles, the loop for narrow tiles) gives exactly the generic float64
  ``argmax_tiled`` on ties, NaN and inf rows, for every tile size.
"""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.core.decisions import (PredictionAccumulator, _numpy_decide32,
                                      _numpy_top2_loop, argmax_tiled)
from ncanalyze.core.accumulator import StatsAccumulator


def _accumulate(h, y, c, compute_dtype, chunk):
    acc = StatsAccumulator(c, h.shape[1], np, compute_dtype, keep_row_norms=True)
    for s in range(0, len(y), chunk):
        acc.update(h[s:s + chunk], y[s:s + chunk])
    stats = acc.finalize()
    return stats, acc.row_norm_bounds()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("compute_dtype", ["float32", "float64"])
@pytest.mark.parametrize("offset", [0.0, 1e3, -5e4])
def test_row_norm_bounds_are_upper_bounds(dtype, compute_dtype, offset):
    rng = np.random.default_rng(2)
    c, p, n = 5, 37, 3000
    y = rng.integers(0, c, n)
    means = rng.normal(size=(c, p)) * 3 + offset
    scale = rng.choice([1e-6, 1.0, 1e2], size=(n, 1))  # some rows far from their reference
    h = (means[y] + scale * rng.normal(size=(n, p))).astype(dtype)
    h[7] = 0.0
    _, bounds = _accumulate(h, y, c, compute_dtype, 700)
    true = np.linalg.norm(h.astype(np.float64), axis=1)
    assert bounds.shape == (n,)
    assert np.all(bounds >= true)
    # ... and not uselessly loose: ‖h − ref‖ + ‖ref‖ ≤ 3‖h‖ + 2‖h − ref‖ for these rows.
    assert np.median(bounds / np.maximum(true, 1e-30)) < 3


def test_row_norm_bounds_are_not_kept_unless_asked():
    h = np.ones((10, 3), dtype=np.float32)
    acc = StatsAccumulator(1, 3, np, "float32")
    acc.update(h, np.zeros(10, dtype=np.int64))
    acc.finalize()
    assert acc.row_norm_bounds() is None


def _near_ties(c, p, n, seed):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(c, p)) + 1e3
    a, b = rng.integers(0, c, n), rng.integers(0, c, n)
    t = 0.5 + 1e-7 * rng.normal(size=(n, 1))
    h32 = (means[a] * t + means[b] * (1 - t) + 1e-6 * rng.normal(size=(n, p))).astype(np.float32)
    y = rng.integers(0, c, n)
    w = rng.normal(size=(c, p))
    w[1] = w[0] * (1 + 1e-7)
    w[c - 1] = w[c - 2]  # exact ties: the lowest index must win
    bias = rng.normal(size=c)
    bias[c - 1] = bias[c - 2]
    return means, h32, y, w, bias


def _float64_counts(means, h32, y, w, bias):
    h64 = h32.astype(np.float64)
    o = means.mean(0)
    m = means - o
    ncc = np.argmax((h64 - o) @ m.T - 0.5 * np.sum(m * m, axis=1), axis=1)
    pred = np.argmax(h64 @ w.T + bias, axis=1)
    return int(np.sum(ncc == y)), int(np.sum(pred == y)), int(np.sum(pred != ncc))


@pytest.mark.parametrize("c", [6, 40])  # top-2 loop and partition path
def test_decisions_exact_with_norm_bounds_from_the_statistics_pass(c):
    means, h32, y, w, bias = _near_ties(c, 48, 6000, seed=11)
    stats, bounds = _accumulate(h32, y, c, "float32", 1000)
    fast = PredictionAccumulator(means, w, bias)
    for s in range(0, len(y), 1000):
        fast.update(h32[s:s + 1000], y[s:s + 1000], bounds[s:s + 1000])
    assert fast.rescored_rows > 0
    assert (fast.ncc_correct, fast.classifier_correct, fast.mismatch) == _float64_counts(
        means, h32, y, w, bias)


def test_top2_loop_ties_and_nan():
    rng = np.random.default_rng(4)
    c, n = 7, 500
    s = rng.integers(-3, 4, size=(c, n)).astype(np.float32)  # many exact ties
    s[:, 10] = np.nan
    s[3, 11] = np.nan
    best, first, second = _numpy_top2_loop(s)
    ok = np.isfinite(s).all(axis=0)
    srt = np.sort(s[:, ok], axis=0)
    np.testing.assert_array_equal(best[ok], np.argmax(s[:, ok], axis=0))
    np.testing.assert_array_equal(first[ok], srt[-1])
    np.testing.assert_array_equal(second[ok], srt[-2])
    assert np.isnan(first[10]) and np.isnan(first[11])


def _tricky_rows(c, p, n, seed):
    """Rows and a rule with exact ties, near ties, NaN, ±inf and float32-overflowing rows."""
    rng = np.random.default_rng(seed)
    v = rng.integers(-2, 3, size=(c, p)).astype(np.float64)
    v[5] = v[2]  # identical classes: exact ties, the lower index must win
    k = rng.integers(-2, 3, size=c).astype(np.float64)
    k[5] = k[2]
    x = rng.integers(-3, 4, size=(n, p)).astype(np.float32)
    x[3] = np.nan
    x[4, 0] = np.inf
    x[6, 1] = -np.inf
    x[7] = 3e38  # scores overflow float32, not float64
    return v, k, x


@pytest.mark.parametrize("c", [7, 40, 300])
@pytest.mark.parametrize("tile_bytes", [1, 5000, None])
def test_numpy_twin_equals_generic_argmax(c, tile_bytes):
    from ncanalyze.core.decisions import _Numpy32, _Rule

    v, k, x = _tricky_rows(c, 6, 400, seed=c)

    def exact(x64, c0, c1):
        with np.errstate(invalid="ignore"):  # inf · 0 in the ±inf rows
            return x64 @ v[c0:c1].T + k[c0:c1]

    rule = _Rule(v, k, exact)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        dense = np.argmax(x64 @ v.T + k, axis=1)
    want = argmax_tiled(rule, x64, 3)
    rule.np32 = _Numpy32(v, k)
    got, rescored = _numpy_decide32(rule, x, None, tile_bytes)
    np.testing.assert_array_equal(np.asarray(want), dense)
    np.testing.assert_array_equal(got, dense)
    assert rescored >= 4  # the NaN/inf rows at least


@pytest.mark.parametrize("n", [1, 5, 64, 65, 200, 257])
def test_triangular_solves(xp, n):
    """The blocked solve (NumPy, array-api-strict) and the libraries' own (torch, CuPy)."""
    from ncanalyze.core.linalg import cholesky_solve, solve_lower

    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 2 * n + 3))
    spd = a @ a.T / a.shape[1] + 1e-2 * np.eye(n)
    b = rng.normal(size=(n, 3))
    lower = np.linalg.cholesky(spd)
    got_l = solve_lower(xp.asarray(lower), xp.asarray(b))
    got_c = cholesky_solve(xp.asarray(lower), xp.asarray(b))
    assert xp.owns(got_l) and xp.owns(got_c)
    np.testing.assert_allclose(lower @ xp.to_numpy(got_l), b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spd @ xp.to_numpy(got_c), b, rtol=0, atol=1e-11)
