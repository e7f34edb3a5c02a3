"""§2.2 metrics read from files agree with a straightforward float64 computation."""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.analysis import Analysis

from ncanalyze.settings import Settings
from ncanalyze.core.metrics import nc_metrics
from ncanalyze.core.values import METRIC_KEYS

from tests.factories import collapsing_features, labels, simplex_etf, write_run
from tests.reference import assert_close, reference_metrics


def _analyse(path, **kw):
    kw.setdefault("backend", "numpy")
    with Analysis(path, Settings(("metrics",), **kw)) as a:
        return [r.values for r in a]


CASES = {
    # name: (C, per_class, P, noise, dtype, bias)
    "balanced-f32-bias": (5, 40, 12, 0.5, np.float32, True),
    "imbalanced-f64-nobias": (4, [10, 55, 23, 71], 9, 1.0, np.float64, False),
    "imbalanced-f16-bias": (6, [30, 8, 19, 44, 12, 27], 16, 0.3, np.float16, True),
    "random-noise-dominated": (3, 50, 7, 5.0, np.float32, True),
    "more-classes-than-dims": (8, 15, 4, 0.2, np.float32, True),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("chunk_rows", [None, 17])
def test_file_metrics_match_reference(tmp_path, xp, name, chunk_rows):
    C, per_class, P, noise, dtype, with_bias = CASES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    y = labels(C, per_class, rng)
    feats, Ws, bs = [], [], []
    for e in range(2):
        means = rng.normal(size=(C, P)) * 2 + rng.normal(size=P)
        feats.append(collapsing_features(y, means, noise / (e + 1), rng).astype(dtype))
        Ws.append(rng.normal(size=(C, P)))
        bs.append(rng.normal(size=C))
    path = write_run(tmp_path / "run.h5", y, feats, Ws, bs if with_bias else None, dtype=dtype)
    results = _analyse(path, chunk_rows=chunk_rows, backend=xp.name)
    assert [r["epoch"] for r in results] == [1, 2]
    for k, res in enumerate(results):
        ref = reference_metrics(feats[k], y, Ws[k], bs[k] if with_bias else None, C)
        assert set(res) == {"epoch", *METRIC_KEYS}
        assert_close(res, ref, keys=METRIC_KEYS)  # every key, so one the oracle lacks fails


def test_global_mean_classes_and_center_weights(tmp_path, rng):
    y = labels(4, [5, 30, 12, 40], rng)
    means = rng.normal(size=(4, 6)) * 3
    H = collapsing_features(y, means, 0.4, rng)
    W = rng.normal(size=(4, 6)) + 2.0
    path = write_run(tmp_path / "r.h5", y, [H], [W], dtype=np.float64)
    res = _analyse(path, global_mean="classes", center_weights=True)[0]
    ref = reference_metrics(H, y, W, None, 4, global_mean="classes", center_weights=True)
    assert_close(res, ref)
    plain = _analyse(path)[0]
    assert plain["etf_distance_weights"] != pytest.approx(res["etf_distance_weights"])


def test_deep_collapse_float32_matches_float64(tmp_path):
    """Accuracy (docs/PERFORMANCE.md): float32 features, NC1 ≈ 1e-8, large common offset."""
    rng = np.random.default_rng(7)
    C, P = 10, 32
    y = labels(C, 300, rng)
    means = simplex_etf(C, P, rng) * 3.0
    H = collapsing_features(y, means, 1e-4, rng, offset=20.0).astype(np.float32)
    W = means + 0.01 * rng.normal(size=means.shape)
    b = rng.normal(size=C) * 0.1
    path = write_run(tmp_path / "deep.h5", y, [H], [W], [b], dtype=np.float32)
    for chunk_rows in (None, 128):
        res = _analyse(path, chunk_rows=chunk_rows)[0]
        ref = reference_metrics(H.astype(np.float64), y, W, b, C)
        assert 1e-10 < ref["nc1"] < 1e-7
        assert_close(res, ref, rtol=1e-6, atol=1e-9)


def test_in_memory_matches_numpy(rng, xp):
    y = labels(5, [12, 20, 9, 30, 15], rng)
    H = collapsing_features(y, rng.normal(size=(5, 7)) * 2, 0.5, rng)
    W, b = rng.normal(size=(5, 7)), rng.normal(size=5)
    a = nc_metrics(H, y, W, b)
    s = nc_metrics(xp.asarray(H), xp.asarray(y), xp.asarray(W), xp.asarray(b))
    for k in METRIC_KEYS:
        assert type(s[k]) in (int, float), k  # plain Python numbers on every device
        assert a[k] == pytest.approx(s[k], rel=1e-12, abs=1e-15), k
    assert_close(a, reference_metrics(H, y, W, b, 5))


def test_split_uses_own_means_and_training_ncc(tmp_path, rng):
    from ncanalyze.io import RunWriter

    C, P = 4, 6
    y, yt = labels(C, 30, rng), labels(C, [7, 9, 5, 11], rng)
    means = rng.normal(size=(C, P)) * 2
    H = collapsing_features(y, means, 0.8, rng)
    Ht = collapsing_features(yt, means + 0.3, 1.2, rng)
    W, b = rng.normal(size=(C, P)), rng.normal(size=C)
    with RunWriter(tmp_path / "s.h5", y, splits={"test": yt}) as w:
        w.add_epoch(3, H, W, b, splits={"test": Ht})
    res = _analyse(tmp_path / "s.h5", splits=("test",))[0]
    train_means = np.stack([H[y == c].mean(0) for c in range(C)])
    ref = reference_metrics(Ht, yt, W, b, C, ncc_means=train_means)
    assert_close(res["splits"]["test"], ref)
    assert_close(res, reference_metrics(H, y, W, b, C))


def test_layers_depthwise(tmp_path, rng):
    from ncanalyze.io import RunWriter

    C = 3
    y = labels(C, 20, rng)
    H = collapsing_features(y, rng.normal(size=(C, 5)), 0.2, rng)
    L1 = collapsing_features(y, rng.normal(size=(C, 9)), 1.0, rng)
    with RunWriter(tmp_path / "l.h5", y) as w:
        w.add_epoch(1, H, layers={"block1": L1})
    res = _analyse(tmp_path / "l.h5", layers=True)[0]
    ref = reference_metrics(L1, y, None, None, C)
    layer = res["layers"]["block1"]
    assert set(layer) == {"nc1", "nc1_rank", "cdnv", "coincident_pairs", "etf_distance_means",
                          "of_distance_means", "equinorm_means"}
    assert_close(layer, ref, keys=layer.keys())
    assert "accuracy" not in res  # no classifier in this file: never invented
