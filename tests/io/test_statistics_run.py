"""A statistics run gives every command the keys of the features run of the same data
(docs/FORMAT.md, "Statistics runs"): ``convert --statistics`` reduces a features run with
layers, a split, a classifier, scalars and an absent class; metrics, decompose, snr, report,
plot, --follow and --fail-if on both files agree to 1e-9 relative (the JSON documents) and,
since the same numbers go through the same code, every text format byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ncanalyze.io import RunWriter, open_run
from tests.conftest import run_cli
from tests.factories import write_statistics_run
from tests.reference import assert_values_close

C, P, N, NT = 5, 7, 160, 60
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _features_run(path, rng, epochs=(1, 4, 9)):
    y = np.arange(N) % C
    y[y == 3] = 0  # class 3 is absent
    yt = rng.integers(0, C, NT)
    means = 3 * rng.normal(size=(C, P))
    with RunWriter(path, y, weight_decay=1e-3, loss="mse", splits={"test": yt},
                   steps_per_epoch=10) as w:
        for k, e in enumerate(epochs):
            noise = 1.0 / (1 + k)
            h = means[y] + noise * rng.normal(size=(N, P))
            ht = means[yt] + noise * rng.normal(size=(NT, P))
            w.add_epoch(e, h.astype(np.float32), means + 0.1 * rng.normal(size=(C, P)),
                        0.1 * rng.normal(size=C),
                        layers={"block1": rng.normal(size=(N, 4)).astype(np.float32)},
                        splits={"test": ht.astype(np.float32)}, lr=0.1 / (1 + k),
                        train_loss=1.0 / (1 + k))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats")
    features = _features_run(folder / "features.h5", np.random.default_rng(7))
    stats = folder / "stats.h5"
    result = run_cli("convert", "--statistics", features, stats)
    assert result.exit_code == 0, result.stderr
    assert "statistics run of 3 epochs" in result.stdout
    return features, stats


def _json(*args):
    result = run_cli(*args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _same_document(a: dict, b: dict, files) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "file":
            continue
        if key == "epochs":
            assert [e["epoch"] for e in a[key]] == [e["epoch"] for e in b[key]]
            for ea, eb in zip(a[key], b[key]):
                _same_values(ea, eb)
        elif key == "dynamics":
            _same_values(a[key], b[key])
        elif key == "warnings":
            assert [w.replace(str(files[1]), str(files[0])) for w in b[key]] == a[key]
        else:
            assert a[key] == b[key], key


def _same_values(a: dict, b: dict) -> None:
    """Equal to 1e-9 relative, nested dicts (layers, splits, scalars) included."""
    assert a.keys() == b.keys()
    flat = {k: v for k, v in a.items() if not isinstance(v, dict)}
    assert_values_close({k: b[k] for k in flat}, flat, rtol=1e-9, atol=1e-300)
    for k, v in a.items():
        if isinstance(v, dict):
            _same_values(v, b[k])


@pytest.mark.parametrize("command, options", [
    ("metrics", ["--layers", "--split", "test"]),
    ("metrics", ["--global-mean", "classes", "--center-weights"]),
    ("decompose", []),
    ("snr", ["--time", "steps"]),
    ("report", ["--layers", "--split", "test"]),
])
def test_every_key_equal_to_the_features_run(runs, command, options):
    a, b = (_json(command, path, *options) for path in runs)
    assert a["epochs"][0].get("nc1") is not None or command != "metrics"
    _same_document(a, b, runs)


def test_report_keys_are_all_there(runs):
    """No key is missing on the statistics run: every key needs only statistics + decisions."""
    doc = _json("report", runs[1], "--layers", "--split", "test")
    last = doc["epochs"][-1]
    for key in ("nc1", "cdnv", "accuracy", "ncc_accuracy", "ncc_mismatch", "loss", "loss_nc1",
                "snr_singular_values", "classes_present"):
        assert last[key] is not None, key
    assert set(last["layers"]["block1"]) >= {"nc1", "cdnv"}
    assert last["splits"]["test"]["ncc_accuracy"] is not None
    assert not any("per-sample" in w for w in doc["warnings"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "markdown", "table"])
def test_text_formats_identical(runs, fmt):
    outs = []
    for path in runs:
        result = run_cli("report", path, "--layers", "--split", "test", "-f", fmt)
        assert result.exit_code == 0, result.stderr
        outs.append(result.stdout.replace(str(path), "RUN"))
    assert outs[0] == outs[1]


def test_fail_if_and_gate_all(runs):
    for path in runs:
        held = run_cli("metrics", path, "--fail-if", "nc1>0", "-f", "json")
        assert held.exit_code == 1 and "nc1>0" in held.stderr
        free = run_cli("metrics", path, "--fail-if", "accuracy>1", "--gate", "all")
        assert free.exit_code == 0, free.stderr


def test_plot(runs, tmp_path):
    for k, path in enumerate(runs):
        out = tmp_path / f"panel{k}.png"
        result = run_cli("plot", path, "-o", out)
        assert result.exit_code == 0, result.stderr
        assert out.stat().st_size > 1000


def test_python_api_equal(runs):
    from ncanalyze.analysis import analyze

    (_, a), (_, b) = (analyze(p, quantities=("metrics", "decompose", "snr"), layers=True,
                              splits=("test",)) for p in runs)
    for ra, rb in zip(a, b):
        _same_values(ra.values, rb.values)


def test_reduction_stores_what_the_passes_compute(runs):
    features, stats = runs
    with h5py.File(stats, "r") as h:
        assert h["statistics"].attrs["feature_dtype"] == "float32"
        assert h["layers/block1"].attrs["feature_dtype"] == "float32"
        assert h.attrs["steps_per_epoch"] == 10 and h.attrs["weight_decay"] == 1e-3
    with open_run(features) as f, open_run(stats) as s:
        assert s.kind == "statistics" and f.kind == "features"
        np.testing.assert_array_equal(s.labels(s.info.splits["test"]),
                                      f.labels(f.info.splits["test"]))
        assert s.info.scalars == f.info.scalars
        assert os.path.getsize(stats) < os.path.getsize(features)


def test_labels_not_stored_same_keys(tmp_path, rng):
    """A recorder that stores no labels (language-model scale): same keys as the features
    run; the absent-class warning names the counts instead of /labels."""
    y = np.repeat(np.arange(4), 30)
    y[y == 2] = 1
    feats = [rng.normal(size=(120, 6)) + 2 * np.eye(4, 6)[y] for _ in range(2)]
    ws = [rng.normal(size=(4, 6)) for _ in range(2)]
    from tests.factories import write_run

    a = write_run(tmp_path / "f.h5", y, feats, ws, dtype=np.float64, num_classes=4)
    b = write_statistics_run(tmp_path / "s.h5", y, feats, ws, num_classes=4,
                             store_labels=False, feature_dtype="float64")
    da, db = _json("report", a), _json("report", b)
    for ea, eb in zip(da["epochs"], db["epochs"]):
        _same_values(ea, eb)
    assert any("/statistics/counts: 1 of 4 classes" in w for w in db["warnings"])
    strict = run_cli("metrics", b, "--require-all-classes")
    assert strict.exit_code == 3 and "/statistics/counts" in strict.stderr


WRITER = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
from tests.factories import statistics_of
from ncanalyze.io import RunWriter
rng = np.random.default_rng(0)
y = np.arange(90) % 3
with RunWriter({path!r}, None, num_classes=3, statistics=True) as w:
    for e in range(1, 4):
        h = 3 * np.eye(3, 4)[y] + rng.normal(size=(90, 4)) / e
        s, d = statistics_of(h, y, 3, np.eye(3, 4), np.zeros(3))
        w.add_statistics(e, s, d, np.eye(3, 4), np.zeros(3), feature_dtype="float32")
        print("epoch", e, flush=True)
        time.sleep(0.5)
"""


def test_follow_a_recording_statistics_run(tmp_path):
    path = tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=ROOT, path=str(path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().startswith("epoch 1")
        result = run_cli("metrics", path, "--follow", "--timeout", "60", "-f", "jsonl")
    finally:
        writer.wait(timeout=60)
    assert result.exit_code == 0, result.stderr
    epochs = [json.loads(line)["epoch"] for line in result.stdout.splitlines()]
    assert epochs == [1, 2, 3]


def test_reduce_refuses(runs, tmp_path):
    features, stats = runs
    again = run_cli("convert", "--statistics", stats, tmp_path / "x.h5")
    assert again.exit_code == 3 and "statistics run already" in again.stderr
    same = run_cli("convert", "--statistics", features, features, "--overwrite")
    assert same.exit_code == 2
    attrs = run_cli("convert", "--statistics", features, tmp_path / "y.h5", "--loss", "ce")
    assert attrs.exit_code == 2 and "--loss" in attrs.stderr
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_language_model_scale_n_costs_no_memory(tmp_path, rng):
    """N = 10⁹ tokens: a statistics epoch is O(C·P + P²) whatever N is, so a 1 GB memory
    limit suffices (a features run's plan counts the rows; a statistics run has none)."""
    n = np.array([4 * 10**8, 3 * 10**8, 3 * 10**8])
    a = rng.normal(size=(4, 4))
    scatter = a @ a.T
    with RunWriter(tmp_path / "lm.h5", None, num_classes=3, statistics=True) as w:
        w.add_statistics(1, {"counts": n, "means": rng.normal(size=(3, 4)),
                             "within_scatter": scatter,
                             "class_scatter": np.trace(scatter) * n / n.sum()},
                         {"ncc_correct": 6 * 10**8}, feature_dtype="bfloat16")
    doc = _json("report", tmp_path / "lm.h5", "--memory-limit", "1000000000")
    assert doc["samples"] == 10**9 and doc["epochs"][0]["ncc_accuracy"] == 0.6
