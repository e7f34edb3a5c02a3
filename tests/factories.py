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
