"""The bundled example trains end to end (few epochs) and its run is readable."""

import subprocess
import sys
from pathlib import Path

import pytest

from ncanalyze.analysis import analyze

pytest.importorskip("torch")
pytest.importorskip("sklearn")
SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"


def test_example_script_runs_and_reports(tmp_path):
    out = tmp_path / "run.h5"
    # A shallower net than the default: the default one needs ~10 epochs to leave chance level.
    r = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "6", "--save-every", "2", "--lr", "0.1",
                        "--widths", "128,64,32", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ncanalyze report" in r.stdout or "ncanalyze metrics" in r.stdout
    header, res = analyze(out, layers=True, splits=("test",))
    assert [e.epoch for e in res] == [0, 2, 4, 6]
    assert header["classes"] == 10 and header["samples"] == 1347
    assert res[-1].values["accuracy"] > 0.3  # chance is 0.1
    assert res[-1].values["nc1"] < res[0].values["nc1"]
    assert set(res[-1].values["layers"]) == {"block1", "block2"}


def test_example_script_log_spaced_records(tmp_path):
    out = tmp_path / "run.h5"
    r = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "9", "--records", "4",
                        "--widths", "32,16", "--out", str(out), "--no-report"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    _, res = analyze(out, quantities=("metrics",))
    assert [e.epoch for e in res] == [0, 1, 2, 4, 9]  # 0, geomspace(1, 9, 4) rounded, last
