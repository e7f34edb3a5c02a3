"""CLI of the central-path analysis: decompose, snr (dynamics, --plot), report (docs/CENTRAL_PATH.md)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tests.conftest import run_cli
from ncanalyze.core.decomposition import DECOMPOSE_KEYS, decompose, least_squares_classifier
from ncanalyze.core.dynamics import central_path_flow
from ncanalyze.core.snr import SNR_KEYS, snr
from ncanalyze.io import RunWriter

EPOCHS = list(range(0, 61, 10))
TAU = 2.0


def _within_identity(rng, y, p, c):
    z = rng.normal(size=(y.size, p))
    for k in range(c):
        z[y == k] -= z[y == k].mean(axis=0)
    ev, u = np.linalg.eigh(z.T @ z / y.size)
    return z @ (u / np.sqrt(ev)) @ u.T


def write_central_path_run(path, *, c=4, p=6, n_per=30, weight_decay=None, bias=True,
                           counts=None, seed=0):
    """Class means on the central-path gradient flow, Σ_W = I, classifier W_LS + decaying noise.

    Returns the per-epoch (features, weight, bias) written, for reference computations.
    """
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(c), counts if counts is not None else n_per)
    rng.shuffle(y)
    s0 = 0.6 * rng.normal(size=(p, c))
    s0 -= s0.mean(axis=1, keepdims=True)
    snrs = central_path_flow(s0, [TAU * e for e in EPOCHS], steps_per_unit=50)
    noise = _within_identity(rng, y, p, c)
    offset = 3.0 * rng.normal(size=p)
    written = []
    with RunWriter(path, y, num_classes=c, weight_decay=weight_decay, loss="mse") as w:
        for e, s in zip(EPOCHS, snrs):
            h = offset + s.T[y] + noise
            w_ls, b_ls = least_squares_classifier(h, y, bias=bias)
            w_e = w_ls + 0.3 * np.exp(-e / 20) * rng.normal(size=w_ls.shape)
            b_e = None if b_ls is None else b_ls + 0.1 * np.exp(-e / 20) * rng.normal(size=c)
            w.add_epoch(e, h, w_e, b_e, train_loss=float(e))
            written.append((h, w_e, b_e))
    return y, written


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cp") / "run.h5"
    y, written = write_central_path_run(path)
    return path, y, written


def invoke(*args):
    return run_cli(*args)


def test_report_table_shows_every_quantity_and_the_verdict(run_file):
    path, _, _ = run_file
    res = invoke("report", path, "--all")
    assert res.exit_code == 0, res.stderr
    for key in ("nc1", "loss_nc1", "loss_ls_perp", "snr_ratio", "loss_ls_predicted"):
        assert key in res.stdout
    tail = " ".join(line.strip() for line in res.stdout.split("\n\n")[-1].splitlines())
    assert tail.startswith("dynamics: the SNR follows Han et al.'s central-path law"), tail
    assert tail.replace("\u00a0", " ").endswith("(min R² 1.000); the fit: -f json"), tail


def test_report_json_agrees_with_array_api_and_has_dynamics(run_file):
    path, y, written = run_file
    res = invoke("report", path, "--format", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["command"] == "report"
    dyn = doc["dynamics"]
    assert dyn["fitted"] and dyn["slope"] == pytest.approx(TAU, rel=1e-6)
    assert min(dyn["r2"]) > 1 - 1e-9 and len(dyn["intercepts"]) == 3
    for e, (h, w, b) in zip(doc["epochs"], written):
        want_d = decompose(h, y, w, b)
        want_s = snr(h, y)
        for k in DECOMPOSE_KEYS:
            assert e[k] == pytest.approx(want_d[k], rel=1e-9), k
        for k in SNR_KEYS[1:]:
            assert e[k] == pytest.approx(want_s[k], rel=1e-9), k
        # balanced, λ = 0, with bias: the SNR predicts the least-squares loss
        assert e["loss_ls_predicted"] == pytest.approx(e["loss_ls"], rel=1e-9)
        assert "nc1" in e and "accuracy" in e


def test_snr_json_dynamics_and_decompose_json_has_none(run_file):
    path, _, _ = run_file
    doc = json.loads(invoke("snr", path, "--format", "json").stdout)
    assert "dynamics" in doc and set(SNR_KEYS) <= set(doc["epochs"][0])
    assert "loss" not in doc["epochs"][0]
    doc = json.loads(invoke("decompose", path, "--format", "json").stdout)
    assert "dynamics" not in doc and set(DECOMPOSE_KEYS) <= set(doc["epochs"][0])


def test_report_markdown_has_summary_gates_and_verdict(run_file):
    path, _, _ = run_file
    res = invoke("report", path, "--format", "markdown", "--fail-if", "snr_ratio>10",
                 "--fail-if", "central_path_ratio>0.5")
    assert res.exit_code == 0, res.stderr
    md = res.stdout
    assert md.startswith("### ncanalyze report")
    assert "| `loss_ls_perp` |" in md and "| `snr_min` |" in md
    assert "✅ gate passes: snr_ratio>10 does not hold" in md
    assert "dynamics: the SNR follows Han et al.'s central-path law" in md


def test_fail_if_on_decomposition_key_exits_1(run_file):
    path, _, _ = run_file
    res = invoke("report", path, "--format", "json", "--fail-if", "loss_nc1>1e-6")
    assert res.exit_code == 1
    assert "FAILED: loss_nc1>1e-6" in res.stderr
    json.loads(res.stdout)  # the document is still complete


def test_csv_and_jsonl(run_file):
    path, _, _ = run_file
    rows = list(csv.DictReader(io.StringIO(invoke("snr", path, "--format", "csv").stdout)))
    assert len(rows) == len(EPOCHS)
    assert {"snr_singular_values_0", "snr_singular_values_2", "snr_ratio"} <= set(rows[0])
    assert "snr_singular_values_3" not in rows[0]  # C = 4: ω_3 = 0 by construction
    lines = invoke("decompose", path, "--format", "jsonl").stdout.strip().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == EPOCHS


def test_weight_decay_from_option_overrides_file_attribute(tmp_path):
    path = tmp_path / "wd.h5"
    counts = [20, 35, 50]
    y, written = write_central_path_run(path, c=3, p=5, counts=counts, weight_decay=0.02,
                                        seed=3)
    h, w, b = written[-1]
    doc = json.loads(invoke("decompose", path, "--epochs", "last", "--format", "json").stdout)
    assert doc["settings"]["weight_decay"] == 0.02
    want = decompose(h, y, w, b, weight_decay=0.02)
    for k in DECOMPOSE_KEYS:
        assert doc["epochs"][0][k] == pytest.approx(want[k], rel=1e-9)
    doc = json.loads(invoke("decompose", path, "--epochs", "last", "--weight-decay", "0",
                            "--format", "json").stdout)
    assert doc["settings"]["weight_decay"] == 0.0
    assert doc["epochs"][0]["loss"] == pytest.approx(decompose(h, y, w, b)["loss"], rel=1e-9)


def test_bias_free_run(tmp_path):
    path = tmp_path / "nobias.h5"
    y, written = write_central_path_run(path, bias=False, seed=5)
    doc = json.loads(invoke("decompose", path, "--format", "json").stdout)
    for e, (h, w, _) in zip(doc["epochs"], written):
        assert e["loss"] == pytest.approx(decompose(h, y, w)["loss"], rel=1e-9)
        assert e["loss"] == pytest.approx(e["loss_nc1"] + e["loss_nc23"] + e["loss_ls_perp"],
                                          rel=1e-9)


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_plots_by_extension(run_file, tmp_path, ext):
    path, _, _ = run_file
    fig = tmp_path / f"snr.{ext}"
    res = invoke("snr", path, "--plot", fig, "--quiet")
    assert res.exit_code == 0, res.stderr
    magic = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}[ext]
    assert fig.read_bytes().startswith(magic)
    fig2 = tmp_path / f"dec.{ext}"
    assert invoke("decompose", path, "--plot", fig2, "-q").exit_code == 0
    assert fig2.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_plot_with_unknown_extension_is_a_usage_error(run_file, tmp_path):
    path, _, _ = run_file
    res = invoke("snr", path, "--plot", tmp_path / "fig.bmp")
    assert res.exit_code == 2
    assert "--plot" in res.stderr and ".png" in res.stderr
    assert not (tmp_path / "fig.bmp").exists()


def test_singular_within_covariance_warns_and_ridge_fixes_it(tmp_path):
    path = tmp_path / "wide.h5"
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)  # N − C = 9 < P = 12
    with RunWriter(path, y) as w:
        for e in range(3):
            w.add_epoch(e, rng.normal(size=(12, 12)) + np.eye(3, 12)[y] * (e + 1))
    res = invoke("snr", path, "--format", "json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert all(ep["snr_max"] is None for ep in doc["epochs"])
    assert "P = 12 > N − C = 9" in res.stderr and "infinite SNR" in res.stderr
    assert doc["dynamics"]["fitted"] is False
    res = invoke("snr", path, "--format", "json", "--ridge", "0.5")
    doc = json.loads(res.stdout)
    assert all(ep["snr_max"] > 0 for ep in doc["epochs"])
    assert invoke("snr", path, "--ridge", "-1").exit_code == 2


def test_decompose_without_weight_is_an_input_error(tmp_path):
    path = tmp_path / "noweight.h5"
    y = np.repeat(np.arange(3), 5)
    with RunWriter(path, y) as w:
        w.add_epoch(0, np.random.default_rng(0).normal(size=(15, 4)))
    res = invoke("decompose", path)
    assert res.exit_code == 3 and "/weight" in res.stderr
    res = invoke("report", path, "--format", "json")  # report skips decompose, says so
    assert res.exit_code == 0
    assert "decompose skipped" in res.stderr


def test_help_shows_examples():
    for cmd in ("decompose", "snr", "report"):
        res = invoke(cmd, "--help")
        assert res.exit_code == 0 and "Example: ncanalyze " + cmd in res.stdout
