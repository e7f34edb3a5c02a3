"""The input format is an interface (docs/ARCHITECTURE.md, "Adding an input format"): the
analysis reads runs only through :class:`ncanalyze.io.protocol.RunReader`, so a second
implementation — NumPy arrays, or stored statistics instead of rows — gives the same results
as the HDF5 run file."""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.analysis import Analysis
from ncanalyze.io.protocol import RunReader, input_format, open_reader
from ncanalyze.io.statistics import StoredStatistics
from ncanalyze.settings import Settings
from tests.factories import ArrayRun, collapsing_features, labels, write_run
from tests.reference import assert_values_close

C, P = 4, 6


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(11)
    y = labels(C, 40, rng)
    means = 3 * rng.normal(size=(C, P))
    feats = [collapsing_features(y, means, s, rng) for s in (1.0, 0.3)]
    weights = [means + 0.2 * rng.normal(size=(C, P)) for _ in feats]
    biases = [0.1 * rng.normal(size=C) for _ in feats]
    return y, feats, weights, biases


def _values(run, **kw):
    with Analysis(run, Settings(("metrics", "decompose", "snr"), backend="numpy",
                                weight_decay=1e-3, **kw)) as a:
        return [r.values for r in a]


def _statistics(y, h, w, b):
    """What a statistics run stores for one epoch: plain float64 loops over the definitions."""
    h = np.asarray(h, np.float64)
    counts = np.bincount(y, minlength=C)
    means = np.stack([h[y == c].mean(axis=0) for c in range(C)])
    centred = h - means[y]
    ncc = np.argmin(((h[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    clf = np.argmax(h @ w.T + b, axis=1)
    return StoredStatistics(
        counts=counts, means=means, within_scatter=centred.T @ centred,
        class_scatter=np.array([np.sum(centred[y == c] ** 2) for c in range(C)]),
        decisions={"total": y.size, "ncc_correct": int(np.sum(ncc == y)),
                   "classifier_correct": int(np.sum(clf == y)),
                   "ncc_mismatch": int(np.sum(clf != ncc))},
        feature_dtype="float64")


def test_the_hdf5_run_is_a_run_reader(tmp_path, arrays):
    y, feats, weights, biases = arrays
    path = write_run(tmp_path / "r.h5", y, feats, weights, biases, dtype=np.float64)
    assert input_format(path).name == "hdf5"
    with open_reader(path) as run:
        assert isinstance(run, RunReader)
        assert run.kind == "features"  # it stores rows


def test_an_array_reader_gives_what_the_run_file_gives(tmp_path, arrays):
    y, feats, weights, biases = arrays
    path = write_run(tmp_path / "r.h5", y, feats, weights, biases, dtype=np.float64)
    run = ArrayRun(y, feats, weights, biases)
    assert isinstance(run, RunReader)
    from_file, from_arrays = _values(path), _values(run)
    assert run.closed  # the analysis closes the reader it was given
    for got, want in zip(from_arrays, from_file):
        assert_values_close(got, want, rtol=1e-12, atol=1e-12)


def test_a_statistics_run_gives_what_the_rows_give(arrays):
    """A reader that stores per-epoch statistics and decision counts instead of rows (its
    iter_chunks fails if called) yields the same metrics, decomposition and SNR."""
    y, feats, weights, biases = arrays
    rows = ArrayRun(y, feats, weights, biases)
    stats = ArrayRun(y, feats, weights, biases, statistics=lambda e: _statistics(
        y, feats[e - 1], weights[e - 1], biases[e - 1]))
    for got, want in zip(_values(stats), _values(rows)):
        assert_values_close(got, want, rtol=1e-9, atol=1e-12)
