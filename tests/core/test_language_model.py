"""A real (small) language model in the suite: a word-level next-token model trained on the
help text shipped with Python, a final LayerNorm, a vocabulary of 3,000 words, recorded with
ncanalyze's own capture API (the ``lm_run`` fixture of tests/conftest.py).

Its features are what transformers give: exactly (P − 1)-dimensional after the LayerNorm,
stored in float32 with rounding noise along the missing direction, hundreds of classes
present out of 3,000, and pairs of tokens with identical features (coincident class means).
Those are the cases where tools disagree, so every key is compared with tests/reference.py.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ncanalyze.analysis import analyze
from ncanalyze.core.decomposition import DECOMPOSE_KEYS
from ncanalyze.core.values import METRIC_KEYS
from ncanalyze.settings import Settings
from tests.reference import (assert_close, reference_decompose, reference_metrics,
                             reference_snr, resolved_features)

RTOL, ATOL = 1e-9, 1e-12


def _epoch(path, index):
    with h5py.File(path, "r") as f:
        return (f["features"][index], f["labels"][:], f["weight"][index], f["bias"][index],
                int(f.attrs["num_classes"]), float(f.attrs["weight_decay"]))


def test_every_key_of_the_language_model_matches_the_reference(lm_run):
    _, results = analyze(lm_run, Settings(quantities=("metrics", "decompose", "snr"),
                                          epochs="last"))
    got = results[-1].values
    h, y, w, b, c, lam = _epoch(lm_run, -1)
    want = reference_metrics(h, y, w, b, C=c, precision="float32")
    # the features' structure: LayerNorm rank P − 1, coincident means, most classes absent
    assert got["nc1_rank"] == want["nc1_rank"] == h.shape[1] - 1
    assert got["coincident_pairs"] == want["coincident_pairs"] > 0
    assert got["cdnv"] is None and got["gnc2"] is None
    assert got["classes_present"] < c
    assert_close(got, want, rtol=RTOL, atol=ATOL, keys=METRIC_KEYS)
    dec, _ = reference_decompose(h, y, w, b, lam, c)
    assert_close(got, dec, rtol=RTOL, atol=ATOL, keys=DECOMPOSE_KEYS)
    _, compact = np.unique(y, return_inverse=True)
    snr = reference_snr(resolved_features(h, "float32"), compact)
    p = h.shape[1] - 1  # ω_j, j < P − 1, are the non-zero ones (C − 1 > P)
    np.testing.assert_allclose(got["snr_singular_values"][:p], snr["snr_singular_values"][:p],
                               rtol=RTOL)
    assert got["snr_dropped_dims"] == 1
    assert got["loss_ls_predicted"] == pytest.approx(snr["loss_ls_predicted"], rel=RTOL)


def _stored_as(src, dst, dtype):
    """The run ``src`` with its features stored in ``dtype`` (W, b unchanged)."""
    from tests.factories import write_run

    with h5py.File(src, "r") as f:
        feats = [f["features"][i] for i in range(f["features"].shape[0])]
        w, b = list(f["weight"][:]), list(f["bias"][:])
        epochs = [int(e) for e in f["epoch"][:]]
        y, attrs = f["labels"][:], {k: f.attrs[k] for k in ("num_classes", "weight_decay")}
    return write_run(dst, y, feats, w, b, epochs=epochs, dtype=dtype,
                     num_classes=int(attrs["num_classes"]),
                     weight_decay=float(attrs["weight_decay"]))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_torch_backend_equals_numpy_on_every_key(lm_run, tmp_path, dtype):
    """--backend torch (CPU here) and NumPy agree to 1e-9 on every key of every epoch, in
    every stored dtype (before the precision cut-offs nc1 differed by up to ~1e-3: the
    rounding-level direction was inverted by one backend and not by the other)."""
    pytest.importorskip("torch")
    from tests.reference import assert_values_close

    path = lm_run if dtype == "float32" else _stored_as(lm_run, tmp_path / "lm.h5", dtype)
    quantities = ("metrics", "decompose", "snr")
    _, ref = analyze(path, Settings(backend="numpy", quantities=quantities, workers=1))
    _, got = analyze(path, Settings(backend="torch:cpu", quantities=quantities, workers=1))
    assert [r.epoch for r in got] == [r.epoch for r in ref]
    for g, r in zip(got, ref):
        assert_values_close(g.values, r.values, rtol=1e-9, atol=1e-12)
