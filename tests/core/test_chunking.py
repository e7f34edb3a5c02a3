"""Results do not depend on how an epoch is cut into chunks (issue 4).

The statistics are accumulated over fixed row blocks
(:func:`ncanalyze.core.accumulator.block_rows`) whatever the read size, so every chunk size
gives the same numbers; the tests make blocks small so that an epoch spans several of them
and chunks straddle block boundaries.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ncanalyze.analysis import Analysis
from ncanalyze.settings import Settings
from ncanalyze.core import accumulator as accumulator_mod
from ncanalyze.core.accumulator import StatsAccumulator, block_rows

from tests.factories import collapsing_features, labels, write_run

QUANTITIES = ("metrics", "decompose", "snr")


@pytest.fixture
def small_blocks(monkeypatch):
    """256-row blocks (the smallest block_rows allows)."""
    monkeypatch.setattr(accumulator_mod, "BLOCK_ROWS", 256)
    assert block_rows(6) == 256


def _run(tmp_path, n_per_class=250, C=5, P=6, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    y = labels(C, n_per_class, rng)
    means = rng.normal(size=(C, P)) * 3 + 5.0
    feats = [collapsing_features(y, means, 0.4, rng), collapsing_features(y, means, 0.1, rng)]
    Ws = [means - means.mean(0) + 0.1 * rng.normal(size=(C, P)) for _ in feats]
    bs = [0.1 * rng.normal(size=C) for _ in feats]
    return write_run(tmp_path / "run.h5", y, feats, Ws, bs, dtype=dtype, weight_decay=1e-3)


def _values(path, chunk_rows, dtype, backend="numpy"):
    s = Settings(QUANTITIES, backend=backend, dtype=dtype, chunk_rows=chunk_rows, workers=1)
    with Analysis(path, s) as a:
        return [r.values for r in a]


def _flat(values):
    out = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in _flat(v).items()})
        elif isinstance(v, list):
            out.update({f"{k}.{i}": vv for i, vv in enumerate(v)})
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_report_identical_for_every_chunk_size(tmp_path, small_blocks, xp, dtype):
    path = _run(tmp_path)  # 1250 rows: 5 blocks of 256 (the last one partial)
    base = _values(path, None, dtype, xp.name)
    assert base[0]["nc1"] > 0 and "loss" in base[0] and "snr_max" in base[0]
    for rows in (1, 7, 64, 1250):
        got = _values(path, rows, dtype, xp.name)
        for b, g in zip(base, got):
            fb, fg = _flat(b), _flat(g)
            assert fb.keys() == fg.keys()
            for k in fb:
                # Same blocks, same order of float64 additions: equal bit for bit.
                assert fg[k] == fb[k], f"chunk_rows={rows}: {k} {fg[k]!r} != {fb[k]!r}"


def test_default_blocks_span_several_reads(tmp_path):
    """With the real block size (16384 rows for small P) an epoch of 40 000 rows is 3 blocks."""
    path = _run(tmp_path, n_per_class=8000)
    base = _values(path, None, "float32")
    for rows in (5000, 40000):
        assert _values(path, rows, "float32") == base


@given(cuts=st.lists(st.integers(1, 700), min_size=1, max_size=8),
       compute=st.sampled_from(["float64", "float32"]))
def test_accumulator_any_partition(xp, cuts, compute):
    """StatsAccumulator fed any partition of the rows returns identical statistics."""
    old = accumulator_mod.BLOCK_ROWS
    accumulator_mod.BLOCK_ROWS = 256
    try:
        rng = np.random.default_rng(7)
        C, P, n = 4, 5, 900
        y = rng.integers(0, C, n)
        y[:C] = np.arange(C)
        x = (rng.normal(size=(C, P))[y] * 4 + 0.3 * rng.normal(size=(n, P))).astype(np.float32)
        xd, yd = xp.asarray(x), xp.asarray(y)

        def stats_for(bounds):
            acc = StatsAccumulator(C, P, xp.ns, compute, device=xp.device)
            for a, b in zip(bounds[:-1], bounds[1:]):
                acc.update(xd[a:b, ...], yd[a:b], y[a:b])
            return acc.finalize()

        edges = sorted({min(n, sum(cuts[:i + 1])) for i in range(len(cuts))} - {n})
        one = stats_for([0, n])
        many = stats_for([0, *edges, n])
        for name in ("counts", "means", "within_scatter", "class_scatter"):
            assert xp.owns(getattr(many, name)), name
            np.testing.assert_array_equal(xp.to_numpy(getattr(many, name)),
                                          xp.to_numpy(getattr(one, name)))
    finally:
        accumulator_mod.BLOCK_ROWS = old


def test_streamed_equals_in_memory_float64(tmp_path, small_blocks):
    """Streaming with float32 products stays within 1e-9 relative of float64 throughout."""
    path = _run(tmp_path, dtype=np.float64)
    a, b = _values(path, 7, "float64"), _values(path, 7, "float32")
    for va, vb in zip(a, b):
        fa, fb = _flat(va), _flat(vb)
        for k, v in fa.items():
            if isinstance(v, float):
                assert abs(fb[k] - v) <= 1e-9 + 1e-6 * abs(v), k


@pytest.mark.parametrize("chunk", [37, 256, 700])
def test_chunks_as_their_own_blocks_hold_no_block_and_agree(small_blocks, chunk):
    """regroup=False (the recorder: memory of one batch, not one block) keeps no pending
    block buffer and gives the regrouped statistics up to rounding."""
    rng = np.random.default_rng(3)
    y = labels(5, 300, rng)
    h = collapsing_features(y, rng.normal(size=(5, 6)) * 3 + 5.0, 0.2, rng).astype(np.float32)
    whole, own = (StatsAccumulator(5, 6, np, "float64", regroup=r) for r in (True, False))
    for start in range(0, y.size, chunk):
        for acc in (whole, own):
            acc.update(h[start:start + chunk], y[start:start + chunk])
    assert own._pending is None and own._buffer.shape[0] == min(chunk, 256)
    assert whole._buffer.shape[0] == 256
    a, b = whole.finalize(), own.finalize()
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_allclose(b.means, a.means, rtol=1e-13)
    np.testing.assert_allclose(b.within_scatter, a.within_scatter, rtol=1e-11,
                               atol=1e-11 * np.abs(a.within_scatter).max())
    np.testing.assert_allclose(b.class_scatter, a.class_scatter, rtol=1e-11)
