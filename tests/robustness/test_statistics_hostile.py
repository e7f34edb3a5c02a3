"""Statistics runs that lie (docs/FORMAT.md, "Statistics runs", rules): each is one line on
stderr naming the file, the dataset (and the epoch when an epoch's values are at fault), exit
code 3, for every command; the file is never modified."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.factories import write_statistics_run

C, P = 4, 5


def _valid(path, rng, store_labels=True):
    y = np.arange(80) % C
    yt = np.arange(40) % C
    feats = [rng.normal(size=(80, P)) + 3 * np.eye(C, P)[y] for _ in range(2)]
    test = [rng.normal(size=(40, P)) for _ in range(2)]
    layer = [rng.normal(size=(80, 3)) for _ in range(2)]
    ws = [rng.normal(size=(C, P)) for _ in range(2)]
    bs = [rng.normal(size=C) for _ in range(2)]
    return write_statistics_run(path, y, feats, ws, bs, epochs=[1, 2], store_labels=store_labels,
                                layers={"l1": layer}, splits={"test": (yt, test)})


def _set(name, fn):
    def mutate(f):
        data = f[name][()]
        f[name][...] = fn(data)
    return mutate


def _replace(name, fn):
    def mutate(f):
        data = f[name][()]
        attrs = dict(f[name].attrs)
        del f[name]
        f[name] = fn(data)
        for k, v in attrs.items():
            f[name].attrs[k] = v
    return mutate


def _epoch2(fn):
    """Apply ``fn`` to the second epoch's slot only."""
    def apply(a):
        a = a.copy()
        a[1] = fn(a[1])
        return a
    return apply


def _add(a, where, value):
    a = a.copy()
    a[where] += value
    return a


S = "/statistics"
CASES = [
    # name, mutation, dataset, epoch, text
    ("counts-vs-labels", _set(f"{S}/counts", _epoch2(lambda c: _add(c, 0, 1))), f"{S}/counts",
     2, "differ from /labels"),
    ("counts-first-epoch-vs-labels", _set(f"{S}/counts", lambda c: _add(c, (0, 1), 1)),
     f"{S}/counts", 1, "counts differ from /labels"),
    ("negative-count", _set(f"{S}/counts", lambda c: _add(c, (0, 0), -1000)), f"{S}/counts", 1,
     "negative"),
    ("asymmetric-sigma-w", _set(f"{S}/within_scatter", _epoch2(lambda s: _add(s, (0, 1), 1.0))),
     f"{S}/within_scatter", 2, "not symmetric"),
    ("negative-diagonal", _set(f"{S}/within_scatter", _epoch2(lambda s: _add(s, (2, 2), -1e6))),
     f"{S}/within_scatter", 2, "negative"),
    ("negative-sum-of-squares", _set(f"{S}/class_scatter", _epoch2(lambda s: -s)),
     f"{S}/class_scatter", 2, "negative sum of squares"),
    ("scatter-vs-trace", _set(f"{S}/class_scatter", _epoch2(lambda s: 2 * s)),
     f"{S}/class_scatter", 2, "trace of within_scatter"),
    ("nan-means", _set(f"{S}/means", _epoch2(lambda m: _add(m, (1, 1), np.nan))), f"{S}/means",
     2, "NaN or Inf"),
    ("inf-scatter", _set(f"{S}/within_scatter", _epoch2(lambda s: _add(s, (0, 0), np.inf))),
     f"{S}/within_scatter", 2, "NaN or Inf"),
    ("ncc-above-n", _set(f"{S}/ncc_correct", _epoch2(lambda v: 10**9)), f"{S}/ncc_correct", 2,
     "outside 0..80"),
    ("decisions-inconsistent", _set(f"{S}/ncc_mismatch", _epoch2(lambda v: 0 * v)),
     f"{S}/ncc_mismatch", 2, "cannot explain"),
    ("c-disagrees", lambda f: f.attrs.__setitem__("num_classes", 6), f"{S}/counts", None,
     "(C = 6)"),
    ("means-float32", _replace(f"{S}/means", lambda m: m.astype(np.float32)), f"{S}/means",
     None, "must hold float64"),
    ("counts-float", _replace(f"{S}/counts", lambda c: c.astype(np.float64)), f"{S}/counts",
     None, "must hold integers"),
    ("features-next-to-statistics", lambda f: f.create_dataset("features",
                                                              data=np.zeros((2, 80, P))),
     "/features", None, "either a features run or a statistics run"),
    ("split-with-features", lambda f: f.create_dataset("splits/test/features",
                                                      data=np.zeros((2, 40, P))),
     "/splits/test/features", None, "per-sample features in a statistics run"),
    ("layer-as-dataset", lambda f: (f.__delitem__("layers/l1"),
                                    f.create_dataset("layers/l1", data=np.zeros((2, 80, 3)))),
     "/layers/l1", None, "must be a group of statistics"),
    ("layer-counts-vs-train", _set("/layers/l1/counts", _epoch2(lambda c: c * 0 + [10, 30, 20, 20])),
     "/layers/l1/counts", 2, "differ from the training data's"),
    ("absent-class-nonzero-mean",
     lambda f: (_set(f"{S}/counts", lambda c: _add(c, (slice(None), 0), -20))(f),
                f.__delitem__("labels")),
     f"{S}/class_scatter", 1, "has no samples (count 0) but a non-zero row"),
    ("missing-feature-dtype", lambda f: f[S].attrs.__delitem__("feature_dtype"), S, None,
     "feature_dtype"),
    ("bad-feature-dtype", lambda f: f[S].attrs.__setitem__("feature_dtype", "int8"), S, None,
     "must name one of"),
    ("format-1", lambda f: f.attrs.__setitem__("ncanalyze_format", 1), "/", None,
     "needs ncanalyze_format 2"),
    ("missing-decisions", lambda f: f.__delitem__(f"{S}/classifier_correct"),
     f"{S}/classifier_correct", None, "required dataset is missing"),
    ("short-epoch-axis", _replace(f"{S}/within_scatter", lambda s: s[:1]),
     f"{S}/within_scatter", None, "E ≥ 2"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_lying_statistics_run_is_one_line_exit_3(tmp_path, rng, case):
    name, mutate, dataset, epoch, text = case
    path = _valid(tmp_path / "run.h5", rng)
    with h5py.File(path, "r+") as f:
        mutate(f)
    before = path.read_bytes()
    # snr reads neither layers nor splits.
    commands = ("metrics", "report") if dataset.startswith(("/layers", "/splits")) else (
        "metrics", "report", "snr")
    for command in commands:
        result = run_cli(command, path, *(["--layers", "--split", "test"]
                                          if command != "snr" else []), "-f", "json")
        assert result.exit_code == 3, (command, result.exit_code, result.stderr)
        # One error line (a run-level warning the file's claims cause may precede it).
        lines = [x for x in result.stderr.strip().splitlines() if "error:" in x]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        expected = f"ncanalyze: error: {path}: {dataset}: "
        if epoch is not None:
            expected += f"epoch {epoch}: "
        assert lines[0].startswith(expected), (lines[0], expected)
        assert text in lines[0], lines[0]
    if epoch is None:  # a layout problem: inspect lists it
        result = run_cli("inspect", path, "-f", "json")
        problems = json.loads(result.stdout)["problems"]
        assert result.exit_code == 3 and any(text in p for p in problems), problems
    assert path.read_bytes() == before
