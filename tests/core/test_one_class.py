"""Only one class with samples (issue 16 item 5): the SNR keys are null with a reason, from
the CLI (exit 0) and from the API, as metrics already did."""

from __future__ import annotations

import numpy as np

import ncanalyze
from ncanalyze.io import RunWriter
from tests.conftest import run_cli


def _one_class_run(path):
    rng = np.random.default_rng(0)
    with RunWriter(path, np.zeros(20, dtype=np.int64), num_classes=5) as w:
        w.add_epoch(1, rng.normal(size=(20, 4)).astype(np.float32))
    return path


def test_snr_and_report_of_a_run_with_one_class_present(tmp_path):
    path = _one_class_run(tmp_path / "one.h5")
    for command in ("snr", "report", "metrics"):
        result = run_cli(command, path, "-f", "json")
        assert result.exit_code == 0, (command, result.stderr)
        assert "internal error" not in result.stderr
    result = run_cli("snr", path, "-f", "json")
    assert "fewer than two classes have samples" in result.stderr


def test_snr_api_with_one_class_present():
    h = np.random.default_rng(1).normal(size=(12, 3))
    for num_classes in (None, 4):
        out = ncanalyze.snr(h, np.zeros(12, dtype=int), num_classes=num_classes)
        assert out["snr_min"] is None and out["snr_singular_values"] is None
        assert any("fewer than two classes" in w for w in out["warnings"])
