"""Epoch-level parallelism: local worker processes and dask.distributed give the serial results.

Kept light for 2-core CI: tiny files, one in-process dask LocalCluster (threads), one pool
of two spawned processes.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from ncanalyze.analysis import Analysis
from ncanalyze.tasks import EpochJob, compute_epochs, row_ranges
from ncanalyze.settings import Settings
from tests.conftest import run_cli

from tests.factories import collapsing_features, labels, write_run
from tests.reference import assert_values_close

QUANTITIES = ("metrics", "decompose", "snr")


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    rng = np.random.default_rng(21)
    C, P = 4, 6
    y = labels(C, 60, rng)
    means = rng.normal(size=(C, P)) * 2
    feats = [collapsing_features(y, means, 1.0 / (e + 1), rng) for e in range(5)]
    Ws = [means + 0.2 * rng.normal(size=(C, P)) for _ in feats]
    bs = [0.1 * rng.normal(size=C) for _ in feats]
    return write_run(tmp_path_factory.mktemp("par") / "run.h5", y, feats, Ws, bs,
                     epochs=[1, 2, 5, 9, 10], weight_decay=1e-3)


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _results(path, **kw):
    s = Settings(QUANTITIES, backend="numpy", **kw)
    with Analysis(path, s) as a:
        return [(r.epoch, r.values, r.warnings) for r in a]


def test_compute_epochs_is_plain_data_in_order(run_file):
    job = EpochJob(str(run_file), Settings(QUANTITIES, backend="numpy"), tile_bytes=2**22,
                   weight_decay=0.0)
    out = compute_epochs(job, [9, 2])
    assert [d["epoch"] for d in out] == [9, 2]
    json.dumps([d["values"] for d in out])  # plain, serialisable values


def test_dask_equals_local(run_file, dask_address):
    local = _results(run_file, workers=1)
    remote = _results(run_file, dask=dask_address)
    assert [r[0] for r in remote] == [1, 2, 5, 9, 10]
    assert remote == local


def test_dask_epoch_selection_and_cli(run_file, dask_address):
    args = ["metrics", str(run_file), "--format", "json", "--epochs", "2,9:10", "--quiet"]
    serial = run_cli(*args, "--workers", "1")
    remote = run_cli(*args, "--dask", dask_address)
    assert serial.exit_code == 0, serial.stderr
    assert remote.exit_code == 0, remote.stderr
    a, b = json.loads(serial.stdout), json.loads(remote.stdout)
    assert [e["epoch"] for e in b["epochs"]] == [2, 9, 10]
    assert a["epochs"] == b["epochs"]


def test_worker_processes_equal_serial(run_file):
    assert _results(run_file, workers=2) == _results(run_file, workers=1)


def test_worker_errors_reach_the_caller(tmp_path, dask_address):
    rng = np.random.default_rng(2)
    y = labels(3, 20, rng)
    h = collapsing_features(y, rng.normal(size=(3, 4)), 0.5, rng)
    path = write_run(tmp_path / "nan.h5", y, [h, h])
    with h5py.File(path, "r+") as f:  # RunWriter refuses NaN: the damage comes afterwards
        f["features"][1, 7, 1] = np.nan
    res = run_cli("metrics", str(path), "--dask", dask_address, "--quiet")
    assert res.exit_code == 3
    assert "epoch 2" in res.stderr and "NaN" in res.stderr


def test_auto_workers(run_file):
    with Analysis(run_file, Settings(QUANTITIES, backend="numpy")) as a:
        assert a.workers()[0] == 1  # tiny epochs: processes would cost more than they save
    with Analysis(run_file, Settings(QUANTITIES, backend="numpy", workers=64)) as a:
        # never more processes than epochs, nor than cores
        assert a.workers()[0] == min(5, len(os.sched_getaffinity(0)))
    with Analysis(run_file, Settings(QUANTITIES, backend="numpy", epochs="last",
                                     workers=4)) as a:
        assert a.workers()[0] == 1


def test_bad_workers_is_usage_error(run_file):
    res = run_cli("metrics", str(run_file), "--workers", "0")
    assert res.exit_code == 2
    assert "--workers" in res.stderr


@pytest.mark.parametrize("command", ["report", "decompose", "snr"])
def test_central_path_commands_take_workers_and_dask(run_file, dask_address, command):
    args = [command, str(run_file), "--backend", "numpy", "-f", "json"]
    serial = json.loads(run_cli(*args, "--workers", "1").stdout)
    procs = run_cli(*args, "--workers", "2")
    on_dask = run_cli(*args, "--dask", dask_address)
    assert procs.exit_code == 0 and on_dask.exit_code == 0, procs.stderr + on_dask.stderr
    assert json.loads(procs.stdout)["epochs"] == serial["epochs"]
    assert json.loads(on_dask.stdout)["epochs"] == serial["epochs"]


def test_parallel_knows_nothing_of_analysis():
    """parallel.py is a generic ordered map: importing analysis (or core, io) from it would
    bring back the analysis <-> parallel import cycle."""
    import ast
    import pathlib

    import ncanalyze.parallel as mod

    tree = ast.parse(pathlib.Path(mod.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.split(".")[-1] in ("analysis", "core", "io", "cli") or "analysis" in m
                   for m in imported), imported


def test_ordered_map_keeps_order_and_reraises():
    from ncanalyze.parallel import ordered_map

    assert list(ordered_map(divmod, [(7, 2), (9, 4)])) == [(3, 1), (2, 1)]
    with pytest.raises(ZeroDivisionError):
        list(ordered_map(divmod, [(1, 0)], workers=2))


@pytest.fixture(scope="module")
def big_epoch(tmp_path_factory):
    """One epoch of 40 000 rows (three 16 384-row accumulation blocks), absent classes."""
    rng = np.random.default_rng(8)
    C, P, N = 50, 6, 40_000
    y = rng.integers(0, C - 3, N)  # classes 47..49 absent
    means = rng.normal(size=(C, P)) * 2
    h = collapsing_features(y, means, 0.7, rng, offset=3.0)
    w = means + 0.3 * rng.normal(size=(C, P))
    return write_run(tmp_path_factory.mktemp("big") / "big.h5", y, [h], [w],
                     [0.1 * rng.normal(size=C)], num_classes=C, weight_decay=1e-3)


def test_one_epoch_split_over_workers_and_dask_equals_serial(big_epoch, dask_address):
    serial = _results(big_epoch, workers=1)
    with Analysis(big_epoch, Settings(QUANTITIES, backend="numpy", task_rows=1)) as a:
        assert len(row_ranges(a.run.train, a.settings, 8)) == 3
        assert a.workers()[1]  # split by rows
    procs = _results(big_epoch, workers=2, task_rows=1)
    remote = _results(big_epoch, dask=dask_address, task_rows=1)
    for other in (procs, remote):
        assert [r[0] for r in other] == [1]
        assert_values_close(other[0][1], serial[0][1], rtol=1e-10, atol=1e-13)
        assert other[0][2] == serial[0][2]
    assert serial[0][1]["classes_present"] == 47


def test_merge_of_partial_statistics_is_exact():
    from ncanalyze.core.accumulator import class_stats
    from ncanalyze.core.stats import merge_class_stats

    rng = np.random.default_rng(3)
    y = rng.integers(0, 9, 500)
    h = rng.normal(size=(500, 4)) + 1e3  # far from the origin: a naive merge would cancel
    whole = class_stats(h, y, 10)
    parts = [class_stats(h[a:b], y[a:b], 10) for a, b in ((0, 7), (7, 300), (300, 500))]
    merged = merge_class_stats(parts)
    np.testing.assert_array_equal(merged.class_ids, whole.class_ids)
    for name in ("counts", "means", "within_scatter", "class_scatter"):
        np.testing.assert_allclose(getattr(merged, name), getattr(whole, name), rtol=1e-11,
                                   err_msg=name)
