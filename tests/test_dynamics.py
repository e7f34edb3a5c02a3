"""Dynamics fit of the SNR singular values (SPEC §2.4, Han et al. Prop. 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncanalyze.core.dynamics import (
    central_path_flow, fit_dynamics, fitted_curves, phi, phi_inverse,
)
from ncanalyze.core.snr import snr


def law_values(slope, intercepts, epochs, c):
    """ω_j(e) solving φ(ω_j) = slope·e + β_j exactly (descending in j for descending β)."""
    target = slope * np.asarray(epochs, float)[None, :] + np.asarray(intercepts)[:, None]
    return phi_inverse(target, c)  # (C−1, E)


def as_rows(omega):
    """(C−1, E) -> per-epoch lists of C values (ω_C = 0 appended)."""
    return [list(col) + [0.0] for col in omega.T]


@given(w=st.floats(1e-4, 1e3), c=st.integers(2, 100))
def test_phi_inverse_roundtrip(w, c):
    assert phi_inverse(phi(w, c), c) == pytest.approx(w, rel=1e-12)


def test_phi_matches_definition():
    assert phi(2.0, 3) == pytest.approx(9 * np.log(2.0) + 3 * 4.0 + 16.0 / 4)


@given(c=st.integers(2, 12), slope=st.floats(0.01, 100.0), n_epochs=st.integers(3, 30),
       seed=st.integers(0, 2**31 - 1))
def test_recovers_slope_and_intercepts_of_the_closed_form_law(c, slope, n_epochs, seed):
    rng = np.random.default_rng(seed)
    epochs = np.sort(rng.choice(np.arange(0, 1000), size=n_epochs, replace=False))
    intercepts = np.sort(rng.uniform(-50.0, 50.0, size=c - 1) * c)[::-1]
    omega = law_values(slope, intercepts, epochs, c)
    fit = fit_dynamics(epochs.tolist(), as_rows(omega), c)
    assert fit["fitted"] is True
    assert fit["slope"] == pytest.approx(slope, rel=1e-7)
    scale = max(1.0, np.max(np.abs(phi(omega, c))))
    np.testing.assert_allclose(fit["intercepts"], intercepts, atol=1e-7 * scale)
    assert fit["r2_min"] == pytest.approx(1.0, abs=1e-9)
    assert fit["epochs"] == epochs.tolist()
    assert "follows the central-path law" in fit["verdict"]
    np.testing.assert_allclose(fitted_curves(fit, epochs, c), omega, rtol=1e-6)


@pytest.mark.parametrize("c,p,tau", [(3, 5, 1.0), (5, 8, 0.5), (10, 12, 3.0)])
def test_recovers_simulated_gradient_flow_on_the_central_path(c, p, tau):
    """Class means follow the central-path gradient flow; features are built with Σ_W = I and
    ω_j are measured from the features, as the snr command does."""
    rng = np.random.default_rng(c)
    s0 = rng.normal(size=(p, c))
    s0 -= s0.mean(axis=1, keepdims=True)
    epochs = np.arange(0, 60, 4)
    snrs = central_path_flow(s0, tau * epochs, steps_per_unit=100)
    y = np.repeat(np.arange(c), p + 3)
    noise = rng.normal(size=(y.size, p))
    for k in range(c):
        noise[y == k] -= noise[y == k].mean(axis=0)
    ev, u = np.linalg.eigh(noise.T @ noise / y.size)
    noise = noise @ (u / np.sqrt(ev)) @ u.T  # within-class covariance exactly I
    offset = rng.normal(size=p) * 10
    rows = [snr(offset + s.T[y] + noise, y)["snr_singular_values"] for s in snrs]
    fit = fit_dynamics(epochs.tolist(), rows, c)
    assert fit["slope"] == pytest.approx(tau, rel=1e-6)
    assert fit["r2_min"] > 1 - 1e-9
    omega0 = np.linalg.svd(s0, compute_uv=False)[: c - 1]
    np.testing.assert_allclose(fit["intercepts"], phi(omega0, c), rtol=1e-6, atol=1e-6)


def test_flow_is_the_gradient_flow_of_the_least_squares_loss(rng):
    """dω/dt = ω/(C + ω²)² for each singular value."""
    c, p = 4, 6
    s0 = rng.normal(size=(p, c))
    s0 -= s0.mean(axis=1, keepdims=True)
    dt = 1e-3
    s1 = central_path_flow(s0, [dt])[0]
    w0 = np.linalg.svd(s0, compute_uv=False)[: c - 1]
    w1 = np.linalg.svd(s1, compute_uv=False)[: c - 1]
    np.testing.assert_allclose((w1 - w0) / dt, w0 / (c + w0**2) ** 2, rtol=1e-3)


def test_too_few_epochs_are_not_fitted():
    fit = fit_dynamics([1, 2], [[1.0, 0.0], [2.0, 0.0]], 2)
    assert fit["fitted"] is False
    assert "at least 3 epochs" in fit["reason"] and fit["verdict"].startswith("dynamics:")


def test_null_epochs_are_skipped_and_counted():
    c = 3
    omega = law_values(2.0, [20.0, 5.0], [0, 1, 2, 3], c)
    rows = as_rows(omega)
    rows.insert(2, None)
    fit = fit_dynamics([0, 1, 5, 2, 3], rows, c)
    assert fit["fitted"] and fit["epochs"] == [0, 1, 2, 3] and fit["epochs_skipped"] == 1
    assert fit["slope"] == pytest.approx(2.0, rel=1e-9)


def test_shrinking_values_get_a_negative_verdict():
    c = 3
    omega = law_values(-1.5, [20.0, 10.0], np.arange(5), c)
    fit = fit_dynamics(list(range(5)), as_rows(omega), c)
    assert fit["slope"] < 0 and "shrink" in fit["verdict"]


def test_values_off_the_law_get_a_low_r2(rng):
    c = 4
    epochs = np.arange(20)
    omega = np.stack([np.full(20, 3.0), 1.0 + 0.2 * epochs, 2.0 + np.sin(epochs)])
    fit = fit_dynamics(epochs.tolist(), as_rows(omega), c)
    assert fit["r2_min"] < 0.9
    assert "does not describe" in fit["verdict"]
    assert fit["r2"][0] is None or fit["r2"][0] < 0.5  # a constant ω_1 is not growing


def test_constant_values_have_undefined_r2():
    fit = fit_dynamics([0, 1, 2], [[2.0, 1.0, 0.0]] * 3, 3)
    assert fit["r2"] == [None, None] and fit["r2_min"] is None
    assert "do not change" in fit["verdict"]
