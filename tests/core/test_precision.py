"""Accuracy (docs/PERFORMANCE.md) of the fast arithmetic: float32 features in deep collapse (NC1 ≈ 1e-8).

The statistics pass may run its products in float32 (``dtype="float32"``) and the per-sample
pass always scores float32 features in float32 first; every value must stay within 1e-6
relative (or 1e-9 absolute) of a float64 computation, and the per-sample decisions must be
exactly those of float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.analysis import Analysis

from ncanalyze.settings import Settings
from ncanalyze.core.decisions import PredictionAccumulator

from tests.factories import labels, simplex_etf, write_run
from tests.reference import assert_close, reference_metrics

FLOAT_KEYS = ("nc1", "cdnv", "equinorm_means", "equiangle_means", "maxangle_means",
              "etf_distance_means", "of_distance_means", "equinorm_weights",
              "equiangle_weights", "etf_distance_weights", "of_distance_weights",
              "self_duality", "nc3_etf", "nc3_of", "bias_collapse", "accuracy", "ncc_accuracy",
              "ncc_mismatch")


def _deep_collapse(tmp_path, C=10, P=64, per_class=2000, noise=1.5e-4, offset=3.0, seed=3):
    """Float32 features: a scaled simplex ETF plus a large common offset plus tiny noise.

    20 000 rows: two 16384-row accumulation blocks, so the float64 sum across blocks is used.
    """
    rng = np.random.default_rng(seed)
    y = labels(C, per_class, rng)
    means = 4.0 * simplex_etf(C, P, rng) + offset + 0.5 * rng.normal(size=P)
    h = (means[y] + noise * rng.normal(size=(y.size, P))).astype(np.float32)
    w = (means - means.mean(0)) * 0.7 + 1e-3 * rng.normal(size=(C, P))
    b = -w @ means.mean(0) + 1e-4 * rng.normal(size=C)
    path = write_run(tmp_path / "deep.h5", y, [h], [w], [b], dtype=np.float32)
    return path, h, y, w, b


def _report(path, dtype):
    s = Settings(("metrics", "decompose", "snr"), backend="numpy", dtype=dtype, workers=1)
    with Analysis(path, s) as a:
        return next(iter(a)).values


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    path, h, y, w, b = _deep_collapse(tmp_path_factory.mktemp("deep"))
    ref = reference_metrics(h.astype(np.float64), y, w, b)
    return path, ref


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deep_collapse_metrics_match_float64(deep, dtype):
    path, ref = deep
    assert 1e-9 < ref["nc1"] < 1e-7  # really deep collapse
    got = _report(path, dtype)
    assert got["nc1_rank"] == ref["nc1_rank"] == 9
    assert_close(got, ref, rtol=1e-6, atol=1e-9, keys=FLOAT_KEYS)


def test_float32_products_match_float64_products_for_every_report_key(deep):
    """decompose and snr keys too: float32 products vs float64 products of the same file."""
    path, _ = deep
    a, b = _report(path, "float32"), _report(path, "float64")
    assert a.keys() == b.keys()
    for k, v in b.items():
        if isinstance(v, float):
            assert abs(a[k] - v) <= 1e-9 + 1e-6 * abs(v), f"{k}: {a[k]!r} vs {v!r}"
        elif isinstance(v, list):
            np.testing.assert_allclose(a[k], v, rtol=1e-6, atol=1e-9, err_msg=k)


def test_decisions_exact_with_near_ties():
    """Rows near decision boundaries, far from the origin: the float32 scores alone would
    flip some of them; the float64 re-scoring makes every count equal to float64's."""
    rng = np.random.default_rng(11)
    C, P, n = 6, 48, 6000
    means = rng.normal(size=(C, P)) + 1e3
    a, b = rng.integers(0, C, n), rng.integers(0, C, n)
    t = 0.5 + 1e-7 * rng.normal(size=(n, 1))  # on the bisector of two class means, ± tiny
    h32 = (means[a] * t + means[b] * (1 - t) + 1e-6 * rng.normal(size=(n, P))).astype(np.float32)
    y = rng.integers(0, C, n)
    w = rng.normal(size=(C, P))
    w[1] = w[0] * (1 + 1e-7)  # nearly tied classifier rows too
    bias = rng.normal(size=C)

    fast = PredictionAccumulator(means, w, bias)
    for s in range(0, n, 1000):
        fast.update(h32[s:s + 1000], y[s:s + 1000])
    assert fast.rescored_rows > 0

    h64 = h32.astype(np.float64)
    o = means.mean(0)
    m = means - o
    ncc = np.argmax((h64 - o) @ m.T - 0.5 * np.sum(m * m, axis=1), axis=1)
    pred = np.argmax(h64 @ w.T + bias, axis=1)
    assert fast.ncc_correct == int(np.sum(ncc == y))
    assert fast.classifier_correct == int(np.sum(pred == y))
    assert fast.mismatch == int(np.sum(pred != ncc))


def test_float16_features_use_the_exact_decisions(tmp_path):
    rng = np.random.default_rng(5)
    C, P = 4, 8
    y = labels(C, 300, rng)
    means = rng.normal(size=(C, P))
    h = (means[y] + 0.8 * rng.normal(size=(y.size, P))).astype(np.float16)
    w = means + 0.3 * rng.normal(size=(C, P))
    path = write_run(tmp_path / "f16.h5", y, [h], [w], None, dtype=np.float16)
    ref = reference_metrics(h.astype(np.float64), y, w)
    for dtype in ("float32", "float64"):
        assert_close(_report(path, dtype), ref, rtol=1e-6, atol=1e-9, keys=FLOAT_KEYS)


def test_many_classes_sparse_class_sums(tmp_path):
    """C = 40 > 16 classes with P = 8: the class sums take the sparse one-hot path."""
    rng = np.random.default_rng(9)
    C, P = 40, 8
    y = labels(C, 30, rng)
    means = rng.normal(size=(C, P)) * 3 + 10.0
    h = (means[y] + 1e-3 * rng.normal(size=(y.size, P))).astype(np.float32)
    w = means - means.mean(0) + 0.01 * rng.normal(size=(C, P))
    path = write_run(tmp_path / "many.h5", y, [h], [w], None, dtype=np.float32)
    ref = reference_metrics(h.astype(np.float64), y, w)
    for dtype in ("float32", "float64"):
        assert_close(_report(path, dtype), ref, rtol=1e-6, atol=1e-9, keys=FLOAT_KEYS)
