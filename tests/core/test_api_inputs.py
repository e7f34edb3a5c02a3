"""The in-memory API refuses arrays that do not fit together with a UsageError naming the
argument and both shapes, the same on every array library (issue 20 item 8)."""

from __future__ import annotations

import numpy as np
import pytest

import ncanalyze
from ncanalyze import UsageError

_Y = np.repeat(np.arange(3), 8)
_H = np.random.default_rng(0).normal(size=(24, 4)) + 3 * np.eye(3, 4)[_Y]
_W = np.random.default_rng(1).normal(size=(3, 4))
_B = np.zeros(3)

# (what is wrong, arguments (features, labels, weight, bias), words the message must hold)
CASES = [
    ("labels one short", (_H, _Y[:-1], _W, _B), ["labels", "(23,)", "(24, 4)"]),
    ("weight with the wrong P", (_H, _Y, _W[:, :3], _B), ["weight", "(3, 3)", "(24, 4)"]),
    ("weight with fewer rows than classes", (_H, _Y, _W[:2], _B[:2]),
     ["weight", "(2, 4)", "3 classes"]),
    ("1-D features", (_H[:, 0], _Y, _W, _B), ["features", "2-D", "(24,)"]),
    ("bias of another length", (_H, _Y, _W, _B[:2]), ["bias", "(2,)", "(3, 4)"]),
]


@pytest.mark.parametrize("function", ["nc_metrics", "decompose"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mismatched_shapes_are_a_usage_error_naming_both_shapes(xp, function, case):
    _, (h, y, w, b), words = case
    with pytest.raises(UsageError) as info:
        getattr(ncanalyze, function)(xp.asarray(h), xp.asarray(y), xp.asarray(w), xp.asarray(b))
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("function", ["snr", "least_squares_classifier", "class_stats"])
def test_feature_only_functions_check_features_and_labels(xp, function):
    f = getattr(ncanalyze, function)
    with pytest.raises(UsageError, match=r"labels.*\(23,\).*\(24, 4\)"):
        f(xp.asarray(_H), xp.asarray(_Y[:-1]))
    with pytest.raises(UsageError, match=r"features must be 2-D.*\(24,\)"):
        f(xp.asarray(_H[:, 0]), xp.asarray(_Y))


_NAN_H = _H.copy()
_NAN_H[3, 1] = np.nan
_INF_W = _W.copy()
_INF_W[0, 0] = -np.inf
VALUE_CASES = [
    ("NaN in features", (_NAN_H, _Y, _W, _B), "features holds NaN or Inf"),
    ("Inf in weight", (_H, _Y, _INF_W, _B), "weight holds NaN or Inf"),
    ("features beyond the magnitude limit", (_H * 1e100, _Y, _W, _B), "features holds values beyond"),
    ("bias beyond the magnitude limit", (_H, _Y, _W, _B + 1e80), "bias holds values beyond"),
]


@pytest.mark.parametrize("function", ["nc_metrics", "decompose"])
@pytest.mark.parametrize("case", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_that_cannot_be_computed_are_a_usage_error(xp, function, case):
    """NaN features raised NumPy's 'SVD did not converge'; 1e100 printed overflow warnings
    and returned values (docs/RELIABILITY.md, size limits: MAX_MAGNITUDE)."""
    _, (h, y, w, b), words = case
    with pytest.raises(UsageError, match=words):
        getattr(ncanalyze, function)(xp.asarray(h), xp.asarray(y), xp.asarray(w), xp.asarray(b))


def test_complex_features_and_num_classes_mismatch():
    with pytest.raises(UsageError, match="features must hold real numbers"):
        ncanalyze.nc_metrics(_H.astype(complex), _Y)
    with pytest.raises(UsageError, match="num_classes = 4 rows"):
        ncanalyze.nc_metrics(_H, _Y, _W, _B, num_classes=4)


def test_valid_inputs_still_work(xp):
    out = ncanalyze.nc_metrics(xp.asarray(_H), xp.asarray(_Y), xp.asarray(_W), xp.asarray(_B))
    assert 0 <= out["accuracy"] <= 1
