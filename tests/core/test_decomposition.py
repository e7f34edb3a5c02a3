"""MSE decomposition (docs/CENTRAL_PATH.md): float64 reference, identity, W̃_LS, invariance (Eq. 7)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncanalyze.core.decomposition import (
    DECOMPOSE_KEYS, decompose, decompose_from_stats, least_squares_classifier,
    least_squares_from_stats,
)
from ncanalyze.core.accumulator import class_stats

from tests import reference
from tests.reference import reference_decompose


def make_data(rng, c, p, n_per, *, balanced=True, offset=0.0, spread=2.0):
    if balanced:
        y = np.repeat(np.arange(c), n_per)
    else:
        counts = rng.integers(max(2, n_per // 4), 2 * n_per, size=c)
        y = np.repeat(np.arange(c), counts)
    rng.shuffle(y)
    means = spread * rng.normal(size=(c, p)) + offset
    h = means[y] + rng.normal(size=(y.size, p)) * rng.uniform(0.3, 1.5, size=p)
    return h, y


def assert_close(got, want):
    reference.assert_close(got, want, rtol=1e-6, atol=1e-14, keys=DECOMPOSE_KEYS)


# ---------------------------------------------------------------------- agreement
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("lam", [0.0, 0.05])
@pytest.mark.parametrize("balanced", [True, False])
def test_matches_float64_reference(xp, with_bias, lam, balanced):
    rng = np.random.default_rng(7 + 2 * with_bias + 5 * balanced)
    c, p = 5, 7
    h, y = make_data(rng, c, p, 30, balanced=balanced, offset=1.5)
    w = rng.normal(size=(c, p)) * 0.3
    b = rng.normal(size=c) * 0.3 if with_bias else None
    want, _ = reference_decompose(h, y, w, b, lam, c)
    stats = class_stats(xp.asarray(h, "float64"), xp.asarray(y, "int64"), c, chunk_rows=37)
    res = decompose_from_stats(stats, xp.asarray(w, "float64"),
                               None if b is None else xp.asarray(b, "float64"),
                               weight_decay=lam)
    assert res.warnings == []
    assert list(res.values) == list(DECOMPOSE_KEYS)
    assert_close(res.values, want)


def test_float32_features_agree_with_float64_computation(rng):
    c, p = 4, 9
    h, y = make_data(rng, c, p, 50, balanced=False, offset=3.0)
    h32 = h.astype(np.float32)
    w = rng.normal(size=(c, p)).astype(np.float32)
    b = rng.normal(size=c).astype(np.float32)
    want, _ = reference_decompose(h32.astype(np.float64), y, w.astype(np.float64),
                        b.astype(np.float64), 0.01, c)
    got = decompose(h32, y, w, b, weight_decay=0.01)
    assert_close(got, want)


def test_features_far_from_origin_keep_the_identity(rng):
    """Large offsets: every term is a sum of non-negative parts, nothing cancels."""
    c, p = 3, 4
    h, y = make_data(rng, c, p, 40, offset=1e4, spread=1.0)
    w_ls, b_ls = least_squares_classifier(h, y)
    out = decompose(h, y, w_ls, b_ls)
    assert out["loss_ls_perp"] <= 1e-9 * out["loss"]
    assert out["loss_nc1"] > 0 and out["loss_nc23"] > 0
    # the least-squares loss does not depend on a shift of the features (bias absorbs it)
    shifted = decompose(h - 1e4, y, w_ls, b_ls + w_ls @ np.full(p, 1e4))
    assert out["loss_ls"] == pytest.approx(shifted["loss_ls"], rel=1e-6)


# ---------------------------------------------------------------------- identity
@given(c=st.integers(2, 6), p=st.integers(1, 9), n_per=st.integers(2, 12),
       with_bias=st.booleans(), lam=st.sampled_from([0.0, 1e-3, 0.5]),
       balanced=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_identity_loss_equals_sum_of_terms(c, p, n_per, with_bias, lam, balanced, seed):
    rng = np.random.default_rng(seed)
    h, y = make_data(rng, c, p, n_per, balanced=balanced)
    w = rng.normal(size=(c, p))
    b = rng.normal(size=c) if with_bias else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = decompose(h, y, w, b, weight_decay=lam, num_classes=c)
    parts = out["loss_nc1"] + out["loss_nc23"] + out["loss_ls_perp"]
    assert out["loss"] == pytest.approx(parts, rel=1e-9, abs=1e-12)
    assert out["loss_ls"] == pytest.approx(out["loss_nc1"] + out["loss_nc23"], rel=1e-12)
    assert min(out["loss_nc1"], out["loss_nc23"], out["loss_ls_perp"]) >= 0
    assert out["loss_ls"] <= out["loss"] * (1 + 1e-9)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_perp_vanishes_at_least_squares_classifier(xp, with_bias, lam):
    rng = np.random.default_rng(3)
    c, p = 4, 6
    h, y = make_data(rng, c, p, 25, balanced=False, offset=2.0)
    hx, yx = xp.asarray(h, "float64"), xp.asarray(y, "int64")
    w_ls, b_ls = least_squares_classifier(hx, yx, bias=with_bias, weight_decay=lam)
    assert (b_ls is None) == (not with_bias)
    assert xp.owns(w_ls) and (b_ls is None or xp.owns(b_ls))
    out = decompose(hx, yx, w_ls, b_ls, weight_decay=lam)
    assert out["loss_ls_perp"] <= 1e-12 * out["loss"]
    assert out["loss"] == pytest.approx(out["loss_ls"], rel=1e-12)
    w_ls, b_ls = xp.to_numpy(w_ls), None if b_ls is None else xp.to_numpy(b_ls)
    _, want = reference_decompose(h, y, w_ls, b_ls, lam, c)
    got = w_ls if b_ls is None else np.hstack([w_ls, b_ls[:, None]])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_balanced_least_squares_matches_proposition_1(rng):
    """Balanced: W̃_LS = (1/C) M̃ᵀ (Σ̃_T + μ̃_G μ̃_Gᵀ + λI)^{-1} (Han et al. Prop. 1)."""
    c, p, lam = 4, 5, 0.1
    h, y = make_data(rng, c, p, 30, offset=1.0)
    ht = np.hstack([h, np.ones((h.shape[0], 1))])
    mt = np.stack([ht[y == k].mean(axis=0) for k in range(c)]).T  # (P+1, C)
    mu_g = ht.mean(axis=0)
    sigma_t = (ht - mu_g).T @ (ht - mu_g) / ht.shape[0]
    want = np.linalg.solve(sigma_t + np.outer(mu_g, mu_g) + lam * np.eye(p + 1), mt).T / c
    w, b = least_squares_classifier(h, y, weight_decay=lam)
    np.testing.assert_allclose(np.hstack([w, b[:, None]]), want, rtol=1e-10, atol=1e-13)


def test_weight_decay_changes_values_consistently(rng):
    c, p = 3, 4
    h, y = make_data(rng, c, p, 20)
    w, b = rng.normal(size=(c, p)), rng.normal(size=c)
    small = decompose(h, y, w, b, weight_decay=0.0)
    big = decompose(h, y, w, b, weight_decay=1.0)
    # the loss gains exactly (λ/2)‖W̃‖²
    assert big["loss"] - small["loss"] == pytest.approx(0.5 * (np.sum(w * w) + np.sum(b * b)),
                                                        rel=1e-10)
    assert big["loss_ls"] > small["loss_ls"]


# ---------------------------------------------------------------------- singular A
def test_rank_deficient_features_use_restricted_least_squares(rng):
    c, p = 3, 12  # N = 9 < P: A is singular for λ = 0
    y = np.repeat(np.arange(c), 3)
    h = rng.normal(size=(9, p)) + 2.0
    w, b = rng.normal(size=(c, p)), rng.normal(size=c)
    res = decompose_from_stats(class_stats(h, y, c), w, b, weight_decay=0.0)
    assert any("singular" in m and "rank" in m for m in res.warnings)
    want, _ = reference_decompose(h, y, w, b, 0.0, c)
    assert_close(res.values, want)
    # with λ = 0 and N ≤ P the least-squares classifier interpolates: loss_ls = 0
    assert res.values["loss_ls"] == pytest.approx(0.0, abs=1e-10)
    with pytest.warns(RuntimeWarning, match="singular"):
        w_ls, b_ls = least_squares_classifier(h, y)
    assert decompose(h, y, w_ls, b_ls)["loss_ls_perp"] <= 1e-10
    # the weight part is the minimum-norm one: its rows lie in the span of the centred data
    centred = h - h.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    basis = vt[s > 1e-10 * s[0]]
    np.testing.assert_allclose(w_ls @ basis.T @ basis, w_ls, atol=1e-9)


def test_dead_feature_without_bias_and_without_decay(rng):
    c, p = 3, 5
    h, y = make_data(rng, c, p, 20)
    h[:, 2] = 0.0  # a dead unit: A has a zero row and column
    w = rng.normal(size=(c, p))
    res = decompose_from_stats(class_stats(h, y, c), w, None, weight_decay=0.0)
    assert any("rank 4 of 5" in m for m in res.warnings)
    want, _ = reference_decompose(h, y, w, None, 0.0, c)
    assert_close(res.values, want)


def test_least_squares_from_stats_without_warnings_on_regular_data(rng):
    h, y = make_data(rng, 3, 4, 20)
    w, b, notes = least_squares_from_stats(class_stats(h, y), bias=True, weight_decay=0.0)
    assert notes == [] and w.shape == (3, 4) and b.shape == (3,)


# ---------------------------------------------------------------------- invariance (Eq. 7)
@given(c=st.integers(2, 5), p=st.integers(2, 8), seed=st.integers(0, 2**31 - 1),
       balanced=st.booleans())
def test_invariance_of_least_squares_predictions(xp, c, p, seed, balanced):
    """W_LS(AH̄)·AH̄ = W_LS(H̄)·H̄ for invertible A (λ = 0, centred features)."""
    rng = np.random.default_rng(seed)
    h, y = make_data(rng, c, p, 3 + p, balanced=balanced)
    hbar = h - h.mean(axis=0)
    # A = Q₁ diag(s) Q₂ with s in [0.5, 2]: invertible with condition number ≤ 4 by construction
    q1, _ = np.linalg.qr(rng.normal(size=(p, p)))
    q2, _ = np.linalg.qr(rng.normal(size=(p, p)))
    a = q1 @ np.diag(rng.uniform(0.5, 2.0, size=p)) @ q2
    with warnings.catch_warnings():
        # Few rows (N ≤ P) make A singular: the rank-restricted W_LS, announced by a
        # RuntimeWarning, satisfies Eq. 7 as well.
        warnings.simplefilter("ignore", RuntimeWarning)
        w0, _ = least_squares_classifier(xp.asarray(hbar), xp.asarray(y), bias=False,
                                         num_classes=c)
        w1, _ = least_squares_classifier(xp.asarray(hbar @ a.T), xp.asarray(y), bias=False,
                                         num_classes=c)
    w0, w1 = xp.to_numpy(w0), xp.to_numpy(w1)
    np.testing.assert_allclose((hbar @ a.T) @ w1.T, hbar @ w0.T, rtol=1e-8, atol=1e-9)


def test_least_squares_keeps_namespace_and_device(xp):
    rng = np.random.default_rng(0)
    h, y = make_data(rng, 3, 4, 10)
    w, b = least_squares_classifier(xp.asarray(h), xp.asarray(y))
    assert xp.owns(w) and xp.owns(b)
    w_np, b_np = least_squares_classifier(h, y)
    np.testing.assert_allclose(xp.to_numpy(w), w_np, rtol=1e-12)
    np.testing.assert_allclose(xp.to_numpy(b), b_np, rtol=1e-12)


def test_negative_weight_decay_is_refused(rng):
    h, y = make_data(rng, 3, 4, 10)
    with pytest.raises(ValueError, match="weight_decay"):
        decompose(h, y, np.zeros((3, 4)), weight_decay=-1.0)


def test_zero_loss_gives_null_ratio():
    # features = one-hot targets, W = I, b = 0: the loss is exactly 0
    y = np.repeat(np.arange(3), 4)
    h = np.eye(3)[y]
    out = decompose(h, y, np.eye(3), np.zeros(3))
    assert out["loss"] == 0.0 and out["central_path_ratio"] is None
    assert any("central_path_ratio" in m for m in out["warnings"])
