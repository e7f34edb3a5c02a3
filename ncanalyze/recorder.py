"""Record one epoch's sufficient statistics of a torch model on its device, in two passes.

A statistics run (docs/FORMAT.md) holds, per epoch, the class counts, class means, N·Σ_W, the
per-class scatter and the decision counts instead of every feature row, so its size and the
recorder's memory do not grow with the number of samples (a language model's tokens). The
recorder runs the model over an evaluation loader twice:

1. **statistics**: the features (the input of the classifier, or the input/output of any
   module) of every labelled sample or position are added to a
   :class:`~ncanalyze.core.accumulator.StatsAccumulator` (per-class reference shift, float64 totals);
2. **decisions**: with the final class means, a
   :class:`~ncanalyze.core.decisions.PredictionAccumulator` counts the classifier's and the
   nearest-class-centre decisions (accuracy, NCC accuracy, NC4).

The arithmetic is that of a features run (and ``convert --statistics``), so the keys equal
those of the features run. It runs where the model is: through the torch namespace on CUDA,
on NumPy views of the tensors on the CPU. Each forward pass stops once the hooked modules
have run. Device memory: O(C·P + P²) plus one batch (each batch is its own accumulation
block, its score tiles no larger than its rows; docs/PERFORMANCE.md).

With ``torch.distributed`` initialised, each rank accumulates the batches its loader yields
(its shard); the statistics are merged exactly (:func:`~ncanalyze.core.stats.merge_class_stats`,
the rule of a row-split epoch), every rank runs the decision pass with the merged means and the
counts are summed. Every rank returns the same result; one rank writes it. (Length: above
the ~350-line guide; the two passes share the hooks, the batches' shapes and their checks.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Iterable, Mapping

import numpy as np
from array_api_compat import array_namespace, device

from .backend import to_numpy
from .capture import IGNORE_INDEX, _resolve, sample_rows
from .core.accumulator import StatsAccumulator
from .core.decisions import DecisionCounts, PredictionAccumulator
from .core.stats import ClassStats, merge_class_stats
from .errors import InputError, NcanalyzeError, UsageError
from .ranks import agree, collective, sum_counts

__all__ = ["RecordedStatistics", "record_statistics", "record_statistics_epoch"]

_FEATURES = "__features__"


@dataclass
class RecordedStatistics:
    """One epoch as recorded: what :meth:`RunWriter.add_statistics` stores.

    Attributes
    ----------
    stats : ClassStats
        Host (NumPy) statistics of the training loader; rows only for the classes present.
    decisions : DecisionCounts
        Decision counts of the training loader with the final class means.
    weight : ndarray, shape (C, P), or None
    bias : ndarray, shape (C,), or None
    feature_dtype : str
        The features' dtype in the model (``"float32"``, ``"bfloat16"``, …).
    layers : dict of str to ClassStats
    splits : dict of str to (ClassStats, DecisionCounts)
        Each split's statistics and its decisions with the *training* means.
    seconds : dict of str to float
        Wall time of the ``"statistics"`` and ``"decisions"`` passes over the training
        loader (the decision pass includes the splits).
    """

    stats: ClassStats
    decisions: DecisionCounts
    weight: np.ndarray | None
    bias: np.ndarray | None
    feature_dtype: str
    layers: dict[str, ClassStats] = field(default_factory=dict)
    splits: dict[str, tuple[ClassStats, DecisionCounts]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class _Stop(Exception):
    """Raised from a hook once every hooked module has run (the rest is not needed)."""


class _Taps:
    """Forward hooks catching the input or output of some modules for one forward pass."""

    def __init__(self, model, modules: Mapping[str, tuple[Any, bool]]):
        self.model = model
        self.modules = {name: (_resolve(model, mod), inp) for name, (mod, inp) in
                        modules.items()}
        self.seen: dict[str, Any] = {}
        self.handles: list = []

    def __enter__(self):
        for name, (mod, inp) in self.modules.items():
            if inp:
                self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            else:
                self.handles.append(mod.register_forward_hook(self._post(name)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    def _keep(self, name: str, tensor) -> None:
        if name not in self.seen:
            self.seen[name] = tensor.detach()
        if len(self.seen) == len(self.modules):
            raise _Stop

    def _pre(self, name):
        return lambda _mod, args: self._keep(name, args[0])

    def _post(self, name):
        return lambda _mod, _args, out: self._keep(name, out)

    def run(self, forward) -> dict[str, Any]:
        self.seen = {}
        try:
            forward()
        except _Stop:
            pass
        missing = sorted(set(self.modules) - set(self.seen))
        if missing:
            names = ", ".join("the features module" if m == _FEATURES else repr(m)
                              for m in missing)
            raise UsageError(f"{names} did not run in the model's forward pass")
        return self.seen


def _batches(loader: Iterable, model, device, shift_labels: bool, ignore_index: int):
    """(forward, labels) per batch: ``(inputs, labels)`` pairs or mappings with "labels"."""
    import torch

    def move(v):
        return v.to(device) if hasattr(v, "to") else v

    for batch in loader:
        if isinstance(batch, Mapping):
            if "labels" not in batch:
                raise UsageError("a mapping batch must hold the labels under 'labels'")
            labels = batch["labels"]
            forward = partial(model, **{k: move(v) for k, v in batch.items() if k != "labels"})
        elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
            labels = batch[1]
            forward = partial(model, move(batch[0]))
        else:
            raise UsageError("loader must yield (inputs, labels) pairs or mappings with 'labels'")
        labels = torch.as_tensor(labels)
        if shift_labels:  # labels[t] is the token at t; the features at t predict t + 1
            pad = torch.full_like(labels[..., :1], ignore_index)
            labels = torch.cat([labels[..., 1:], pad], dim=-1)
        yield forward, labels


class _Recorder:
    """The passes over one loader, on one device and namespace."""

    def __init__(self, model, taps: _Taps, num_classes: int, *, device, on_numpy: bool,
                 dtype: str, shift_labels: bool, ignore_index: int):
        self.model, self.taps, self.c = model, taps, num_classes
        self.device, self.on_numpy, self.dtype = device, on_numpy, dtype
        self.shift, self.ignore = shift_labels, ignore_index
        self.feature_dtype = None
        self.width: int | None = None  # P of the classifier, checked on the first batch

    def rows(self, loader, what: str):
        """(name -> rows, labels, host labels) per batch, labels checked against [0, C)."""
        for i, (forward, labels) in enumerate(_batches(loader, self.model, self.device,
                                                       self.shift, self.ignore)):
            seen = self.taps.run(forward)
            out, y = {}, None
            for name, t in seen.items():
                x, y = sample_rows(t, labels, self.ignore)
                out[name] = x
            if int(y.shape[0]) == 0:
                continue  # every position ignored (padding)
            if self.feature_dtype is None:
                self.feature_dtype = str(seen[_FEATURES].dtype).removeprefix("torch.")
            yh = to_numpy(y)
            bad = (yh < 0) | (yh >= self.c)
            if bad.any():
                raise InputError(f"{what}: batch {i} has label {int(yh[bad][0])} outside "
                                 f"[0, {self.c}) (positions labelled {self.ignore} are skipped)")
            if self.on_numpy:
                out = {k: to_numpy(v) for k, v in out.items()}
                y = yh
            yield out, y, yh

    def statistics(self, loader, what: str, layers=(), means=None, weight=None, bias=None,
                   ncc_classes=None):
        """One pass: statistics of the features (and layers); decisions too when ``means``
        (the training means, for a split) are given."""
        accs: dict[str, StatsAccumulator] = {}
        pred = None
        for out, y, yh in self.rows(loader, what):
            if not accs:
                p = int(out[_FEATURES].shape[1])
                if self.width is not None and p != self.width:
                    raise UsageError(f"the features have {p} columns but the classifier "
                                     f"has {self.width} inputs")
                for name, x in out.items():
                    accs[name] = StatsAccumulator(self.c, int(x.shape[1]), array_namespace(x),
                                                  self.dtype, device=device(x), regroup=False)
                if means is not None:
                    pred = PredictionAccumulator(means, weight, bias, ncc_classes=ncc_classes,
                                                 tile_bytes=_batch_bytes(out[_FEATURES]))
            for name, x in out.items():
                accs[name].update(x, y, yh)
            if pred is not None:
                pred.update(out[_FEATURES], y)
        if not accs:
            raise UsageError(f"{what} yielded no labelled sample")
        counts = accs[_FEATURES].counts.copy()
        stats = {name: acc.finalize().on_host() for name, acc in accs.items()}
        return stats, counts, (None if pred is None else pred.counts())

    def decisions(self, loader, what: str, means, weight, bias, ncc_classes):
        """The decision pass with the final means; also the labels' histogram."""
        pred = None
        counts = np.zeros(self.c, dtype=np.int64)
        for out, y, yh in self.rows(loader, what):
            if pred is None:
                pred = PredictionAccumulator(means, weight, bias, ncc_classes=ncc_classes,
                                             tile_bytes=_batch_bytes(out[_FEATURES]))
            pred.update(out[_FEATURES], y)
            counts += np.bincount(yh, minlength=self.c)
        if pred is None:  # the first pass had samples: the loader changed
            raise UsageError(f"{what} yielded no labelled sample in the decision pass")
        return pred.counts(), counts


def _batch_bytes(rows) -> int:
    """Score tiles no larger than the batch's rows in float64 (memory: one batch, any C)."""
    return max(1, int(rows.shape[0])) * max(1, int(rows.shape[1])) * 8


def record_statistics(model, loader: Iterable, classifier=None, *, module=None,
                      output: bool = False, num_classes: int | None = None,
                      layers: Mapping[str, Any] | None = None,
                      splits: Mapping[str, Iterable] | None = None, device=None,
                      dtype: str = "float64", shift_labels: bool = False,
                      ignore_index: int = IGNORE_INDEX,
                      backend: str | None = None) -> RecordedStatistics:
    """Two passes over ``loader``: per-class statistics, then decisions with the final means.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode without gradients (its mode is restored afterwards).
    loader : iterable
        Yields ``(inputs, labels)`` pairs or mappings (``model(**batch)``) holding
        ``"labels"``. Labels of shape (B,) with features (B, ...), or (B, T) with features
        (B, T, P) (one sample per position); positions labelled ``ignore_index`` are
        skipped. Any order; both passes must yield the same samples.
    classifier : torch.nn.Module or str, optional
        The last linear layer: its weight (C, P) and bias give accuracy and NC4, and C.
    module : torch.nn.Module or str, optional
        Where the features are: the input of this module (its output with ``output=True``);
        default: the input of ``classifier``.
    num_classes : int, optional
        C; default: the classifier's rows. Required without a classifier.
    layers : mapping of str to (torch.nn.Module or str), optional
        Earlier modules whose outputs' statistics are recorded too (depth-wise keys).
    splits : mapping of str to loader, optional
        Extra splits: statistics and decisions (with the training means) in one pass each.
    device : torch.device or str, optional
        Inputs are moved there; default: the device of the model's first parameter.
    dtype : {"float64", "float32"}
        Precision of the per-block products (totals are float64 either way); float32 only
        for float16/32 features, as ``ncanalyze --dtype float32`` (docs/PERFORMANCE.md).
    shift_labels : bool
        The loader's labels are the tokens themselves (Hugging Face convention): the label
        of position t is the token at t + 1 (the last position is skipped).
    ignore_index : int
    backend : {"numpy", "torch"}, optional
        Where to accumulate; default: NumPy for a CPU model, torch on its device otherwise.

    Raises
    ------
    UsageError
        A classifier that does not match C or the features' width, a module that does not
        run, a loader that yields something else in the second pass.
    InputError
        A label outside [0, C) (other than ``ignore_index``).
    """
    import torch

    if dtype not in ("float64", "float32"):
        raise UsageError(f"dtype must be float64 or float32, got {dtype!r}")
    weight = bias = None
    if classifier is not None:
        clf = _resolve(model, classifier)
        weight, bias = getattr(clf, "weight", None), getattr(clf, "bias", None)
    if weight is not None:
        if weight.ndim != 2:
            raise UsageError(f"the classifier's weight has shape {tuple(weight.shape)}, "
                             "expected (C, P)")
        if num_classes is not None and int(weight.shape[0]) != int(num_classes):
            raise UsageError(f"the classifier has {weight.shape[0]} outputs but "
                             f"num_classes is {num_classes}")
        num_classes = int(weight.shape[0])
        if bias is not None and tuple(bias.shape) != (num_classes,):
            raise UsageError(f"the classifier's bias has shape {tuple(bias.shape)}, "
                             f"expected ({num_classes},)")
    if num_classes is None or int(num_classes) < 2:
        raise UsageError("num_classes (at least 2) is needed when the classifier has no weight")
    if module is None and classifier is None:
        raise UsageError("give the classifier or the module whose input holds the features")
    if device is None:
        param = next(iter(model.parameters()), None)
        device = torch.device("cpu") if param is None else param.device
    device = torch.device(device)
    on_numpy = backend == "numpy" or (backend is None and device.type == "cpu")
    if backend not in (None, "numpy", "torch"):
        raise UsageError(f"backend must be numpy or torch, got {backend!r}")
    feats = (classifier, True) if module is None else (module, not output)
    taps = _Taps(model, {_FEATURES: feats, **{n: (m, False) for n, m in (layers or {}).items()}})
    rec = _Recorder(model, taps, int(num_classes), device=device, on_numpy=on_numpy,
                    dtype=dtype, shift_labels=shift_labels, ignore_index=ignore_index)
    gather = collective()
    was_training = model.training
    model.eval()
    try:
        with taps, torch.no_grad():
            return _two_passes(rec, loader, weight, bias, layers or {}, splits or {}, gather)
    finally:
        model.train(was_training)


def _two_passes(rec: _Recorder, loader, weight, bias, layers, splits, gather):
    import torch

    clock = time.perf_counter()
    error, stats = None, None
    rec.width = None if weight is None else int(weight.shape[1])
    try:
        stats, counts, _ = rec.statistics(loader, "the loader", layers)
    except NcanalyzeError as e:
        error = e
    agree(gather, error)
    if gather is not None:
        parts = gather(stats)
        stats = {name: merge_class_stats([part[name] for part in parts]) for name in stats}
    train = stats.pop(_FEATURES)
    _check_finite(train, "the loader")
    seconds = {"statistics": time.perf_counter() - clock}
    clock = time.perf_counter()

    # The decision pass scores in float64 (a float32 classifier is widened a class tile at
    # a time, not copied); bfloat16/float16 weights are widened to float32 once.
    def dev(a):
        if a is None:
            return None
        if hasattr(a, "detach"):
            a = a.detach()
            if a.dtype not in (torch.float32, torch.float64):
                a = a.to(torch.float32)
        return to_numpy(a) if rec.on_numpy else torch.as_tensor(a).to(rec.device)

    means, w64, b64 = train.means if rec.on_numpy else dev(train.means), dev(weight), dev(bias)
    error, decisions, split_out = None, None, {}
    try:
        decisions, again = rec.decisions(loader, "the loader (decision pass)", means, w64, b64,
                                         train.class_ids)
        if not np.array_equal(again, counts):
            raise UsageError(
                f"the loader yielded {int(again.sum())} labelled samples in the decision pass "
                f"but {int(counts.sum())} in the statistics pass (or other labels); it must "
                "yield the same samples both times (no random subset, no dropped batch)")
        for name, split_loader in splits.items():
            s, _, d = rec.statistics(split_loader, f"the {name!r} loader", (), means, w64,
                                     b64, train.class_ids)
            split_out[name] = (_check_finite(s[_FEATURES], f"the {name!r} loader"), d)
    except NcanalyzeError as e:
        error = e
    agree(gather, error)
    if gather is not None:
        decisions = sum_counts(gather(decisions))
        merged = {}
        for name in splits:
            parts = gather(split_out[name])
            merged[name] = (merge_class_stats([p[0] for p in parts]),
                            sum_counts([p[1] for p in parts]))
        split_out = merged

    def host(a):
        if a is None:
            return None
        a = a.detach()
        return to_numpy(a.to(torch.promote_types(a.dtype, torch.float32))).copy()

    seconds["decisions"] = time.perf_counter() - clock
    return RecordedStatistics(train, decisions, host(weight), host(bias), rec.feature_dtype,
                              layers=stats, splits=split_out, seconds=seconds)


def _check_finite(stats: ClassStats, what: str) -> ClassStats:
    if not stats.is_finite():
        raise InputError(f"{what}: the features hold NaN or Inf (nothing was written)")
    return stats


def record_statistics_epoch(writer, epoch: int, model, loader: Iterable, classifier=None, *,
                            scalars: Mapping[str, float] | None = None,
                            **options) -> RecordedStatistics:
    """:func:`record_statistics` and, where ``writer`` is not ``None``, append the epoch.

    Parameters
    ----------
    writer : RunWriter or None
        A statistics writer (``RunWriter(path, num_classes=C, statistics=True)``). Under
        ``torch.distributed`` call this on every rank, with the writer on one rank (rank 0)
        and ``None`` elsewhere.
    epoch : int
    model, loader, classifier, **options
        As :func:`record_statistics`.
    scalars : mapping of str to float, optional
        Per-epoch scalars (``{"train_loss": …}``).

    Nothing is written unless both passes succeeded.
    """
    rec = record_statistics(model, loader, classifier, **options)
    if writer is not None:
        writer.add_statistics(epoch, rec.stats, rec.decisions, rec.weight, rec.bias,
                              layers=rec.layers or None, splits=rec.splits or None,
                              feature_dtype=rec.feature_dtype, **dict(scalars or {}))
    return rec
