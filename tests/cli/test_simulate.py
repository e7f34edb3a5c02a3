"""simulate: gradient descent on the UFM converges to the geometry theory predicts.

Closed forms (Tirer & Bruna Thms 3.1, 3.2, 4.1–4.2; derivation in docs/SIMULATE.md) are
computed independently of the simulation code path that writes the file.
"""

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from ncanalyze.analysis import analyze
from tests.conftest import run_cli
from ncanalyze.errors import UsageError
from ncanalyze.io import open_run
from ncanalyze.simulate import UFMConfig, mse_minimizer, predicted_geometry, simulate


def _last(path, **kw):
    _, res = analyze(path, epochs="last", **kw)
    return res[-1].values


def _norms(path):
    with open_run(path) as run:
        e = int(run.info.epochs[-1])
        w = run.weight(e).astype(np.float64)
        h = np.concatenate([c for c, _ in run.iter_chunks(e)]).astype(np.float64)
        b = run.bias(e)
    return float((w ** 2).sum()), float((h ** 2).sum()), b


def test_bias_free_mse_converges_to_orthogonal_frame(tmp_path):
    cfg = UFMConfig(model="mse", bias="none", classes=4, per_class=5, dim=8, epochs=5000)
    out = simulate(tmp_path / "of.h5", cfg)
    theory = mse_minimizer(4, 5, cfg.lambda_w, cfg.lambda_h, "none")
    assert theory.geometry == "orthogonal frame" and not theory.zero
    v = _last(tmp_path / "of.h5")
    assert v["nc1"] < 1e-12
    assert v["of_distance_means"] < 1e-6 and v["of_distance_weights"] < 1e-6
    assert v["nc3_of"] < 1e-6
    assert v["accuracy"] == 1.0
    w_sq, h_sq, b = _norms(tmp_path / "of.h5")
    assert b is None
    assert w_sq == pytest.approx(theory.w_norm_sq, rel=1e-6)
    assert h_sq == pytest.approx(theory.h_norm_sq, rel=1e-6)
    assert out["objective"] == pytest.approx(theory.objective, rel=1e-9)


def test_free_bias_mse_converges_to_simplex_etf(tmp_path):
    cfg = UFMConfig(model="mse", bias="free", classes=4, per_class=5, dim=8, epochs=5000)
    out = simulate(tmp_path / "etf.h5", cfg)
    theory = mse_minimizer(4, 5, cfg.lambda_w, cfg.lambda_h, "free")
    v = _last(tmp_path / "etf.h5")
    assert v["nc1"] < 1e-12
    assert v["etf_distance_means"] < 1e-6 and v["etf_distance_weights"] < 1e-6
    assert v["self_duality"] < 1e-9 and v["nc3_etf"] < 1e-6
    # An ETF is not an orthogonal frame: the OF distance stays at its ETF value.
    assert v["of_distance_means"] > 0.3
    w_sq, h_sq, b = _norms(tmp_path / "etf.h5")
    assert w_sq == pytest.approx(theory.w_norm_sq, rel=1e-6)
    assert h_sq == pytest.approx(theory.h_norm_sq, rel=1e-6)
    np.testing.assert_allclose(b, np.full(4, 1 / 4), atol=1e-6)
    assert out["objective"] == pytest.approx(theory.objective, rel=1e-9)


def test_above_threshold_converges_to_zero(tmp_path):
    # K·sqrt(n·λ_W·λ_H) = 4·sqrt(5)·0.2 ≈ 1.79 ≥ 1: the only minimizer is W = 0, H = 0.
    cfg = UFMConfig(model="mse", bias="none", lambda_w=0.2, lambda_h=0.2, epochs=3000)
    theory = mse_minimizer(4, 5, 0.2, 0.2, "none")
    assert theory.zero and "zero" in predicted_geometry(cfg)
    out = simulate(tmp_path / "zero.h5", cfg)
    w_sq, h_sq, _ = _norms(tmp_path / "zero.h5")
    assert w_sq < 1e-12 and h_sq < 1e-12
    assert out["objective"] == pytest.approx(theory.objective, rel=1e-9)


def test_threshold_formula_edges():
    k, n = 4, 5
    lam_at = 1 / (k * math.sqrt(n))  # K·sqrt(n)·λ = 1 with λ_W = λ_H = λ
    assert mse_minimizer(k, n, lam_at * 0.99, lam_at * 0.99).zero is False
    assert mse_minimizer(k, n, lam_at * 1.01, lam_at * 1.01).zero is True


def test_decayed_bias_collapses(tmp_path):
    cfg = UFMConfig(model="mse", bias="decayed", lambda_b=5e-3, epochs=5000)
    simulate(tmp_path / "dec.h5", cfg)
    v = _last(tmp_path / "dec.h5")
    assert v["nc1"] < 1e-12
    # Observed (Tirer & Bruna, remark after Thm 3.2): the centred means form a simplex ETF.
    assert v["etf_distance_means"] < 1e-4


def test_cross_entropy_converges_to_simplex_etf(tmp_path):
    cfg = UFMConfig(model="ce", bias="free", lambda_w=5e-4, lambda_h=5e-4, epochs=5000)
    simulate(tmp_path / "ce.h5", cfg)
    _, res = analyze(tmp_path / "ce.h5")
    first, last = res[0].values, res[-1].values
    # CE converges slowly (logarithmically in the margin): NC1 falls ~6 decades here.
    assert last["nc1"] < 1e-5 and last["nc1"] < first["nc1"] * 1e-4
    assert last["etf_distance_means"] < 0.01 and last["etf_distance_weights"] < 0.02
    assert last["self_duality"] < 1e-3
    assert last["etf_distance_means"] < first["etf_distance_means"] / 50


def test_extended_relu_model_converges_to_orthogonal_frame(tmp_path):
    k, n, lam = 4, 5, 5e-3
    cfg = UFMConfig(model="extended", bias="none", classes=k, per_class=n, dim=32,
                    epochs=10000, lambda_w=lam, lambda_h=lam, lambda_w1=lam)
    out = simulate(tmp_path / "ext.h5", cfg)
    # Global minimum (Thms 4.1-4.2): per singular direction (s-1)²/(2K) + (3/2)·c·s^(2/3)
    # with c = (n·λ_W2·λ_W1·λ_H)^(1/3), K directions.
    c = (n * lam ** 3) ** (1 / 3)
    best = minimize_scalar(lambda s: (s - 1) ** 2 / (2 * k) + 1.5 * c * s ** (2 / 3),
                           bounds=(0, 1), method="bounded", options={"xatol": 1e-12})
    assert out["objective"] == pytest.approx(k * best.fun, rel=1e-4)
    assert out["objective"] >= k * best.fun - 1e-12
    v = _last(tmp_path / "ext.h5", layers=True)
    assert v["nc1"] < 1e-8
    assert v["of_distance_means"] < 0.05 and v["of_distance_weights"] < 0.05
    assert set(v["layers"]) == {"h1", "pre_relu"}
    assert v["layers"]["h1"]["nc1"] < 1e-6
    with open_run(tmp_path / "ext.h5") as run:
        assert run.info.num_features == 32 and run.info.has_bias is False


def test_invalid_settings():
    with pytest.raises(UsageError):
        UFMConfig(model="svm").validate()
    with pytest.raises(UsageError):
        UFMConfig(model="extended", bias="free").validate()
    with pytest.raises(UsageError):
        UFMConfig(classes=1).validate()


def test_divergence_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="diverged"):
        simulate(tmp_path / "x.h5", UFMConfig(lr=500.0, epochs=200, init_scale=1.0))
    assert list(tmp_path.iterdir()) == []  # no partial run left behind


def test_cli_simulate_prints_prediction(tmp_path):
    out = tmp_path / "cli.h5"
    r = run_cli("simulate", str(out), "--bias", "none", "--steps", "2000")
    assert r.exit_code == 0, r.output
    assert "orthogonal frame" in r.stdout
    r = run_cli("simulate", str(out))
    assert r.exit_code == 2 and "exists" in r.stderr
    r = run_cli("simulate", "--help")
    assert "Example" in r.stdout and "simplex ETF" in r.stdout


def test_steps_option_and_the_deprecated_epochs_name(tmp_path):
    """`--steps` counts gradient-descent steps; `--epochs`, its old name, still works with a
    note, since `--epochs` selects epochs in every other command (issue 20 item 9)."""
    new = run_cli("simulate", tmp_path / "a.h5", "--steps", "30", "--saves", "3")
    assert new.exit_code == 0, new.stderr
    assert "steps of 30," in new.stdout and "now --steps" not in new.stderr
    old = run_cli("simulate", tmp_path / "b.h5", "--epochs", "30", "--saves", "3")
    assert old.exit_code == 0, old.stderr
    assert "now --steps" in old.stderr and "steps of 30," in old.stdout
    both = run_cli("simulate", tmp_path / "c.h5", "--epochs", "30", "--steps", "40")
    assert both.exit_code == 2 and "--steps only" in both.stderr
    assert "--steps" in run_cli("simulate", "--help", env={"COLUMNS": "120"}).stdout


@pytest.mark.parametrize("args,named", [
    (["--seed", "-1"], "--seed"),
    (["--classes", "3000000"], "--classes"),
    (["--per-class", "100000000"], "--per-class"),
    (["--dim", "30000"], "--dim"),
    (["--dim1", "30000", "--model", "extended", "--bias", "none"], "--dim1"),
    (["--saves", "100000000"], "--saves"),
    (["--per-class", "1e8"], "--per-class"),
    (["--steps", "99999999999999999999999"], "--steps"),
])
def test_options_beyond_the_limits_are_refused_before_allocating(tmp_path, args, named):
    """Issue 16 item 14: exit 2 naming the option, at once (nothing allocated, no file)."""
    r = run_cli("simulate", tmp_path / "s.h5", *args)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    assert len(lines) == 1 and named in lines[0], r.stderr
    assert not (tmp_path / "s.h5").exists()


def test_simulation_too_large_for_memory_is_refused_by_the_plan(tmp_path, monkeypatch):
    """Within the limits but beyond the memory available: refused before anything is made."""
    import ncanalyze.simulate as sim

    monkeypatch.setattr(sim, "available_memory", lambda: 2**30)
    with pytest.raises(UsageError, match="GiB"):
        simulate(tmp_path / "x.h5", UFMConfig(classes=1000, per_class=1000, dim=8))
    assert list(tmp_path.iterdir()) == []
    assert sim.simulation_bytes(UFMConfig(classes=1000, per_class=1000, dim=8)) > 2**30 // 2
