"""The Python API refuses inputs it would otherwise mangle (issue 16 item 13): non-integer
float labels (truncated before), complex features (imaginary part dropped), labels beyond the
CLI's class-count limit (2³¹−1 took 42 s and 16 GiB) — each a ``UsageError``, at once."""

from __future__ import annotations

import time

import numpy as np
import pytest

import ncanalyze
from ncanalyze.errors import UsageError
from ncanalyze.limits import MAX_CLASSES

Y = np.repeat(np.arange(3), 20)
H = np.eye(3, 4)[Y] + 0.1 * np.random.default_rng(0).normal(size=(60, 4))
W = np.eye(3, 4)

FUNCTIONS = {
    "nc_metrics": lambda h, y, **k: ncanalyze.nc_metrics(h, y, **k),
    "snr": lambda h, y, **k: ncanalyze.snr(h, y, **k),
    "decompose": lambda h, y, **k: ncanalyze.decompose(h, y, W, **k),
    "least_squares_classifier": lambda h, y, **k: ncanalyze.least_squares_classifier(h, y, **k),
    "class_stats": lambda h, y, **k: ncanalyze.class_stats(h, y, **k),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_float_labels_that_are_not_integers_are_refused(name):
    with pytest.raises(UsageError, match="labels"):
        FUNCTIONS[name](H, Y * 0.999999)
    with pytest.raises(UsageError, match="labels"):
        FUNCTIONS[name](H, np.where(Y == 0, np.nan, Y))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_integer_valued_float_labels_still_work(name):
    FUNCTIONS[name](H, Y.astype(np.float64))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_complex_features_are_refused(name):
    with pytest.raises(UsageError, match="complex"):
        FUNCTIONS[name](H.astype(np.complex128), Y)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_class_count_limit_of_the_cli_applies(name):
    y = Y.copy()
    y[0] = 2**31 - 1
    start = time.monotonic()
    with pytest.raises(UsageError, match=str(MAX_CLASSES)):
        FUNCTIONS[name](H, y)
    with pytest.raises(UsageError, match="num_classes"):
        FUNCTIONS[name](H, Y, num_classes=MAX_CLASSES + 1)
    assert time.monotonic() - start < 5  # refused before allocating anything C-sized


@pytest.mark.parametrize("bad", [np.array([-1] * 60), np.zeros((60, 2), int), np.zeros(59, int),
                                 np.array(["a"] * 60)])
def test_malformed_labels_are_usage_errors(bad):
    with pytest.raises(UsageError, match="labels"):
        ncanalyze.nc_metrics(H, bad)


def test_torch_complex_features_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(UsageError, match="complex"):
        ncanalyze.nc_metrics(torch.tensor(H, dtype=torch.complex64), Y)
