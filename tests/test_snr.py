"""SNR spectrum (SPEC §2.4): float64 reference, invariance, central-path loss, singular Σ_W."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncanalyze.backend import get_backend
from ncanalyze.core.decomposition import decompose, least_squares_classifier
from ncanalyze.core.linalg import checked_cholesky
from ncanalyze.core.snr import SNR_KEYS, snr, snr_from_stats
from ncanalyze.core.stats import class_stats

BACKENDS = ["numpy", "array_api_strict"]


def reference(h, y, c, global_mean="samples", ridge=0.0):
    """SPEC §2.4 literally: Σ_W^{-1/2} by eigendecomposition, then the SVD."""
    h = np.asarray(h, dtype=np.float64)
    n, p = h.shape
    means = np.stack([h[y == k].mean(axis=0) for k in range(c)])
    mu_g = h.mean(axis=0) if global_mean == "samples" else means.mean(axis=0)
    mbar = (means - mu_g).T
    sw = np.zeros((p, p))
    for i in range(n):
        d = h[i] - means[y[i]]
        sw += np.outer(d, d)
    sw = sw / n + ridge * np.eye(p)
    ev, u = np.linalg.eigh(sw)
    inv_sqrt = u @ np.diag(ev**-0.5) @ u.T
    omega = np.zeros(c)
    s = np.linalg.svd(inv_sqrt @ mbar, compute_uv=False)
    omega[: s.size] = s
    nz = omega[: c - 1]
    with np.errstate(divide="ignore"):
        return {"snr_singular_values": omega, "snr_min": nz[-1], "snr_max": omega[0],
                "snr_ratio": omega[0] / nz[-1], "nc1_whitened": np.sum(nz**-2.0),
                "loss_ls_predicted": 0.5 * np.sum(1.0 / (c + nz**2))}


def make_data(rng, c, p, n_per, balanced=True, offset=0.0):
    if balanced:
        y = np.repeat(np.arange(c), n_per)
    else:
        y = np.repeat(np.arange(c), rng.integers(max(2, n_per // 3), 2 * n_per, size=c))
    means = 2.0 * rng.normal(size=(c, p)) + offset
    mix = rng.normal(size=(p, p)) / np.sqrt(p) + np.eye(p)  # anisotropic noise
    return means[y] + rng.normal(size=(y.size, p)) @ mix, y


def assert_matches(got, want, rtol=1e-6):
    np.testing.assert_allclose(got["snr_singular_values"][:-1], want["snr_singular_values"][:-1],
                               rtol=rtol)
    assert abs(got["snr_singular_values"][-1]) <= 1e-9 * want["snr_max"]  # ω_C ≈ 0
    for k in SNR_KEYS[1:]:
        assert got[k] == pytest.approx(want[k], rel=rtol), k


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("global_mean", ["samples", "classes"])
def test_matches_float64_reference(backend, balanced, global_mean):
    rng = np.random.default_rng(11 + balanced)
    c, p = 5, 8
    h, y = make_data(rng, c, p, 30, balanced, offset=4.0)
    be = get_backend(backend)
    stats = class_stats(be.asarray(h, "float64"), be.asarray(y, "int64"), c, chunk_rows=41)
    res = snr_from_stats(stats, global_mean=global_mean)
    assert res.warnings == []
    assert list(res.values) == list(SNR_KEYS)
    assert len(res.values["snr_singular_values"]) == c
    assert_matches(res.values, reference(h, y, c, global_mean))


def test_float32_features(rng):
    c, p = 4, 6
    h, y = make_data(rng, c, p, 40, balanced=False, offset=10.0)
    h32 = h.astype(np.float32)
    assert_matches(snr(h32, y), reference(h32.astype(np.float64), y, c))


@given(c=st.integers(2, 6), extra=st.integers(0, 4), seed=st.integers(0, 2**31 - 1),
       balanced=st.booleans())
def test_affine_invariance(c, extra, seed, balanced):
    """ω_j of Σ_W^{-1/2}M̄ do not change under h ↦ A h + v for invertible A."""
    rng = np.random.default_rng(seed)
    p = c - 1 + extra
    h, y = make_data(rng, c, p, p + 4, balanced)
    q1, _ = np.linalg.qr(rng.normal(size=(p, p)))
    q2, _ = np.linalg.qr(rng.normal(size=(p, p)))
    a = q1 @ np.diag(rng.uniform(0.3, 3.0, size=p)) @ q2
    base = snr(h, y, num_classes=c)
    moved = snr(h @ a.T + rng.normal(size=p) * 5, y, num_classes=c)
    np.testing.assert_allclose(moved["snr_singular_values"][: c - 1],
                               base["snr_singular_values"][: c - 1], rtol=1e-7)


@given(c=st.integers(2, 6), extra=st.integers(0, 5), n_per=st.integers(2, 10),
       seed=st.integers(0, 2**31 - 1))
def test_predicted_loss_equals_least_squares_loss_when_balanced(c, extra, n_per, seed):
    """Balanced classes, λ = 0, with bias: ½ Σ_j 1/(C + ω_j²) = loss_ls of decompose."""
    rng = np.random.default_rng(seed)
    p = c - 1 + extra
    n_per = max(n_per, p + 2)  # N − C ≥ P: Σ_W can be non-singular
    h, y = make_data(rng, c, p, n_per, balanced=True, offset=1.0)
    predicted = snr(h, y, num_classes=c)["loss_ls_predicted"]
    w, b = rng.normal(size=(c, p)), rng.normal(size=c)
    got = decompose(h, y, w, b, weight_decay=0.0, num_classes=c)["loss_ls"]
    assert predicted == pytest.approx(got, rel=1e-8)


def test_predicted_loss_on_the_central_path_classifier(rng):
    h, y = make_data(rng, 4, 6, 30)
    w, b = least_squares_classifier(h, y)
    out = decompose(h, y, w, b)
    assert snr(h, y)["loss_ls_predicted"] == pytest.approx(out["loss"], rel=1e-9)


def test_nc1_whitened_is_pseudo_inverse_trace(rng):
    c, p = 4, 7
    h, y = make_data(rng, c, p, 30)
    stats = class_stats(h, y)
    sw = stats.sigma_w
    mbar = stats.centred_means().T
    g = mbar.T @ np.linalg.solve(sw, mbar)
    want = np.trace(np.linalg.pinv(g, rcond=1e-10, hermitian=True))
    assert snr(h, y)["nc1_whitened"] == pytest.approx(want, rel=1e-8)


# ---------------------------------------------------------------------- singular Σ_W
def test_too_many_features_gives_null_with_reason(rng):
    c, p = 3, 10
    y = np.repeat(np.arange(c), 3)  # N − C = 6 < P
    h = rng.normal(size=(9, p))
    out = snr(h, y)
    assert all(out[k] is None for k in SNR_KEYS)
    assert len(out["warnings"]) == 1
    assert "P = 10 > N − C = 6" in out["warnings"][0] and "--ridge" in out["warnings"][0]


def test_dead_feature_gives_null_with_reason(rng):
    h, y = make_data(rng, 3, 5, 20)
    h[:, 1] = 7.0  # a dead unit: constant, zero within-class variance
    out = snr(h, y)
    assert all(out[k] is None for k in SNR_KEYS)
    assert "singular" in out["warnings"][0]
    assert "1 feature(s) have zero within-class variance (dead units?): index 1" \
        in out["warnings"][0]


def test_duplicated_feature_gives_null(rng):
    h, y = make_data(rng, 3, 5, 20)
    h = np.hstack([h, 2.0 * h[:, :1]])  # linearly dependent features
    out = snr(h, y)
    assert out["snr_max"] is None and "singular" in out["warnings"][0]
    assert "linearly dependent" in out["warnings"][0]


def test_ridge_regularises_singular_within_covariance(rng):
    c, p, eps = 3, 10, 0.25
    y = np.repeat(np.arange(c), 3)
    h = rng.normal(size=(9, p))
    out = snr(h, y, ridge=eps)
    assert any("ε = 0.25" in m for m in out["warnings"])
    assert_matches(out, reference(h, y, c, ridge=eps))


def test_ridge_must_be_positive(rng):
    h, y = make_data(rng, 3, 4, 10)
    with pytest.raises(ValueError, match="ridge"):
        snr(h, y, ridge=0.0)


def test_fewer_features_than_classes_minus_one(rng):
    c, p = 5, 2  # P < C − 1: ω_{C−1} = 0
    h, y = make_data(rng, c, p, 20)
    out = snr(h, y)
    assert len(out["snr_singular_values"]) == c
    assert out["snr_min"] == 0.0
    assert out["snr_ratio"] is None and out["nc1_whitened"] is None
    assert any("rank < C − 1" in m for m in out["warnings"])
    want = reference(h, y, c)
    np.testing.assert_allclose(out["snr_singular_values"][:p], want["snr_singular_values"][:p],
                               rtol=1e-9)


def test_checked_cholesky_reasons():
    assert checked_cholesky(np.zeros((3, 3)))[1] is not None
    assert "failed" in checked_cholesky(-np.eye(2))[1]
    lower, reason = checked_cholesky(np.diag([1.0, 1e-20]))
    assert lower is None and "numerically singular" in reason
    lower, reason = checked_cholesky(np.diag([4.0, 1e-6]))
    assert reason is None
    np.testing.assert_allclose(lower, np.diag([2.0, 1e-3]))
