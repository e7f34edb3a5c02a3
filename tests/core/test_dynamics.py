"""Dynamics fit of the SNR singular values (docs/CENTRAL_PATH.md, Han et al. Prop. 2)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncanalyze.core.dynamics import (
    central_path_flow, cumulative_learning_rate, fit_dynamics, fitted_curves, phi, phi_inverse,
)
from ncanalyze.analysis import Analysis
from ncanalyze.run_dynamics import snr_dynamics
from ncanalyze.settings import Settings
from ncanalyze.core.snr import snr
from ncanalyze.errors import UsageError
from ncanalyze.io import RunWriter


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


# ---------------------------------------------------------------------- per-j slopes, diagnosis
def test_per_j_slopes_and_their_spread_are_reported():
    """The common slope is the mean of the per-j least-squares slopes (one time axis for all
    j); each j's own slope and own-line R² are reported with the spread max/min."""
    c = 4
    t = np.arange(10.0)
    rates = np.array([3.0, 2.0, 1.0])
    y = rates[:, None] * t[None, :] + np.array([300.0, 100.0, 50.0])[:, None]
    omega = phi_inverse(y, c)
    fit = fit_dynamics(t.tolist(), as_rows(omega), c)
    np.testing.assert_allclose(fit["slopes"], rates, rtol=1e-9)
    assert fit["slope"] == pytest.approx(2.0, rel=1e-9)
    assert fit["slope_spread"] == pytest.approx(3.0, rel=1e-9)
    np.testing.assert_allclose(fit["r2_separate"], 1.0, atol=1e-9)
    assert len(fit["r2"]) == c - 1 and fit["r2_min"] < 0.99


def test_proportional_growth_is_named_as_the_cause():
    """ω_j = a_j · g(t): each φ(ω_j) is close to a line, but the lines have different slopes
    (ω⁴ dominates φ, so the slopes scale as a_j⁴): the verdict names the cause and the spread."""
    c = 4
    t = np.linspace(0.0, 10.0, 12)
    a = np.array([3.0, 2.0, 1.5])
    omega = a[:, None] * 100.0 * (1.0 + t) ** 0.25
    fit = fit_dynamics(t.tolist(), as_rows(omega), c)
    assert "does not describe" in fit["verdict"]
    assert "grow in proportion instead of equalising" in fit["verdict"]
    spread = fit["slope_spread"]
    assert spread == pytest.approx((3.0 / 1.5) ** 4, rel=0.05)
    assert f"per-j slopes span {spread:.0f}×" in fit["verdict"]  # e.g. "span 16×"


def test_nonlinear_growth_names_the_worst_index_0_based():
    """A j whose φ(ω_j) is not a line on the clock is named by its key, 0-based like the
    snr_singular_values_j columns."""
    c = 4
    t = np.arange(20.0)
    y = np.stack([5.0 * t + 400.0, 5.0 * t + 200.0, 100.0 + np.exp(t / 2.0)])
    fit = fit_dynamics(t.tolist(), as_rows(phi_inverse(y, c)), c)
    assert "snr_singular_values_2" in fit["verdict"]
    assert "j = 3" not in fit["verdict"]
    assert int(np.argmin(fit["r2_separate"])) == 2


def test_the_verdict_and_the_object_name_the_clock():
    c = 3
    omega = law_values(2.0, [20.0, 5.0], [0.0, 0.5, 1.5, 2.0], c)
    fit = fit_dynamics([0.0, 0.5, 1.5, 2.0], as_rows(omega), c, epochs=[0, 10, 30, 40],
                       time="lr")
    assert fit["time"] == "lr" and fit["epochs"] == [0, 10, 30, 40]
    assert fit["times"] == [0.0, 0.5, 1.5, 2.0]
    assert "cumulative learning rate" in fit["clock"] and fit["clock"] in fit["verdict"]
    assert fit["slope"] == pytest.approx(2.0, rel=1e-9)


def test_epochs_near_2_to_the_62_give_a_clean_fit_without_runtime_warnings():
    """Float64 cannot tell 2⁶² from 2⁶² + 1: the time axis is centred in exact integers."""
    import warnings

    c = 3
    base = 2**62
    steps = [0, 1, 2, 3, 5]
    omega = law_values(2.0, [20.0, 5.0], steps, c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_dynamics([base + s for s in steps], as_rows(omega), c)
    assert fit["fitted"] and fit["slope"] == pytest.approx(2.0, rel=1e-9)
    assert "shrink" not in fit["verdict"] and "follows the central-path law" in fit["verdict"]


def test_a_clock_that_does_not_advance_is_not_fitted():
    import warnings

    c = 3
    omega = law_values(2.0, [20.0, 5.0], [0, 1, 2], c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_dynamics([4.0, 4.0, 4.0], as_rows(omega), c)
    assert fit["fitted"] is False and "does not advance" in fit["reason"]
    assert "shrink" not in fit["verdict"]


def test_overflowing_phi_is_not_fitted_and_does_not_warn():
    import warnings

    c = 3
    rows = [[1e80 * (k + 1), 1e79, 0.0] for k in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_dynamics([0, 1, 2, 3], rows, c)
    assert fit["fitted"] is False and "overflow" in fit["reason"]


def test_cumulative_learning_rate_is_a_trapezoid_over_steps():
    # lr 0.1 at epochs 0 and 10, 0.01 at 20: (10·0.1) + (10·(0.1 + 0.01)/2) = 1.55
    np.testing.assert_allclose(cumulative_learning_rate([0, 10, 20], [0.1, 0.1, 0.01]),
                               [0.0, 1.0, 1.55], rtol=1e-12)
    # huge step counts stay exact: increments are taken in integers
    big = 2**62
    np.testing.assert_allclose(cumulative_learning_rate([big, big + 4], [0.5, 0.5]), [0.0, 2.0])


@pytest.mark.parametrize("steps,lr,match", [
    ([0, 1, 2], [0.1, float("nan"), 0.1], "not finite"),
    ([0, 1, 2], [0.1, -0.1, 0.1], "negative"),
    ([0, 2, 1], [0.1, 0.1, 0.1], "decrease"),
])
def test_cumulative_learning_rate_rejects_bad_series(steps, lr, match):
    with pytest.raises(ValueError, match=match):
        cumulative_learning_rate(steps, lr)


# ---------------------------------------------------------------------- run-level fit, clocks
BUNDLED = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"


def _dynamics(path, time="auto", **options):
    settings = Settings(quantities=("snr",), **options)
    with Analysis(path, settings) as analysis:
        epochs = [r.values for r in analysis]
        return snr_dynamics(analysis, epochs, time)


@pytest.fixture(scope="module")
def bundled_epochs():
    with Analysis(BUNDLED, Settings(quantities=("snr",))) as analysis:
        return [r.values for r in analysis]


def test_bundled_run_is_fitted_on_the_cumulative_learning_rate_by_default():
    """The bundled run records /scalars/lr (0.1, then 0.01 and 0.001): the default clock is
    the cumulative learning rate, on which each φ(ω_j) is close to a line (per-j R² ≥ 0.96,
    against ≤ 0.86 on epochs) while the per-j slopes differ ~61-fold: ω_j grow in proportion."""
    fit = _dynamics(BUNDLED)
    assert fit["time"] == "lr" and fit["clock"] == "cumulative learning rate"
    assert "cumulative learning rate" in fit["verdict"]
    assert min(fit["r2_separate"]) > 0.96
    assert fit["slope_spread"] == pytest.approx(61, rel=0.02)
    assert "grow in proportion instead of equalising" in fit["verdict"]
    assert "per-j slopes span 61×" in fit["verdict"]
    assert len(fit["slopes"]) == 9 and len(fit["r2"]) == 9
    by_epoch = _dynamics(BUNDLED, "epoch")
    assert by_epoch["time"] == "epoch" and max(by_epoch["r2_separate"]) < 0.87
    assert by_epoch["epochs"] == fit["epochs"] and by_epoch["times"] == fit["epochs"]


def test_bundled_cumulative_learning_rate_is_the_trapezoid_of_the_recorded_lr(bundled_epochs):
    with h5py.File(BUNDLED, "r") as f:
        e, lr = f["epoch"][:].astype(float), f["scalars/lr"][:]
    want = np.concatenate([[0.0], np.cumsum(np.diff(e) * (lr[1:] + lr[:-1]) / 2)])
    fit = _dynamics(BUNDLED)
    np.testing.assert_allclose(fit["times"], want, rtol=1e-12)
    # a selection starts the clock at its first epoch; increments use every recorded epoch
    sub = _dynamics(BUNDLED, epochs="100:600")
    first = int(np.searchsorted(e, 100))
    np.testing.assert_allclose(sub["times"], want[first:] - want[first], rtol=1e-12, atol=1e-12)


def _write(path, epochs, lr=None, steps=None, steps_per_epoch=None, seed=0):
    """A small run whose SNR is defined at every epoch, with optional lr/steps records."""
    rng = np.random.default_rng(seed)
    c, p = 3, 4
    y = np.repeat(np.arange(c), 12)
    noise = rng.normal(size=(y.size, p))
    with RunWriter(path, y, num_classes=c) as w:
        for k, e in enumerate(epochs):
            scalars = {}
            if lr is not None:
                scalars["lr"] = lr[k]
            if steps is not None:
                scalars["steps"] = steps[k]
            w.add_epoch(e, (1.0 + k) * 3.0 * np.eye(c, p)[y] + noise, **scalars)
    if steps_per_epoch is not None:
        with h5py.File(path, "a") as f:
            f.attrs["steps_per_epoch"] = steps_per_epoch


def test_clock_choices_on_a_written_run(tmp_path):
    path = tmp_path / "clocks.h5"
    epochs, lr, steps = [0, 2, 5, 9], [0.5, 0.5, 0.1, 0.1], [0, 40, 100, 180]
    _write(path, epochs, lr=lr, steps=steps)
    by_steps = _dynamics(path, "steps")
    assert by_steps["time"] == "steps" and by_steps["times"] == [0.0, 40.0, 100.0, 180.0]
    by_lr = _dynamics(path)  # lr integrated over the recorded steps
    assert by_lr["time"] == "lr"
    np.testing.assert_allclose(by_lr["times"], [0.0, 20.0, 38.0, 46.0], rtol=1e-12)
    by_scalar = _dynamics(path, "lr")  # explicit
    assert by_scalar["times"] == by_lr["times"]
    assert _dynamics(path, "epoch")["times"] == [0.0, 2.0, 5.0, 9.0]


def test_steps_per_epoch_attribute_scales_the_lr_clock(tmp_path):
    path = tmp_path / "spe.h5"
    _write(path, [0, 1, 3], lr=[0.1, 0.1, 0.1], steps_per_epoch=10)
    fit = _dynamics(path)
    np.testing.assert_allclose(fit["times"], [0.0, 1.0, 3.0], rtol=1e-12)
    assert _dynamics(path, "steps")["times"] == [0.0, 10.0, 30.0]


def test_without_lr_the_default_clock_is_the_epoch(tmp_path):
    path = tmp_path / "nolr.h5"
    _write(path, [0, 1, 3])
    fit = _dynamics(path)
    assert fit["time"] == "epoch" and "epoch clock" in fit["verdict"]


@pytest.mark.parametrize("time,match", [("lr", "no /scalars/lr"), ("steps", "steps_per_epoch"),
                                        ("wallclock", "no /scalars/wallclock")])
def test_a_clock_the_file_lacks_is_a_usage_error(tmp_path, time, match):
    path = tmp_path / "bare.h5"
    _write(path, [0, 1, 3])
    with pytest.raises(UsageError, match=match):
        _dynamics(path, time)


def test_a_nan_learning_rate_leaves_the_dynamics_unfitted_with_the_epoch(tmp_path):
    path = tmp_path / "nanlr.h5"
    _write(path, [0, 1, 3, 4], lr=[0.1, float("nan"), 0.1, 0.1])
    fit = _dynamics(path)
    assert fit["fitted"] is False and "epoch 1" in fit["reason"]
    assert "cumulative learning rate" in fit["verdict"]
    # a selection after the NaN does not need it
    assert _dynamics(path, epochs="3:4")["reason"].startswith("needs at least 3 epochs")


# ---------------------------------------------------------------------- CLI: --time, JSON, verdict
def test_snr_json_dynamics_default_clock_and_per_j_slopes(cli):
    res = cli("snr", BUNDLED, "--format", "json", "--quiet")
    assert res.exit_code == 0, res.stderr
    dyn = json.loads(res.stdout)["dynamics"]
    assert dyn["time"] == "lr" and dyn["clock"] == "cumulative learning rate"
    assert len(dyn["slopes"]) == len(dyn["r2_separate"]) == 9
    assert dyn["slope_spread"] == pytest.approx(61, rel=0.02)
    assert "grow in proportion" in dyn["verdict"]


def test_snr_time_option_picks_the_clock_and_the_table_says_so(cli):
    res = cli("snr", BUNDLED, "--time", "epoch", "--quiet")
    assert res.exit_code == 0, res.stderr
    verdict = " ".join(res.stdout.split("\ndynamics: ")[-1].split())  # wrapped to the width
    assert "on the epoch clock" in verdict
    res = cli("report", BUNDLED, "--time", "train_acc", "--format", "json", "--quiet",
              "--epochs", "30:600")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["dynamics"]["time"] == "train_acc"


def test_snr_time_the_file_lacks_is_a_usage_error_before_any_work(cli):
    res = cli("snr", BUNDLED, "--time", "wallclock")
    assert res.exit_code == 2
    assert "no /scalars/wallclock" in res.stderr and res.stdout == ""


def test_snr_plot_draws_the_law_through_its_clock(tmp_path, monkeypatch):
    """An accepted fit on the cumulative learning rate is a line in that clock, not in epochs:
    the figure maps the epochs onto the clock it was fitted on (a wrong mapping would predict
    ω far from the data)."""
    from ncanalyze.plots import central_path

    seen = {}
    real = central_path.fitted_curves

    def spy(dynamics, times, c):
        seen["times"] = np.asarray(times)
        return real(dynamics, times, c)

    monkeypatch.setattr(central_path, "fitted_curves", spy)
    rng = np.random.default_rng(4)
    c, p = 3, 5
    s0 = rng.normal(size=(p, c))
    s0 -= s0.mean(axis=1, keepdims=True)
    epochs, clock = [0, 2, 5, 9], [0.0, 20.0, 38.0, 46.0]  # lr 0.5 then 0.1, as above
    rows = [np.linalg.svd(s, compute_uv=False)[: c - 1].tolist()
            for s in central_path_flow(s0, clock, steps_per_unit=50)]
    fit = fit_dynamics(clock, rows, c, epochs=epochs, time="lr")
    assert central_path.law_accepted(fit)
    central_path.plot_snr(tmp_path / "snr.png",
                          [{"epoch": e, "snr_singular_values": r} for e, r in zip(epochs, rows)],
                          fit, c)
    assert (tmp_path / "snr.png").read_bytes().startswith(b"\x89PNG")
    assert seen["times"][0] == pytest.approx(0.0) and seen["times"][-1] == pytest.approx(46.0)


def test_snr_plot_draws_no_law_the_verdict_rejects(cli, tmp_path, monkeypatch):
    """The bundled run's fit (min R² = -359) is rejected: no fitted curve, and the command
    says where it wrote the figure (issue 20 item 3)."""
    from ncanalyze.plots import central_path

    called = []
    monkeypatch.setattr(central_path, "fitted_curves", lambda *a: called.append(a))
    assert not central_path.law_accepted(_dynamics(BUNDLED))
    res = cli("snr", BUNDLED, "--plot", tmp_path / "snr.png")
    assert res.exit_code == 0, res.stderr
    assert f"wrote {tmp_path / 'snr.png'}" in res.stderr and called == []


@pytest.mark.parametrize("with_lr", [False, True])
def test_a_run_with_epochs_near_2_to_the_62_gets_a_clean_verdict(cli, tmp_path, with_lr):
    """End to end (the suite turns ncanalyze RuntimeWarnings into errors): no NaN slope
    described as 'shrink', on the epoch clock and on the cumulative learning rate."""
    path = tmp_path / "huge.h5"
    base = 2**62
    _write(path, [base, base + 1, base + 2, base + 5], lr=[0.1] * 4 if with_lr else None)
    res = cli("snr", path, "--format", "json", "--quiet")
    assert res.exit_code == 0, res.stderr
    dyn = json.loads(res.stdout)["dynamics"]
    assert dyn["fitted"] and np.isfinite(dyn["slope"]) and dyn["slope"] > 0
    assert "shrink" not in dyn["verdict"]
    assert dyn["epochs"] == [base, base + 1, base + 2, base + 5]
