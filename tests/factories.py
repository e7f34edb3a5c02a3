"""Generators of run files and feature sets for the tests."""

from __future__ import annotations

import numpy as np

from ncanalyze.io import RunWriter


def simplex_etf(C: int, P: int, rng=None) -> np.ndarray:
    """C unit vectors in R^P (P ≥ C) forming a simplex ETF, as rows (C, P)."""
    rng = rng or np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(P, C)))
    E = np.sqrt(C / (C - 1)) * (np.eye(C) - np.ones((C, C)) / C)
    return (Q @ E).T


def orthogonal_frame(C: int, P: int, rng=None) -> np.ndarray:
    """C orthonormal vectors in R^P as rows (C, P)."""
    rng = rng or np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.normal(size=(P, C)))
    return Q.T


def labels(C: int, per_class, rng=None, shuffle=True) -> np.ndarray:
    """Labels with ``per_class`` samples per class (int or list for imbalance)."""
    rng = rng or np.random.default_rng(2)
    counts = [per_class] * C if np.isscalar(per_class) else list(per_class)
    y = np.concatenate([np.full(k, c) for c, k in enumerate(counts)])
    return rng.permutation(y) if shuffle else y


def collapsing_features(y, means, noise, rng, offset=0.0):
    """Class means plus Gaussian noise of scale ``noise`` (and a common ``offset``)."""
    return means[y] + noise * rng.normal(size=(y.size, means.shape[1])) + offset


def write_run(path, y, features, weights=None, biases=None, epochs=None, dtype=np.float32,
              **attrs):
    """Write per-epoch feature matrices (list) with RunWriter."""
    epochs = epochs or list(range(1, len(features) + 1))
    with RunWriter(path, y, overwrite=True, **attrs) as w:
        for k, e in enumerate(epochs):
            w.add_epoch(e, np.asarray(features[k], dtype=dtype),
                        None if weights is None else weights[k],
                        None if biases is None else biases[k])
    return path


def layernorm_features(y, means, noise, rng, gain=None, shift=None):
    """Features after a final LayerNorm, as in a transformer: ``gain ⊙ z/‖·‖ + shift`` with z
    the row centred over its P entries and scaled to unit variance. In exact arithmetic every
    row satisfies Σ_j (h_j − shift_j)/gain_j = 0, so the features span exactly P − 1
    dimensions (float64; a stored float32/float16 copy has rounding noise along the missing
    one)."""
    p = means.shape[1]
    z = means[y] + noise * rng.normal(size=(y.size, p))
    z = z - z.mean(axis=1, keepdims=True)
    z = z / np.sqrt(np.mean(z * z, axis=1, keepdims=True))
    gain = np.ones(p) if gain is None else gain
    shift = np.zeros(p) if shift is None else shift
    return z * gain + shift
