"""Coincident class means decided from the rows, not from the sign of a cancellation
(docs/METRICS.md, "Coincident class means").

In language-model dumps many classes (tokens seen after one context only) have means equal to
another class's. The Gram-based ‖μ_a‖² + ‖μ_b‖² − 2 μ_a·μ_b of such a pair is ±ε-sized noise;
before the exact decision it came out −ε at some epochs and +ε at others, so ``gnc2`` flipped
between null and a number and ``cdnv`` was printed as a (meaningless) number.
"""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.core.metrics import nc_metrics
from tests.reference import assert_close, reference_metrics

KEYS = ("cdnv", "coincident_pairs", "gnc2", "gnc2_energy", "equiangle_means", "nc1")


def _duplicated(seed, offset, p=64, c=7, n=5):
    """Class 5 holds the rows of class 2 in another order, class 6 those of class 3: their
    means coincide in exact arithmetic (and to an ulp in float64); offset moves every feature
    far from 0. Before the exact decision, cdnv/gnc2 of these twelve cases came out as numbers
    for 2 of them on NumPy (P = 64 and 200) and null for the others."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(c), n)
    h = rng.normal(size=(c, p))[y] + rng.normal(size=(y.size, p)) + offset
    h[y == 5] = np.roll(h[y == 2], 1, axis=0)
    h[y == 6] = h[y == 3]
    return h, y


@pytest.mark.parametrize("tile_bytes", [1, None])
def test_identical_means_are_counted_and_make_cdnv_gnc2_null_at_every_epoch(xp, tile_bytes):
    """Twelve 'epochs' with different offsets: the decision is the same every time, on every
    array library and tile size; the other keys agree with the reference."""
    for epoch, offset in enumerate([0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4,
                                    3e4, 1e5]):
        h, y = _duplicated(epoch, offset)
        got = nc_metrics(xp.asarray(h), xp.asarray(y), tile_bytes=tile_bytes)
        assert got["coincident_pairs"] == 2, (epoch, offset)
        assert got["cdnv"] is None and got["gnc2"] is None and got["gnc2_energy"] is None
        note = [w for w in got["warnings"] if "identical means" in w]
        assert len(note) == 1 and "2 = 5" in note[0] and "3 = 6" in note[0], note
        want = reference_metrics(h, y)
        assert_close(got, want, rtol=1e-6, atol=1e-9,
                     keys=("coincident_pairs", "cdnv", "gnc2", "equiangle_means"))


def test_means_of_repeated_rows_with_different_counts_coincide():
    """(3 copies of v)/3 and (5 copies of v)/5 differ by an ulp in float64: still identical."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=4) * 1e3 + 0.1
    h = np.concatenate([rng.normal(size=(6, 4)), np.tile(v, (3, 1)), np.tile(v, (5, 1))])
    y = np.array([0] * 6 + [1] * 3 + [2] * 5)
    got = nc_metrics(h, y)
    assert got["coincident_pairs"] == 1 and got["cdnv"] is None


def test_close_but_distinct_means_are_measured_exactly():
    """Means ~2.6e-6 apart at ‖μ‖ ≈ 2e4: the Gram-based squared distance (7e-12) is all
    rounding (error ~1e-6), the direct one keeps ~ε‖μ‖/‖Δμ‖ ≈ 1e-6 relative accuracy; cdnv
    matches the reference that differences the rows."""
    rng = np.random.default_rng(2)
    p, n = 5, 4
    base = rng.normal(size=(3, p)) + 1e4
    base[2] = base[1] + 1e-6 * np.array([1, -1, 2, 0, 1])
    y = np.repeat(np.arange(3), n)
    h = base[y] + 1e-6 * rng.normal(size=(y.size, p))
    got = nc_metrics(h, y)
    want = reference_metrics(h, y)
    assert got["coincident_pairs"] == 0
    assert got["cdnv"] == pytest.approx(want["cdnv"], rel=1e-5)


def test_coincident_class_ids_are_the_run_s_not_the_rows():
    """With absent classes the warning names class indices of the run."""
    h, y = _duplicated(0, 1.0)
    y = y * 10  # classes 0, 10, …, 60; 20 = 50 and 30 = 60 coincide
    got = nc_metrics(h, y, num_classes=61)
    note = [w for w in got["warnings"] if "identical means" in w][0]
    assert "20 = 50" in note and "30 = 60" in note
