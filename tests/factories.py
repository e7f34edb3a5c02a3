"""Generators of run files and feature sets for the tests: runs written with RunWriter,
statistics runs, an in-memory reader, and raw HDF5 files (``write_h5``) for the bad-input and
hostile-file suites."""

from __future__ import annotations

from pathlib import Path

import h5py
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


def stdlib_words() -> list[str]:
    """The words of the help topics shipped with Python (``pydoc_data.topics``), lower case,
    in a fixed order: ~64,000 words, ~3,100 distinct."""
    import re

    from pydoc_data.topics import topics

    text = " ".join(topics[k] for k in sorted(topics))
    return re.findall(r"[a-z]+", text.lower())


def word_lm_run(path, *, vocab=3000, width=32, context=2, recorded=1536, epochs=2,
                steps=50, batch=512, dtype=np.float32, weight_decay=1e-4, seed=0):
    """Train a small word-level next-token model on stdlib text and record it with
    :func:`ncanalyze.capture.record_epoch`, as a user would (a few seconds on one CPU core).

    The model embeds the ``context`` previous words, mixes them with a two-layer MLP into
    ``width`` features and ends, as every transformer does, with a LayerNorm (with affine
    parameters) before the linear head over ``vocab`` words (word ``vocab − 1`` is every rarer
    word). Features are therefore exactly (width − 1)-dimensional in exact arithmetic, and
    tokens seen once after one context share that context's feature vector (coincident class
    means). Epochs 0..``epochs`` record the first ``recorded`` positions of the text.

    Returns
    -------
    path
    """
    import collections

    import torch
    from torch import nn

    words = stdlib_words()
    common = [w for w, _ in collections.Counter(words).most_common(vocab - 1)]
    index = {w: i for i, w in enumerate(common)}
    ids = torch.tensor([index.get(w, vocab - 1) for w in words], dtype=torch.int64)
    pad = torch.full((context,), vocab - 1, dtype=torch.int64)
    padded = torch.cat([pad, ids])
    inputs = torch.stack([padded[k:k + ids.numel()] for k in range(context)], dim=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine
    try:
        return _train_and_record(path, torch, nn, inputs, ids, vocab, width, context,
                                 recorded, epochs, steps, batch, dtype, weight_decay, seed)
    finally:
        torch.set_num_threads(threads)


def _train_and_record(path, torch, nn, inputs, ids, vocab, width, context, recorded, epochs,
                      steps, batch, dtype, weight_decay, seed):
    from ncanalyze.capture import record_epoch

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Embedding(vocab, 24), nn.Flatten(1), nn.Linear(24 * context, 64), nn.GELU(),
        nn.Linear(64, width), nn.LayerNorm(width), nn.Linear(width, vocab))
    head = model[-1]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    loader = [(inputs[k:k + 512], ids[k:k + 512]) for k in range(0, recorded, 512)]
    with RunWriter(path, ids[:recorded].numpy(), num_classes=vocab, loss="ce",
                   weight_decay=weight_decay, overwrite=True) as writer:
        for epoch in range(epochs + 1):
            if epoch:
                for _ in range(steps):
                    pick = torch.randint(0, ids.numel(), (batch,), generator=gen)
                    loss = nn.functional.cross_entropy(model(inputs[pick]), ids[pick])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            record_epoch(writer, epoch, model, loader, classifier=head, dtype=dtype)
    return path


def tiny_lm(vocab: int = 11, width: int = 6, dtype=None, seed: int = 0):
    """A torch next-token model: embedding → tanh(linear) → ``head`` (linear, with bias).

    ``model(ids)`` with ids (B, T) gives logits (B, T, vocab); the head's input is the
    features (B, T, width).
    """
    import torch

    class TinyLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, width)
            self.body = torch.nn.Linear(width, width)
            self.head = torch.nn.Linear(width, vocab)

        def forward(self, ids):
            return self.head(torch.tanh(self.body(self.embed(ids))))

    torch.manual_seed(seed)
    model = TinyLM()
    return model if dtype is None else model.to(dtype)


def token_batches(vocab: int = 11, batches: int = 3, size: int = 4, length: int = 9,
                  seed: int = 1, ignore: float = 0.2):
    """``(ids, labels)`` batches for :func:`tiny_lm`: labels (B, T) are the next tokens, the
    last position and a fraction ``ignore`` of the others labelled -100."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batches):
        ids = torch.randint(0, vocab, (size, length + 1), generator=g)
        labels = ids[:, 1:].clone()
        labels[torch.rand(labels.shape, generator=g) < ignore] = -100
        labels[:, -1] = -100
        out.append((ids[:, :-1], labels))
    return out


def statistics_of(features, labels, num_classes, weight=None, bias=None, ncc=None):
    """The statistics and decision counts the recorder writes for one source (float64).

    ``ncc``: the ClassStats whose means the NCC rule uses (default: these statistics).
    """
    from ncanalyze.core.accumulator import class_stats
    from ncanalyze.core.decisions import PredictionAccumulator

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


def pydoc_token_ids(vocab_size: int = 512, chars: int = 40_000, model: str = "wordlevel"):
    """English text shipped with Python (``pydoc_data.topics``) tokenised by a tokenizer
    trained here, in memory: ``(ids (n,) int64 ndarray, tokenizer)``.

    ``model``: "wordlevel" (fast, for tests) or "bpe" (what examples/train_tiny_lm.py uses).
    """
    from pydoc_data.topics import topics
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    text = "\n".join(topics[k] for k in sorted(topics))[:chars]
    if model == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"])
    else:
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(text.splitlines(), trainer=trainer)
    return np.asarray(tok.encode(text).ids, dtype=np.int64), tok


def tiny_gpt2(vocab_size: int, width: int = 32, layers: int = 2, context: int = 64,
              seed: int = 0):
    """A GPT-2 language model from a config (no download): ``layers`` blocks of ``width``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=context, n_embd=width,
                        n_layer=layers, n_head=2, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def lm_examples(ids: np.ndarray, length: int = 32) -> list[dict]:
    """Hugging Face causal-LM examples: blocks of ``length`` tokens, labels = input_ids."""
    import torch

    n = ids.size // length
    blocks = torch.as_tensor(ids[:n * length]).reshape(n, length)
    return [{"input_ids": b, "labels": b.clone()} for b in blocks]


def printf_virtual_dataset(f, name: str, source: str, shape, dtype, file: str = ".") -> None:
    """Create ``name`` as a virtual dataset with a printf-style mapping: HDF5 reads block ``j``
    of the epoch axis (``[j]``) from the dataset named ``source`` with ``%b`` replaced by
    ``j`` (in ``file``), for j = 0, 1, … until a source is missing."""
    import h5py
    from h5py import h5d, h5p, h5s, h5t

    shape = tuple(shape)
    rest = shape[1:]
    vspace = h5s.create_simple(shape, (h5s.UNLIMITED,) + rest)
    vspace.select_hyperslab((0,) * len(shape), (h5s.UNLIMITED,) + (1,) * len(rest),
                            stride=(1,) * len(shape), block=(1,) + rest)
    src = h5s.create_simple((1,) + rest)
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_virtual(vspace, file.encode(), source.encode(), src)
    parent = name.strip("/").rpartition("/")[0]
    if parent:
        f.require_group(parent)
    h5d.create(f.id, name.encode(), h5t.py_create(np.dtype(dtype)), vspace, dcpl=dcpl)
    assert isinstance(f[name], h5py.Dataset)


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
        self.decode_bytes = 0  # nothing to decompress
        self.inputs = []  # no file is read

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


# ----------------------------------------------------------------- raw run files (h5py)
N, C, P, E = 60, 3, 8, 3


def valid_members(seed: int = 0) -> dict:
    """A valid run (N=60, C=3, P=8, epochs 1..3) as {hdf5 path: array}."""
    rng = np.random.default_rng(seed)
    y = np.arange(N) % C
    centres = 4.0 * rng.standard_normal((C, P))
    feats = centres[y][None] + rng.standard_normal((E, N, P))
    return {
        "labels": y.astype(np.int64),
        "epoch": np.arange(1, E + 1, dtype=np.int64),
        "features": feats.astype(np.float32),
        "weight": rng.standard_normal((E, C, P)),
        "bias": rng.standard_normal((E, C)),
        "scalars/train_loss": np.linspace(1.0, 0.1, E),
    }


def write_h5(path, members: dict, attrs: dict | None = None, **file_kwargs) -> Path:
    """Write ``members`` ({path: array or dict of create_dataset kwargs}) and root ``attrs``."""
    with h5py.File(path, "w", **file_kwargs) as f:
        for key, value in (attrs if attrs is not None else {"ncanalyze_format": 1}).items():
            f.attrs[key] = value
        for name, value in members.items():
            if isinstance(value, dict):
                f.create_dataset(name, **value)
            else:
                f.create_dataset(name, data=value)
    return Path(path)


def hostile_members():
    """:func:`valid_members` with a layer and a test split (what the hostile-file tests corrupt)."""
    m = valid_members()
    m["layers/block"] = m["features"][:, :, :4].copy()
    m["splits/test/labels"] = m["labels"][: N // 2].copy()
    m["splits/test/features"] = m["features"][:, : N // 2].copy()
    return m


def unlimited_vds(f, name, target, shape):
    """A virtual dataset with an unlimited mapping: HDF5 opens its sources to find its extent
    as soon as its shape is asked for."""
    from h5py import h5d, h5p, h5s, h5t

    e, n, p = shape
    spaces = []
    for _ in range(2):
        space = h5s.create_simple(shape, (h5s.UNLIMITED, n, p))
        space.select_hyperslab((0, 0, 0), (h5s.UNLIMITED, 1, 1), stride=(1, 1, 1),
                               block=(1, n, p))
        spaces.append(space)
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_virtual(spaces[0], b".", target.encode(), spaces[1])
    parent = name.rpartition("/")[0]
    if parent:
        f.require_group(parent)
    h5d.create(f.id, name.encode(), h5t.NATIVE_FLOAT, spaces[0], dcpl=dcpl)
