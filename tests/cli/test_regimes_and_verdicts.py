"""How results read in each regime (issue 20 items 4 and 7): the language-model regime
(C − 1 > P) leads with its own keys and reports only the SNR singular values that can be
nonzero; the dynamics verdict is one short line, absent for a cross-entropy run (JSON keeps
the fit); a null key says why in the table; gate lines say plainly whether the gate fails."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncanalyze.io import RunWriter
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """C = 60 classes (all present) in P = 8 dimensions, three epochs."""
    rng = np.random.default_rng(7)
    C, P = 60, 8
    y = np.repeat(np.arange(C), 6)
    emb = rng.normal(size=(C, P))
    path = tmp_path_factory.mktemp("lm") / "lm.h5"
    with RunWriter(path, y, loss="mse") as w:
        for e in (1, 2, 3):
            h = emb[y] + rng.normal(size=(y.size, P)) / e
            w.add_epoch(e, h.astype(np.float32), emb, np.zeros(C))
    return path


def _rows(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line.startswith("  ")]


def test_language_model_headline_leads_with_the_regimes_keys(lm_run):
    r = run_cli("report", lm_run, env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.stderr
    rows = _rows(r.stdout)
    assert rows[:2] == ["classes_present", "nc1_trace_ratio"]
    assert {"gnc2", "unc3", "duality_mean", "cdnv"} <= set(rows)
    assert "etf_distance_means" not in rows and "of_distance_means" not in rows
    assert "C − 1 > P = 8" in r.stdout
    assert (r.stdout + r.stderr).count("exact simplex ETF is impossible") == 1  # said once


def test_language_model_snr_reports_the_rank_many_singular_values(lm_run):
    doc = json.loads(run_cli("snr", lm_run, "-f", "json").stdout)
    last = doc["epochs"][-1]
    assert len(last["snr_singular_values"]) == 8  # min(P, C − 1), not C = 60
    assert last["snr_min"] == last["snr_singular_values"][-1] > 0
    assert last["snr_ratio"] == pytest.approx(last["snr_max"] / last["snr_min"])
    assert sum("0 by construction" in w for w in doc["warnings"]) == 1
    csv_head = run_cli("snr", lm_run, "-f", "csv").stdout.splitlines()[0].split(",")
    assert sum(c.startswith("snr_singular_values_") for c in csv_head) == 8
    table = run_cli("snr", lm_run, env={"COLUMNS": "100"}).stdout
    shown = [k for k in _rows(table) if k.startswith("snr_singular_values_")]
    assert shown == [f"snr_singular_values_{j}" for j in (0, 1, 2, 5, 6, 7)]
    assert "C − 1 > P" in doc["dynamics"]["reason"]
    r = run_cli("snr", lm_run, "--fail-if", "snr_singular_values_8>0")
    assert r.exit_code == 2 and "indices 0..7" in r.stderr


def test_cross_entropy_run_prints_no_dynamics_verdict(tmp_path):
    from ncanalyze.simulate import UFMConfig, simulate

    path = tmp_path / "ce.h5"
    simulate(path, UFMConfig(model="ce", epochs=60, saves=5))
    r = run_cli("report", path)
    assert r.exit_code == 0, r.stderr
    assert "dynamics" not in r.stdout and "dynamics" not in r.stderr
    assert "dynamics" not in run_cli("snr", path, "-f", "csv").stderr
    assert "fitted" in json.loads(run_cli("snr", path, "-f", "json").stdout)["dynamics"]


def test_mse_verdict_is_one_short_line_with_details_in_json():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
    r = run_cli("snr", example, env={"COLUMNS": "200"})
    lines = [x for x in r.stdout.splitlines() if x.startswith("dynamics:")]
    assert len(lines) == 1 and len(lines[0]) < 160
    assert "does not fit" in lines[0] and "min R²" in lines[0]
    doc = json.loads(run_cli("snr", example, "-f", "json").stdout)["dynamics"]
    assert doc["summary"] in lines[0] and "per-j slopes span" in doc["verdict"]


def test_a_null_key_says_why_in_the_table(tmp_path):
    y = np.repeat(np.arange(3), 4)
    path = tmp_path / "same.h5"
    with RunWriter(path, y) as w:  # every sample at the origin: no class-mean geometry
        w.add_epoch(1, np.zeros((12, 4), np.float32), np.eye(3, 4), np.zeros(3))
    r = run_cli("metrics", path, "-q")
    assert r.exit_code == 0, r.stderr
    assert "— nc1: undefined: the class means coincide" in r.stdout


def test_gate_lines_say_whether_the_gate_fails():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
    r = run_cli("metrics", example, "--epochs", "last", "-f", "csv",
                "--fail-if", "nc1>0.01", "--fail-if", "nc1>1e-4")
    assert r.exit_code == 1
    assert "gate passes: nc1>0.01 does not hold at epoch 600 (nc1 = " in r.stderr
    assert "gate FAILED: nc1>1e-4 holds at epoch 600 (nc1 = " in r.stderr


def test_readme_language_model_example_is_the_real_output(tmp_path, monkeypatch):
    """The README's synthetic language-model run and its table, verbatim."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Language models", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    pasted = section.split("$ ncanalyze metrics lm.h5\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    real = run_cli("metrics", "lm.h5", env={"COLUMNS": "80"}).stdout
    table = pasted[pasted.index("ncanalyze metrics ·"):]
    assert table.split("\nshown:")[0] == real.split("\nshown:")[0]


def test_markdown_of_one_epoch_says_there_is_no_trend():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
    md = run_cli("report", example, "--epochs", "last", "-f", "markdown").stdout
    assert "One epoch selected (600)" in md and "| `nc1` | 5.981e-04 |" in md
    assert "trend" not in md.split("One epoch selected")[1].split("\n", 1)[1]


def test_decomposition_heading_says_loss_includes_the_penalty_and_shows_lambda():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
    out = run_cli("decompose", example, "--epochs", "600", "--keys", "loss,scalars.train_loss",
                  env={"COLUMNS": "80"}).stdout
    assert "MSE decomposition (Han et al.) · loss includes λ/2‖W̃‖², λ = 0.0001" in out
    out = run_cli("decompose", example, "--epochs", "600", "--weight-decay", "0.01").stdout
    assert "λ = 0.01" in out
