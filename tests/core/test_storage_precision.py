"""Rank cut-offs from the precision the features were stored in (docs/METRICS.md, "Rank from
the data's precision").

Features after a final LayerNorm span exactly P − 1 dimensions; a float32, float16 or bfloat16
copy has rounding noise along the missing direction. Every rank-restricted key of the stored
copy must equal the exact (float64) answer to what the rounding implies — before the cut-offs
were tied to the precision, ``nc1`` of such copies was 76–390 % off (the noise direction was
inverted) and the decomposition 0.3–1 % off in float16.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ncanalyze.analysis import analyze
from ncanalyze.core.decomposition import decompose
from ncanalyze.core.metrics import nc_metrics
from ncanalyze.core.precision import UNIT_ROUNDOFF, precision_name, values_precision
from ncanalyze.core.snr import snr
from ncanalyze.core.accumulator import class_stats
from ncanalyze.core.stats import merge_class_stats
from ncanalyze.settings import Settings
from tests.factories import labels, layernorm_features, write_run, write_statistics_run
from tests.reference import reference_decompose, reference_metrics

RANK_KEYS = ("nc1", "nc1_trace_ratio")
DECOMPOSE = ("loss", "loss_ls", "loss_nc1", "loss_nc23", "loss_ls_perp", "central_path_ratio")


def _layernorm_case(p=24, c=30, n=8, seed=3):
    rng = np.random.default_rng(seed)
    y = labels(c, n, rng)
    h = layernorm_features(y, rng.normal(size=(c, p)), 0.7, rng, 1 + 0.3 * rng.normal(size=p),
                           0.5 * rng.normal(size=p))
    return h, y, rng.normal(size=(c, p)), rng.normal(size=c)


def _stored(h, name):
    if name == "bfloat16":
        torch = pytest.importorskip("torch")
        return torch.tensor(h).to(torch.bfloat16)
    return h.astype(name)


@pytest.mark.parametrize("name", ["float64", "float32", "float16", "bfloat16"])
def test_layernorm_features_stored_in_any_precision_give_the_exact_answer(name):
    h, y, w, b = _layernorm_case()
    p = h.shape[1]
    stored = _stored(h, name)
    u = UNIT_ROUNDOFF[name]
    exact = reference_metrics(h, y, w, b)
    assert exact["nc1_rank"] == p - 1  # the float64 copy is exactly rank P − 1
    got = nc_metrics(stored, y, w, b)
    assert got["nc1_rank"] == p - 1
    # relative rounding u of the features; the data are well conditioned (NC1 ≈ 1.8)
    assert got["nc1"] == pytest.approx(exact["nc1"], rel=2 * u)
    want, _ = reference_decompose(h, y, w, b, 0.0, w.shape[0])
    dec = decompose(stored, y, w, b)
    for key in DECOMPOSE:
        assert dec[key] == pytest.approx(want[key], rel=2 * u), key
    ref_snr, got_snr = snr(h, y), snr(stored, y)
    assert got_snr["snr_dropped_dims"] == ref_snr["snr_dropped_dims"] == 1
    np.testing.assert_allclose(got_snr["snr_singular_values"][:p - 1],
                               ref_snr["snr_singular_values"][:p - 1], rtol=2 * u)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_a_run_file_carries_its_storage_precision_into_every_key(tmp_path, dtype):
    """The reader's dataset dtype reaches the cut-offs: nc1, nc1_rank and the decomposition of
    a float16/float32 run equal the float64 reference of the exact features."""
    h, y, w, b = _layernorm_case(p=16, c=40, n=10, seed=5)
    path = write_run(tmp_path / "ln.h5", y, [h], weights=[w], biases=[b], dtype=dtype)
    _, (res,) = analyze(path, Settings(quantities=("metrics", "decompose", "snr")))
    u = UNIT_ROUNDOFF[np.dtype(dtype).name]
    exact = reference_metrics(h, y, w, b)
    assert res.values["nc1_rank"] == exact["nc1_rank"] == 15
    assert res.values["nc1"] == pytest.approx(exact["nc1"], rel=2 * u)
    want, _ = reference_decompose(h, y, w, b, 0.0, w.shape[0])
    for key in DECOMPOSE:
        assert res.values[key] == pytest.approx(want[key], rel=2 * u), key
    assert res.values["snr_dropped_dims"] == 1


@pytest.mark.parametrize("recorded", ["float16", "float64"])
def test_a_statistics_run_uses_the_precision_it_records(tmp_path, recorded):
    """A statistics run holds no features: its ``feature_dtype`` attribute is the precision.
    The statistics of float16-rounded LayerNorm features give the exact answer when the run
    says float16; declared float64 the noise direction is kept (rank P, nc1 far off)."""
    h, y, w, b = _layernorm_case(p=16, c=40, n=10, seed=5)
    rounded = h.astype(np.float16).astype(np.float64)
    path = write_statistics_run(tmp_path / "s.h5", y, [rounded], [w], [b],
                                feature_dtype=recorded)
    _, (res,) = analyze(path, Settings(quantities=("metrics", "decompose", "snr")))
    exact = reference_metrics(h, y, w, b)
    if recorded == "float16":
        assert res.values["nc1_rank"] == exact["nc1_rank"] == 15
        assert res.values["nc1"] == pytest.approx(exact["nc1"], rel=2 * UNIT_ROUNDOFF["float16"])
    else:
        assert res.values["nc1_rank"] == 16
        assert abs(res.values["nc1"] / exact["nc1"] - 1) > 0.1


@given(p=st.integers(3, 12), missing=st.integers(1, 2), c=st.integers(2, 12),
       n=st.integers(2, 7), offset=st.sampled_from([0.0, 1.0, 10.0]),
       name=st.sampled_from(["float16", "float32"]), seed=st.integers(0, 2**16))
def test_storage_rounding_of_a_rank_deficient_mbar_moves_nc1_only_by_the_rounding(
        p, missing, c, n, offset, name, seed):
    """Features in an affine subspace of dimension P − k (M̄ of rank ≤ P − k), rounded to
    float16/float32: ``nc1_rank`` is the exact rank and ``nc1`` moves by at most what the
    rounding implies. To first order each kept singular value of M̄ moves by ≲ 2u·r
    (r² = mean ‖h‖²) and its direction by as much relative to s_min, and each
    w_j = u_jᵀ Σ_W u_j by ≲ 2u·r·√w_j, so NC1 = Σ w_j / s_j² changes by ≲ a few·u·r·(1/s_min
    + 1/√min w_j) relative; 16 of those is the bound."""
    if p - missing < 1:
        return
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(c), n)
    basis = np.linalg.qr(rng.normal(size=(p, p - missing)))[0]
    z = 3 * rng.normal(size=(c, p - missing))[y] + rng.normal(size=(c * n, p - missing))
    h = z @ basis.T + offset * rng.normal(size=p)
    # NC1 is invariant under the isometric embedding z ↦ z Bᵀ + offset: the exact answer is
    # that of z (full rank, no rounding-level direction even in float64).
    exact = reference_metrics(z, y)
    got = nc_metrics(h.astype(name), y)
    assert got["nc1_rank"] == exact["nc1_rank"]
    rank = exact["nc1_rank"]
    means = np.stack([z[y == k].mean(axis=0) for k in range(c)])
    u_r, s, _ = np.linalg.svd((means - z.mean(axis=0)).T, full_matrices=False)
    dev = z - means[y]
    spread = np.sum((dev @ u_r[:, :rank]) ** 2, axis=0) / h.shape[0]  # u_jᵀ Σ_W u_j
    r = np.sqrt(np.mean(np.sum(h * h, axis=1)))
    bound = 16 * UNIT_ROUNDOFF[name] * r * (1 / s[rank - 1] + 1 / np.sqrt(spread.min()))
    assert abs(got["nc1"] / exact["nc1"] - 1) <= bound


def test_precision_names_and_their_propagation():
    torch = pytest.importorskip("torch")
    assert precision_name(torch.bfloat16) == "bfloat16"
    assert precision_name(np.dtype(">f2")) == "float16"
    assert precision_name("float32") == "float32"
    h, y, _, _ = _layernorm_case(p=6, c=3, n=5)
    s16 = class_stats(h.astype(np.float16), y)
    s64 = class_stats(h, y)
    assert (s16.precision, s64.precision, s16.on_host().precision) == ("float16", "float64",
                                                                         "float16")
    assert merge_class_stats([s64, s16]).precision == "float16"  # the coarsest part wins


def test_values_precision_sees_features_computed_in_a_coarser_format():
    """float64 features that are float32 numbers were computed in float32 (a float64 dump of
    a float32 model); float32 features that are bfloat16/float16 numbers likewise."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    h = rng.normal(size=(50, 7))
    assert values_precision(h) == "float64"
    assert values_precision(h.astype(np.float32).astype(np.float64)) == "float32"
    assert values_precision(h.astype(np.float16).astype(np.float32)) == "float16"
    as_bf16 = torch.tensor(h, dtype=torch.bfloat16).float()
    assert values_precision(as_bf16.numpy()) == "bfloat16"
    assert values_precision(as_bf16) == "bfloat16"  # a CPU tensor, seen without a copy
    assert values_precision(h.astype(np.float16)) == "float16"
    assert class_stats(h.astype(np.float32).astype(np.float64), np.arange(50) % 3).precision \
        == "float32"
