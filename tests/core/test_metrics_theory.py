"""Exact answers from theory: planted simplex ETF, orthogonal frame, UFM minimizer; and the
invariances every NC metric must have (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncanalyze.core.metrics import nc_metrics
from ncanalyze.core.values import METRIC_KEYS

from tests.factories import labels, orthogonal_frame, simplex_etf
from tests.reference import assert_close

EXACT = 1e-10


def test_planted_simplex_etf_is_exactly_collapsed(rng, xp):
    C, P = 6, 10
    etf = simplex_etf(C, P, rng) * 4.0
    offset = rng.normal(size=P) * 5
    y = labels(C, 20, rng)
    H = etf[y] + offset  # no within-class spread: NC1 = 0
    W = etf * 0.7  # self-dual classifier
    b = -(W @ offset)  # bias cancels the global mean: bias collapse = 0
    out = nc_metrics(*map(xp.asarray, (H, y, W, b)))
    for key in ("nc1", "cdnv", "equinorm_means", "equiangle_means", "maxangle_means",
                "etf_distance_means", "equinorm_weights", "equiangle_weights",
                "maxangle_weights", "etf_distance_weights", "self_duality", "nc3_etf",
                "bias_collapse", "ncc_mismatch"):
        assert abs(out[key]) < EXACT, (key, out[key])
    assert out["accuracy"] == 1.0 and out["ncc_accuracy"] == 1.0
    assert out["nc1_rank"] == C - 1
    # an ETF is not an orthogonal frame
    assert out["of_distance_weights"] > 0.1


def test_planted_orthogonal_frame(rng, xp):
    C, P = 5, 8
    of = orthogonal_frame(C, P, rng) * 3.0
    y = labels(C, 15, rng)
    H = of[y] + 1e-3 * rng.normal(size=(y.size, P))
    W = of * 2.0
    out = nc_metrics(*map(xp.asarray, (H, y, W)))
    assert out["of_distance_means"] < 1e-3
    assert abs(out["of_distance_weights"]) < EXACT
    assert out["nc3_of"] < 1e-3
    assert out["nc1"] < 1e-5
    # uncentred OF means: the centred means of an OF do form a simplex ETF
    assert out["etf_distance_means"] < 1e-3
    assert out["etf_distance_weights"] > 0.1


def ufm_minimizer(C, n, P, lam_w, lam_h, rng):
    """Closed-form global minimizer of the bias-free MSE UFM (balanced).

    min ½·(1/N)‖WH − Y‖² + λ_W/2‖W‖² + λ_H/2‖H‖² over W (C×P), H (P×N). With an orthonormal
    R (P×C), W = a Rᵀ, H = b R Y: the loss is ½(ab − 1)² + λ_W C a²/2 + λ_H N b²/2, minimized
    at ab = 1 − √(C N λ_W λ_H), λ_W C a² = λ_H N b².
    """
    N = C * n
    t = 1 - np.sqrt(C * N * lam_w * lam_h)
    a = np.sqrt(t * (1 - t) / (lam_w * C))
    b = np.sqrt(t * (1 - t) / (lam_h * N))
    R = orthogonal_frame(C, P, rng).T
    y = np.repeat(np.arange(C), n)
    Y = np.eye(C)[:, y]
    return a * R.T, b * R @ Y, y, Y


def test_closed_form_bias_free_mse_minimizer_is_an_orthogonal_frame(rng, xp):
    C, n, P, lam_w, lam_h = 4, 10, 7, 1e-3, 1e-4
    W, H, y, Y = ufm_minimizer(C, n, P, lam_w, lam_h, rng)
    N = C * n
    # it is a critical point of the full objective (not only of the two scales)
    R = W @ H - Y
    grad_w = R @ H.T / N + lam_w * W
    grad_h = W.T @ R / N + lam_h * H
    assert np.abs(grad_w).max() < 1e-12 and np.abs(grad_h).max() < 1e-12
    out = nc_metrics(xp.asarray(np.ascontiguousarray(H.T)), xp.asarray(y), xp.asarray(W))
    for key in ("nc1", "of_distance_means", "of_distance_weights", "nc3_of",
                "equinorm_means", "equinorm_weights"):
        assert abs(out[key]) < EXACT, (key, out[key])
    # W is dual to the *uncentred* means; self-duality (centred M̄, Papyan et al.) is not 0
    assert out["self_duality"] > 0.1
    assert out["accuracy"] == 1.0


# ---------------------------------------------------------------- invariances (hypothesis)

SCALE_INVARIANT = [k for k in METRIC_KEYS if k != "bias_collapse"]


@st.composite
def problems(draw):
    C = draw(st.integers(2, 6))
    P = draw(st.integers(2, 9))
    counts = draw(st.lists(st.integers(2, 12), min_size=C, max_size=C))
    seed = draw(st.integers(0, 2**31 - 1))
    noise = draw(st.sampled_from([1e-3, 0.1, 1.0, 3.0]))
    rng = np.random.default_rng(seed)
    y = labels(C, counts, rng)
    means = rng.normal(size=(C, P)) * 2
    H = means[y] + noise * rng.normal(size=(y.size, P)) + rng.normal(size=P)
    W = rng.normal(size=(C, P))
    b = rng.normal(size=C)
    return H, y, W, b, rng


def _on(xp):
    """nc_metrics of NumPy inputs computed on ``xp``'s library and device."""
    def run(*arrays, **kw):
        return nc_metrics(*(xp.asarray(a) for a in arrays), **kw)

    return run


def _compare(expected, actual, keys, rtol=1e-7):
    assert_close(actual, expected, rtol=rtol, atol=1e-9, keys=keys)


@given(problems())
def test_invariant_under_sample_permutation(xp, problem):
    H, y, W, b, rng = problem
    nc_metrics = _on(xp)
    perm = rng.permutation(y.size)
    _compare(nc_metrics(H, y, W, b), nc_metrics(H[perm], y[perm], W, b), METRIC_KEYS)


@given(problems())
def test_invariant_under_class_relabelling(xp, problem):
    H, y, W, b, rng = problem
    nc_metrics = _on(xp)
    C = W.shape[0]
    perm = rng.permutation(C)  # class c becomes perm[c]
    inv = np.argsort(perm)
    a = nc_metrics(H, y, W, b)
    r = nc_metrics(H, perm[y], W[inv], b[inv])
    # argmax/argmin ties are broken by index, so only exact-tie-free data is compared
    _compare(a, r, METRIC_KEYS)


@given(problems())
def test_invariant_under_feature_rotation(xp, problem):
    H, y, W, b, rng = problem
    nc_metrics = _on(xp)
    P = H.shape[1]
    Q, _ = np.linalg.qr(rng.normal(size=(P, P)))
    _compare(nc_metrics(H, y, W, b), nc_metrics(H @ Q, y, W @ Q, b), METRIC_KEYS, rtol=1e-6)


@given(problems(), st.sampled_from([1e-3, 0.5, 7.0, 1e4]))
def test_scale_invariance(xp, problem, scale):
    H, y, W, b, _ = problem
    nc_metrics = _on(xp)
    a = nc_metrics(H, y, W, b)
    s = nc_metrics(H * scale, y, W, b * scale)
    _compare(a, s, SCALE_INVARIANT, rtol=1e-6)
    assert s["bias_collapse"] == pytest.approx(scale * a["bias_collapse"], rel=1e-6)


def test_undefined_values_are_null_with_a_reason():
    # class 1's mean equals μ_G: its cosines are 0/0
    y = np.array([0, 0, 1, 1, 2, 2])
    H = np.array([[1.0, 0], [1.2, 0], [0, 0.1], [0, -0.1], [-1.0, 0], [-1.2, 0]])
    out = nc_metrics(H, y)
    assert out["equiangle_means"] is None and out["maxangle_means"] is None
    assert any("equiangle_means is undefined" in w for w in out["warnings"])
    assert out["nc1"] is not None


def test_more_classes_than_dimensions_warns(rng):
    y = labels(6, 5, rng)
    H = rng.normal(size=(6, 3))[y] + 0.01 * rng.normal(size=(30, 3))
    out = nc_metrics(H, y)
    assert out["etf_distance_means"] is not None
    assert any("exact simplex ETF is impossible" in w for w in out["warnings"])


@given(st.integers(0, 2**31 - 1), st.integers(2, 8), st.sampled_from([0.0, 1.0, 1e3]))
def test_nc1_is_never_negative_at_exact_collapse(seed, C, offset):
    """Exact collapse gives Σ_W = 0 up to rounding; NC1 must come out ≥ 0, never −1e-29."""
    rng = np.random.default_rng(seed)
    P = C + 2
    means = rng.normal(size=(C, P)) * rng.uniform(0.1, 10)
    y = labels(C, rng.integers(2, 9, size=C).tolist(), rng)
    H = (means[y] + offset * rng.normal(size=P)).astype(np.float32)
    out = nc_metrics(H, y)
    assert out["nc1"] >= 0.0 and out["cdnv"] >= 0.0
    assert out["nc1"] < 1e-12
