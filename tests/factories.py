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


def statistics_of(features, labels, num_classes, weight=None, bias=None, ncc=None):
    """The statistics and decision counts the recorder writes for one source (float64).

    ``ncc``: the ClassStats whose means the NCC rule uses (default: these statistics).
    """
    from ncanalyze.core.decisions import PredictionAccumulator
    from ncanalyze.core.stats import class_stats

    stats = class_stats(np.asarray(features, dtype=np.float64), labels, num_classes)
    ncc = ncc or stats
    acc = PredictionAccumulator(ncc.means, weight, bias, ncc_classes=ncc.class_ids)
    acc.update(np.asarray(features, dtype=np.float64), np.asarray(labels))
    return stats, acc.counts()


def write_statistics_run(path, y, features, weights=None, biases=None, epochs=None, *,
                         num_classes=None, store_labels=True, layers=None, splits=None,
                         feature_dtype="float32", **scalars):
    """A statistics run of per-epoch feature matrices (list); ``layers``: {name: [per-epoch
    matrices]}, ``splits``: {name: (labels, [per-epoch matrices])}; ``scalars``: {name: list}."""
    c = num_classes or int(np.max(y)) + 1
    epochs = epochs or list(range(1, len(features) + 1))
    split_labels = {n: (lab if store_labels else None) for n, (lab, _) in (splits or {}).items()}
    with RunWriter(path, y if store_labels else None, num_classes=c, overwrite=True,
                   statistics=True, splits=split_labels or None) as w:
        for k, e in enumerate(epochs):
            wt = None if weights is None else np.asarray(weights[k], dtype=np.float64)
            bs = None if biases is None else np.asarray(biases[k], dtype=np.float64)
            stats, dec = statistics_of(features[k], y, c, wt, bs)
            lay = {n: statistics_of(m[k], y, c)[0] for n, m in (layers or {}).items()}
            spl = {n: statistics_of(m[k], lab, c, wt, bs, ncc=stats)
                   for n, (lab, m) in (splits or {}).items()}
            w.add_statistics(e, stats, dec, wt, bs, layers=lay, splits=spl,
                             feature_dtype=feature_dtype,
                             **{n: v[k] for n, v in scalars.items()})
    return path


class ArrayRun:
    """A run held in NumPy arrays: a second implementation of
    :class:`ncanalyze.io.protocol.RunReader` (features, labels, W, b per epoch; no file).

    ``statistics``: optional ``statistics(epoch) -> StoredStatistics`` for the training
    source, making it a statistics run (its rows are then never read).
    """

    def __init__(self, y, features, weights=None, biases=None, epochs=None, *, num_classes=None,
                 weight_decay=None, statistics=None, path="<arrays>"):
        from ncanalyze.io.info import RunInfo, Source

        self.path = path
        self._y = np.asarray(y, np.int64)
        self._h = [np.asarray(h) for h in features]
        self._w, self._b = weights, biases
        n, p = self._h[0].shape
        c = num_classes or int(self._y.max()) + 1
        self._epochs = np.asarray(epochs or list(range(1, len(features) + 1)), np.int64)
        self._source = Source("train", "train", "/features", "/labels", n, p)
        self._statistics = statistics
        self.info = RunInfo(path=path, num_classes=c, num_samples=n, num_features=p,
                            epochs=self._epochs, features_dtype=self._h[0].dtype,
                            has_weight=weights is not None, has_bias=biases is not None,
                            weight_decay=weight_decay, loss=None, format_version=1,
                            kind="features" if statistics is None else "statistics")
        self.closed = False

    @property
    def kind(self):
        return self.info.kind

    @property
    def train(self):
        return self._source

    def class_counts(self, source=None):
        return np.bincount(self._y, minlength=self.info.num_classes)

    def _slot(self, epoch):
        return int(np.flatnonzero(self._epochs == epoch)[0])

    def labels(self, source=None):
        return self._y

    def weight(self, epoch):
        return None if self._w is None else np.asarray(self._w[self._slot(epoch)])

    def bias(self, epoch):
        return None if self._b is None else np.asarray(self._b[self._slot(epoch)])

    def scalars(self, epoch):
        return {}

    def chunk_rows(self, source=None, chunk_bytes=2**20):
        return max(1, chunk_bytes // (self._source.num_features * 8))

    def iter_chunks(self, epoch, source=None, *, rows=None, check_finite=True, start=0,
                    stop=None):
        assert self._statistics is None, "a statistics run has no rows to read"
        h = self._h[self._slot(epoch)]
        stop = h.shape[0] if stop is None else stop
        rows = rows or self.chunk_rows()
        for lo in range(start, stop, rows):
            hi = min(stop, lo + rows)
            yield h[lo:hi], self._y[lo:hi]

    def statistics(self, epoch, source=None):
        assert self._statistics is not None, "a features run stores no statistics"
        return self._statistics(epoch)

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
