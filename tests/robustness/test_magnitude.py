"""Values too large to compute with (docs/RELIABILITY.md §1, "Size limits"): finite features,
class means or classifier rows beyond ±MAX_MAGNITUDE make float64 products overflow (the
metrics are polynomials of degree up to 4 in them). Such a run is refused in one line (exit
3) instead of printing RuntimeWarnings and calling keys "undefined" with exit 0; the writer
refuses to create it. Values up to the float32 range (~3.4e38) are computed as before
(tests/robustness/test_hostile_files.py::test_float32_features_near_the_float32_limit_are_not_an_overflow).
"""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest

from ncanalyze.errors import UsageError
from ncanalyze.io import RunWriter
from ncanalyze.limits import MAX_MAGNITUDE
from tests.conftest import run_cli

C, N_PER, P = 3, 10, 4


def _run(path, features_scale=1.0, weight_scale=1.0, statistics=False):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(C), N_PER)
    h = (np.eye(C, P)[y] * 3 + rng.normal(size=(y.size, P))) * features_scale
    w = rng.normal(size=(C, P)) * weight_scale
    with RunWriter(path, y, weight_decay=1e-3, loss="mse", overwrite=True) as writer:
        writer.add_epoch(0, h, w, np.zeros(C))
    return path


def _refused(path, needle):
    for command in ("metrics", "report", "decompose", "snr"):
        result = run_cli(command, path, "-f", "json")
        assert result.exit_code == 3, (command, result.exit_code, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert needle in result.stderr and "RuntimeWarning" not in result.stderr, result.stderr


def _scaled(tmp_path, dataset, factor):
    """A valid run whose ``dataset`` is multiplied by ``factor`` behind the writer's back."""
    path = _run(tmp_path / "run.h5")
    with h5py.File(path, "a") as f:
        f[dataset][...] = f[dataset][...] * factor
    return path


@pytest.mark.parametrize("dataset", ["/features", "/weight"])
def test_a_features_run_beyond_the_magnitude_limit_is_refused(tmp_path, dataset):
    path = _scaled(tmp_path, dataset, 1e100)
    _refused(path, f"beyond ±{MAX_MAGNITUDE:g}")


def test_a_statistics_run_beyond_the_magnitude_limit_is_refused(tmp_path):
    path = _run(tmp_path / "run.h5")
    stats = tmp_path / "s.h5"
    assert run_cli("convert", "--statistics", path, stats).exit_code == 0
    with h5py.File(stats, "a") as f:
        f["statistics/means"][0, 0, 0] = 1e300
    _refused(stats, f"beyond ±{MAX_MAGNITUDE:g}")


@pytest.mark.parametrize("what", ["features", "weight", "bias"])
def test_the_writer_refuses_values_beyond_the_limit(tmp_path, what):
    y = np.repeat(np.arange(C), N_PER)
    arrays = {"features": np.ones((y.size, P)), "weight": np.ones((C, P)), "bias": np.ones(C)}
    arrays[what][0] = 2 * MAX_MAGNITUDE
    with RunWriter(tmp_path / "w.h5", y) as writer:
        with pytest.raises(UsageError, match=re.escape(f"beyond ±{MAX_MAGNITUDE:g}")):
            writer.add_epoch(0, arrays["features"], arrays["weight"], arrays["bias"])


def test_values_at_the_limit_are_computed(tmp_path):
    path = _run(tmp_path / "run.h5", features_scale=MAX_MAGNITUDE / 10,
                weight_scale=MAX_MAGNITUDE / 10)
    small = _run(tmp_path / "small.h5")
    got = run_cli("report", path, "-f", "json")
    ref = run_cli("report", small, "-f", "json")
    assert got.exit_code == 0 and "RuntimeWarning" not in got.stderr, got.stderr
    a, b = json.loads(got.stdout)["epochs"][0], json.loads(ref.stdout)["epochs"][0]
    for key in ("nc1", "etf_distance_means", "etf_distance_weights", "snr_min", "accuracy"):
        assert a[key] == pytest.approx(b[key], rel=1e-9), key
