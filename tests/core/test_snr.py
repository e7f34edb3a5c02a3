"""SNR spectrum (docs/CENTRAL_PATH.md): float64 reference, invariance, central-path loss, singular Σ_W."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncanalyze.core.decomposition import decompose, least_squares_classifier
from ncanalyze.core.linalg import checked_cholesky
from ncanalyze.core.snr import SNR_KEYS, snr, snr_from_stats
from ncanalyze.core.accumulator import class_stats

from tests.reference import assert_snr_close as assert_matches, reference_snr


def make_data(rng, c, p, n_per, balanced=True, offset=0.0):
    if balanced:
        y = np.repeat(np.arange(c), n_per)
    else:
        y = np.repeat(np.arange(c), rng.integers(max(2, n_per // 3), 2 * n_per, size=c))
    means = 2.0 * rng.normal(size=(c, p)) + offset
    mix = rng.normal(size=(p, p)) / np.sqrt(p) + np.eye(p)  # anisotropic noise
    return means[y] + rng.normal(size=(y.size, p)) @ mix, y


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("global_mean", ["samples", "classes"])
def test_matches_float64_reference(xp, balanced, global_mean):
    rng = np.random.default_rng(11 + balanced)
    c, p = 5, 8
    h, y = make_data(rng, c, p, 30, balanced, offset=4.0)
    stats = class_stats(xp.asarray(h, "float64"), xp.asarray(y, "int64"), c, chunk_rows=41)
    res = snr_from_stats(stats, global_mean=global_mean)
    assert res.warnings == []
    assert list(res.values) == list(SNR_KEYS)
    assert len(res.values["snr_singular_values"]) == c - 1  # ω_{C−1} = 0 is not reported
    assert_matches(res.values, reference_snr(h, y, c, global_mean))


def test_float32_features(rng):
    c, p = 4, 6
    h, y = make_data(rng, c, p, 40, balanced=False, offset=10.0)
    h32 = h.astype(np.float32)
    assert_matches(snr(h32, y), reference_snr(h32.astype(np.float64), y, c))


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
def relu_features(rng, c=4, n_per=40, d_in=6, hidden=12, dead=(1, 5, 6)):
    """Penultimate features of a one-hidden-layer ReLU network (NumPy forward pass): the units
    in ``dead`` get a bias of −1000, so their pre-activation is negative on every sample and
    they output exactly 0 (dead ReLU units); the others fire on part of the data.

    Returns features (N, hidden), labels and the sorted indices of the live units.
    """
    y = np.repeat(np.arange(c), n_per)
    x = 3.0 * rng.normal(size=(c, d_in))[y] + rng.normal(size=(y.size, d_in))
    w1 = rng.normal(size=(d_in, hidden)) / np.sqrt(d_in)
    b1 = -np.median(x @ w1, axis=0)  # live units fire on about half of the samples
    b1[list(dead)] = -1000.0
    h = np.maximum(x @ w1 + b1, 0.0)
    live = [k for k in range(hidden) if k not in dead]
    assert np.all(h[:, list(dead)] == 0.0) and np.all((h[:, live] > 0).any(axis=0))
    return h, y, live


def assert_on_support(out, h_live, y, c, dropped, rtol=1e-6):
    """The SNR of features with dead units = the reference on the live units alone."""
    assert out["snr_dropped_dims"] == dropped
    assert_matches(out, reference_snr(h_live, y, c), rtol=rtol)


def test_dead_relu_units_are_dropped_and_the_rest_matches_the_reduced_space(xp, rng):
    c = 4
    h, y, live = relu_features(rng, c)
    stats = class_stats(xp.asarray(h, "float64"), xp.asarray(y, "int64"), c)
    res = snr_from_stats(stats)
    assert res.warnings == []
    assert list(res.values) == list(SNR_KEYS)
    assert_on_support(res.values, h[:, live], y, c, dropped=3)


@given(seed=st.integers(0, 2**31 - 1), c=st.integers(2, 5), n_dead=st.integers(1, 5),
       global_mean=st.sampled_from(["samples", "classes"]))
def test_dead_units_in_any_basis(seed, c, n_dead, global_mean):
    """Dead directions need not be coordinate axes: after an orthogonal change of basis
    (affine invariance) the SNR is still that of the live units, with n_dead dropped."""
    rng = np.random.default_rng(seed)
    hidden = 8 + n_dead
    dead = tuple(rng.choice(hidden, size=n_dead, replace=False).tolist())
    h, y, live = relu_features(rng, c, n_per=30, hidden=hidden, dead=dead)
    q, _ = np.linalg.qr(rng.normal(size=(hidden, hidden)))
    out = snr(h @ q + 2.0, y, num_classes=c, global_mean=global_mean)
    assert out["snr_dropped_dims"] == n_dead
    want = reference_snr(h[:, live], y, c, global_mean)
    np.testing.assert_allclose(out["snr_singular_values"][: c - 1],
                               want["snr_singular_values"][: c - 1], rtol=1e-6)


def test_constant_and_duplicated_features_are_dropped(rng):
    h, y = make_data(rng, 3, 5, 20)
    const = h.copy()
    const[:, 1] = 7.0  # constant: zero within-class variance and zero between-class spread
    assert_on_support(snr(const, y), np.delete(const, 1, axis=1), y, 3, dropped=1)
    dup = np.hstack([h, 2.0 * h[:, :1]])  # linearly dependent: one direction carries nothing
    assert_on_support(snr(dup, y), h, y, 3, dropped=1)


def test_regular_within_covariance_drops_nothing(rng):
    h, y = make_data(rng, 3, 5, 20)
    assert snr(h, y)["snr_dropped_dims"] == 0


def test_a_noise_free_class_direction_has_infinite_snr_null_with_reason(rng):
    """A feature constant within each class but different between classes separates them
    with no within-class noise: SNR = ∞, reported as null with the reason (no ridge)."""
    h, y, _ = relu_features(rng, 3)
    h[:, 0] = 2.0 * (y == 0)
    out = snr(h, y)
    assert all(out[k] is None for k in SNR_KEYS)
    assert len(out["warnings"]) == 1
    msg = out["warnings"][0]
    assert "infinite SNR" in msg and "zero within-class variance" in msg
    assert "index 0" in msg and "ε" not in msg


def test_too_many_features_gives_null_with_reason(rng):
    """P > N − C: some direction of the class means sees no within-class noise (generic data)."""
    c, p = 3, 10
    y = np.repeat(np.arange(c), 3)  # N − C = 6 < P
    h = rng.normal(size=(9, p))
    out = snr(h, y)
    assert all(out[k] is None for k in SNR_KEYS)
    assert len(out["warnings"]) == 1
    assert "infinite SNR" in out["warnings"][0]
    assert "P = 10 > N − C = 6" in out["warnings"][0]


def test_all_features_constant_is_null_with_reason():
    y = np.repeat(np.arange(3), 4)
    out = snr(np.ones((12, 5)), y)
    assert all(out[k] is None for k in SNR_KEYS)
    assert "every direction" in out["warnings"][0]


def test_ridge_regularises_singular_within_covariance(rng):
    c, p, eps = 3, 10, 0.25
    y = np.repeat(np.arange(c), 3)
    h = rng.normal(size=(9, p))
    out = snr(h, y, ridge=eps)
    assert any("ε = 0.25" in m for m in out["warnings"])
    assert_matches(out, reference_snr(h, y, c, ridge=eps))


def test_ridge_must_be_positive(rng):
    h, y = make_data(rng, 3, 4, 10)
    with pytest.raises(ValueError, match="ridge"):
        snr(h, y, ridge=0.0)


def test_fewer_features_than_classes_minus_one(rng):
    """P < C − 1 (a language model): M̄ has rank ≤ P, so only the P largest ω_j can be
    nonzero; they alone are reported and snr_min/snr_ratio/nc1_whitened are defined on them
    (issue 20 item 4), while loss_ls_predicted counts the structural zeros."""
    c, p = 5, 2
    h, y = make_data(rng, c, p, 20)
    out = snr(h, y)
    want = reference_snr(h, y, c)
    assert len(out["snr_singular_values"]) == p
    np.testing.assert_allclose(out["snr_singular_values"], want["snr_singular_values"],
                               rtol=1e-9)
    assert out["snr_min"] > 0
    assert out["snr_min"] == pytest.approx(want["snr_singular_values"][-1], rel=1e-9)
    assert out["snr_ratio"] == pytest.approx(want["snr_ratio"], rel=1e-9)
    assert out["nc1_whitened"] == pytest.approx(want["nc1_whitened"], rel=1e-9)
    assert out["loss_ls_predicted"] == pytest.approx(want["loss_ls_predicted"], rel=1e-9)
    assert out["warnings"] == []


def test_checked_cholesky_reasons():
    assert checked_cholesky(np.zeros((3, 3)))[1] is not None
    assert "failed" in checked_cholesky(-np.eye(2))[1]
    lower, reason = checked_cholesky(np.diag([1.0, 1e-20]))
    assert lower is None and "numerically singular" in reason
    lower, reason = checked_cholesky(np.diag([4.0, 1e-6]))
    assert reason is None
    np.testing.assert_allclose(lower, np.diag([2.0, 1e-3]))


def test_relu_run_with_dead_units_has_snr_on_every_epoch(tmp_path):
    """A run file of ReLU features whose dead units change over the epochs: every epoch has
    finite SNR keys equal to the reduced-space reference, no warning, and the dropped count."""
    from ncanalyze.analysis import analyze
    from ncanalyze.io import RunWriter

    c, path = 4, tmp_path / "relu.h5"
    dead_sets = [(0, 3, 4, 9), (3, 4, 9), (4, 9), (9,)]
    written = []
    with RunWriter(path, relu_features(np.random.default_rng(0), c)[1], num_classes=c) as w:
        for e, dead in enumerate(dead_sets):
            h, y, live = relu_features(np.random.default_rng(e), c, dead=dead)
            w.add_epoch(10 * e, h.astype(np.float32))
            written.append((h.astype(np.float32).astype(np.float64), y, live, len(dead)))
    _, results = analyze(path, quantities=("snr",))
    for res, (h, y, live, n_dead) in zip(results, written):
        assert res.warnings == [], res.warnings
        assert_on_support(res.values, h[:, live], y, c, dropped=n_dead)


def test_dropped_directions_leave_zeros_at_the_end_and_snr_min_on_the_rest(rng):
    """P = 4 < C − 1 with one constant feature (dropped on the support of Σ_W): the list keeps
    min(P, C − 1) = 4 entries, the last 0, and snr_min/snr_ratio are on the 3 that can be
    nonzero (the bundled language model has this: 31 of 32)."""
    c, p = 8, 4
    h, y = make_data(rng, c, p, 20)
    h[:, 2] = 1.5  # constant: no within-class variance and no spread
    out = snr(h, y)
    assert out["snr_dropped_dims"] == 1 and len(out["snr_singular_values"]) == 4
    assert out["snr_singular_values"][-1] == 0.0
    live = [0, 1, 3]
    want = reference_snr(h[:, live], y, c)
    np.testing.assert_allclose(out["snr_singular_values"][:3], want["snr_singular_values"],
                               rtol=1e-9)
    assert out["snr_min"] == pytest.approx(want["snr_singular_values"][-1], rel=1e-9)
    assert out["snr_ratio"] == pytest.approx(want["snr_ratio"], rel=1e-9)
