"""Many classes (docs/METRICS.md, "Many classes"): absent and one-sample classes, C − 1 > P,
tiled reductions equal to the dense float64 reference for every tile size, memory O(C·P)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ncanalyze.core.decomposition import DECOMPOSE_KEYS, decompose
from ncanalyze.core.metrics import nc_metrics
from ncanalyze.core.values import METRIC_KEYS

from tests.conftest import run_cli
from tests.factories import write_run
from tests.reference import assert_close, reference_decompose, reference_metrics

RTOL = 1e-9
#: 1 byte: every tile is one class (pairs) or one class column (decisions).
TILES = [1, 3000, None]


def _vocab_like(C=30, P=6, seed=0, absent=(3, 7, 20), singles=(1, 2), n=220, dtype=np.float64):
    """Zipf-ish labels over C classes with absent and one-sample classes; C − 1 > P."""
    rng = np.random.default_rng(seed)
    others = [c for c in range(C) if c not in absent and c not in singles]
    weights = 1.0 / np.arange(1, len(others) + 1) ** 1.1
    y = rng.choice(others, size=n - len(singles), p=weights / weights.sum())
    y = np.concatenate([y, np.array(singles, dtype=y.dtype)])
    y = y[rng.permutation(y.size)]
    for c in others:  # every non-absent class present at least once
        if not np.any(y == c):
            y[np.flatnonzero(np.isin(y, others))[0]] = c
    means = 3.0 * rng.normal(size=(C, P))
    h = (means[y] + rng.normal(size=(y.size, P))).astype(dtype)
    w = means + 0.5 * rng.normal(size=(C, P))
    b = 0.3 * rng.normal(size=C)
    return h, y, w, b


def _present(y, C):
    return np.flatnonzero(np.bincount(y, minlength=C))


@pytest.mark.parametrize("tile_bytes", TILES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_absent_one_sample_and_more_classes_than_dims_match_reference(tile_bytes, dtype):
    C = 30
    h, y, w, b = _vocab_like(C, dtype=dtype)
    assert len(_present(y, C)) == 27 and np.sum(np.bincount(y) == 1) >= 2
    got = nc_metrics(h, y, w, b, num_classes=C, tile_bytes=tile_bytes)
    want = reference_metrics(h.astype(np.float64), y, w, b, C)
    assert set(want) == set(METRIC_KEYS)  # the reference covers every key
    assert set(got) - {"warnings"} == set(METRIC_KEYS)
    assert_close(got, want, rtol=RTOL, atol=1e-12)
    assert got["classes_present"] == 27 and got["class_count_min"] == 1
    assert any("3 of 30 classes have no samples" in m for m in got["warnings"])
    assert any("C − 1 = 26 > P = 6" in m for m in got["warnings"])


@pytest.mark.parametrize("options", [dict(global_mean="classes", center_weights=True),
                                     dict(global_mean="samples", center_weights=False)])
@pytest.mark.parametrize("tile_bytes", [1, None])
def test_balanced_case_options_match_reference(options, tile_bytes):
    rng = np.random.default_rng(5)
    C, P = 24, 40
    y = rng.permutation(np.repeat(np.arange(C), 6))
    means = rng.normal(size=(C, P)) + 2.0
    h = means[y] + 0.4 * rng.normal(size=(y.size, P))
    w = rng.normal(size=(C, P)) + 0.5
    b = rng.normal(size=C)
    got = nc_metrics(h, y, w, b, tile_bytes=tile_bytes, **options)
    assert_close(got, reference_metrics(h, y, w, b, C, **options), rtol=RTOL, atol=1e-12)


def test_array_api_strict_tiles_match_reference():
    xp = pytest.importorskip("array_api_strict")
    C = 30
    h, y, w, b = _vocab_like(C, seed=3)
    got = nc_metrics(xp.asarray(h), xp.asarray(y), xp.asarray(w), xp.asarray(b), num_classes=C,
                     tile_bytes=1)
    assert_close(got, reference_metrics(h, y, w, b, C), rtol=RTOL, atol=1e-12)


def test_results_do_not_depend_on_the_tile_size():
    C = 120
    h, y, w, b = _vocab_like(C, P=16, seed=9, absent=(0, 50, 119), singles=(4,), n=1500)
    runs = [nc_metrics(h, y, w, b, num_classes=C, tile_bytes=t) for t in (1, 777, 40000, None)]
    for other in runs[1:]:
        assert_close(other, runs[0], rtol=1e-12, atol=1e-15, keys=METRIC_KEYS)
    dec = [decompose(h, y, w, b, num_classes=C, weight_decay=1e-3) for _ in range(1)]
    assert dec[0]["loss"] > 0


@pytest.mark.parametrize("with_bias", [True, False])
def test_decompose_with_absent_classes_matches_reference(with_bias):
    C = 30
    h, y, w, b = _vocab_like(C, seed=4)
    b = b if with_bias else None
    for lam in (0.0, 1e-2):
        got = decompose(h, y, w, b, num_classes=C, weight_decay=lam)
        want, _ = reference_decompose(h, y, w, b, lam, C)
        assert_close(got, want, rtol=1e-9, atol=1e-14, keys=DECOMPOSE_KEYS)


def _absent_file(tmp_path):
    C = 30
    h, y, w, b = _vocab_like(C, seed=6)
    return write_run(tmp_path / "absent.h5", y, [h, h * 0.5], [w, w], [b, b], num_classes=C)


def test_file_with_absent_classes_one_run_warning(tmp_path):
    path = _absent_file(tmp_path)
    res = run_cli("report", path, "-f", "json", "--workers", "1")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    absent = [w for w in doc["warnings"] if "have no samples" in w]
    assert len(absent) == 1 and "3 of 30 classes" in absent[0]  # once per run, not per epoch
    assert [e["classes_present"] for e in doc["epochs"]] == [27, 27]
    assert all(e["loss"] > 0 and e["snr_max"] is not None for e in doc["epochs"])


def test_require_all_classes_makes_absence_an_input_error(tmp_path):
    path = _absent_file(tmp_path)
    res = run_cli("metrics", path, "--require-all-classes")
    assert res.exit_code == 3
    assert "class(es) 3, 7, 20 have no samples" in res.stderr
    assert "--require-all-classes" in res.stderr


def test_memory_limit_too_small_is_refused_with_one_line(tmp_path):
    path = _absent_file(tmp_path)
    res = run_cli("metrics", path, "--memory-limit", "1000000")
    assert res.exit_code == 3
    line = res.stderr.strip()
    assert "\n" not in line and "needs about" in line and "--memory-limit" in line


_SCRIPT = textwrap.dedent("""
    import resource, subprocess, sys
    limit = 2 * 2**30
    cmd = [sys.executable, "-m", "ncanalyze", "report", sys.argv[1], "-f", "json", "--quiet",
           "--workers", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS,
                                                                (limit, limit)))
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    sys.exit(proc.returncode)
""")


def test_twenty_thousand_classes_under_two_gib_of_address_space(tmp_path):
    """0.1.0 took 15.3 GiB here (C×C and rows×C arrays); O(C·P) memory fits in 2 GiB."""
    rng = np.random.default_rng(11)
    C, N, P = 20_000, 40_000, 8
    y = rng.integers(0, C, N)
    means = rng.normal(size=(C, P))
    h = (means[y] + 0.1 * rng.normal(size=(N, P))).astype(np.float32)
    path = write_run(tmp_path / "vocab.h5", y, [h], [means], [0.1 * rng.normal(size=C)],
                     num_classes=C)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(path)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    epoch = json.loads(proc.stdout)["epochs"][0]
    assert epoch["classes_present"] == len(np.unique(y))
    assert 0.0 < epoch["ncc_accuracy"] <= 1.0 and epoch["nc1"] > 0
