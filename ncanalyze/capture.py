"""Capture features from a PyTorch model during training (forward hooks).

ncanalyze does not depend on torch: this module never imports it at module level, and works
on the model and loader by duck typing (``register_forward_hook``, ``named_modules``, tensors'
``detach``/``cpu``). It needs torch only in the sense that you pass it torch objects.

Typical use, three lines in a training loop::

    with RunWriter("run.h5", y_train, weight_decay=wd, loss="mse") as writer:
        for epoch in range(epochs):
            train_one_epoch(model)
            record_epoch(writer, epoch, model, train_loader, classifier=model.fc,
                         train_loss=loss)

``train_loader`` must yield ``(inputs, labels)`` in a fixed order (``shuffle=False``) whose
labels are the ones given to :class:`~ncanalyze.io.writer.RunWriter`.

Language models: features of shape (B, T, P) with labels of shape (B, T) (next-token labels)
give one row per labelled position, in batch-major order; positions labelled ``-100`` (the
ignore index of ``torch.nn.CrossEntropyLoss``) are skipped. Features are converted to the
requested ``dtype`` directly from the model's dtype (a float64 model gives float64 rows).
For language-model-sized data, record statistics instead (:mod:`ncanalyze.recorder`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from .backend import to_numpy
from .errors import UsageError

__all__ = ["capture_features", "penultimate_features", "record_epoch", "sample_rows",
           "IGNORE_INDEX"]

#: Label of a position that is not a sample (``torch.nn.CrossEntropyLoss``'s ignore index).
IGNORE_INDEX = -100


def _resolve(model, module) -> Any:
    """A submodule given as a module object or a dotted name (``"layer4.1"``)."""
    if isinstance(module, str):
        named = dict(model.named_modules())
        if module not in named:
            some = ", ".join(list(named)[1:8])
            raise UsageError(f"model has no submodule {module!r} (some names: {some})")
        return named[module]
    if not hasattr(module, "register_forward_hook"):
        raise UsageError(f"{type(module).__name__} is not a torch.nn.Module nor a module name")
    return module


def sample_rows(features, labels, ignore_index: int = IGNORE_INDEX):
    """One row per labelled sample or position, and its label (torch tensors, on the device
    of ``features``).

    Parameters
    ----------
    features : torch.Tensor
        (B, ...) with ``labels`` (B,): one row per sample, the activation flattened (a conv
        map (B, C, H, W) becomes (B, C·H·W)); or (B, T, P) with ``labels`` (B, T): one row
        per position (a language model's next-token features).
    labels : tensor or array, shape (B,) or (B, T)
    ignore_index : int
        Positions with this label are skipped.

    Returns
    -------
    rows : torch.Tensor, shape (n, P)
        In the dtype of ``features``.
    labels : torch.Tensor, shape (n,)
        int64.
    """
    import torch

    y = torch.as_tensor(labels, device=features.device)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise UsageError(f"labels must be integers, got {str(y.dtype).removeprefix('torch.')}")
    y = y.long()
    shape = tuple(features.shape)
    if y.ndim >= 2 and features.ndim == y.ndim + 1 and shape[:y.ndim] == tuple(y.shape):
        x = features.reshape(-1, shape[-1])
    elif y.ndim == 1 and features.ndim >= 1 and shape[0] == y.shape[0]:
        x = features.reshape(shape[0], -1)
    else:
        raise UsageError(f"features of shape {shape} do not match labels of shape "
                         f"{tuple(y.shape)}: expected (B, P) with (B,) labels, or (B, T, P) "
                         "with (B, T) labels")
    y = y.reshape(-1)
    keep = y != ignore_index
    if not bool(keep.all()):
        x, y = x[keep], y[keep]
    return x, y


def _host(t, dtype) -> np.ndarray:
    """A tensor as a NumPy array of ``dtype``, converted once from the tensor's own dtype."""
    if not hasattr(t, "detach"):
        return np.asarray(t, dtype=dtype)
    import torch

    target = getattr(torch, np.dtype(dtype).name)
    return to_numpy(t.detach().to(dtype=target))


def capture_features(model, loader: Iterable, modules: Mapping[str, Any], *,
                     inputs_of: Iterable[str] = (), device=None,
                     dtype=np.float32) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run ``model`` over ``loader`` and collect the outputs (or inputs) of some submodules.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode for the pass (and restored to its previous mode afterwards); no
        gradients are tracked.
    loader : iterable of (inputs, labels)
        E.g. a ``torch.utils.data.DataLoader`` with ``shuffle=False``.
    modules : mapping of str to (torch.nn.Module or str)
        Name in the result -> submodule (object or dotted name from ``model.named_modules()``).
    inputs_of : iterable of str
        Names (keys of ``modules``) whose *input* is captured instead of their output (the
        input of the last linear layer is the penultimate feature vector).
    device : torch.device or str, optional
        Inputs are moved there before the forward pass; default: left where they are.
    dtype : numpy dtype, default float32
        Dtype of the returned arrays.

    Returns
    -------
    features : dict of str to ndarray, shape (n_samples, n_features_name)
        Rows as :func:`sample_rows` makes them: activations flattened per sample (a conv map
        (B, C, H, W) becomes (B, C·H·W)), or one row per labelled position of (B, T, P)
        activations with (B, T) labels (``-100`` skipped).
    labels : ndarray of int64, shape (n_samples,)
    """
    import torch  # lazily: ncanalyze itself does not depend on torch

    inputs_of = set(inputs_of)
    unknown = inputs_of - set(modules)
    if unknown:
        raise UsageError(f"inputs_of names {sorted(unknown)} are not keys of modules")
    store: dict[str, list[np.ndarray]] = {name: [] for name in modules}
    current: dict[str, list] = {name: [] for name in modules}  # this batch's activations
    handles = []

    def hook_for(name: str):
        if name in inputs_of:
            def pre(_mod, args):
                current[name].append(args[0].detach())
            return pre

        def post(_mod, _args, out):
            current[name].append(out.detach())
        return post

    labels: list[np.ndarray] = []
    was_training = model.training
    try:
        for name, module in modules.items():
            mod = _resolve(model, module)
            if name in inputs_of:
                handles.append(mod.register_forward_pre_hook(hook_for(name)))
            else:
                handles.append(mod.register_forward_hook(hook_for(name)))
        model.eval()
        with torch.no_grad():
            for batch in loader:
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise UsageError("loader must yield (inputs, labels) pairs")
                x, y = batch[0], batch[1]
                if device is not None:
                    x = x.to(device)
                model(x)
                kept = None
                for name, seen in current.items():
                    if len(seen) != 1:
                        raise UsageError(f"submodule {name!r} ran {len(seen)} times in one "
                                         "forward pass (it must run exactly once)")
                    rows, kept = sample_rows(seen.pop(), y)
                    store[name].append(_host(rows, dtype))
                if kept is not None:
                    labels.append(to_numpy(kept))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not labels:
        raise UsageError("loader yielded no batch")
    out = {name: np.concatenate(parts, axis=0) for name, parts in store.items()}
    return out, np.concatenate(labels).astype(np.int64)


def penultimate_features(model, loader: Iterable, classifier, *, device=None,
                         dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features: the input of the classifier (last linear layer) over ``loader``.

    Parameters
    ----------
    model : torch.nn.Module
    loader : iterable of (inputs, labels)
    classifier : torch.nn.Module or str
        The last linear layer (object or dotted name), e.g. ``model.fc``.

    Returns
    -------
    features : ndarray, shape (n_samples, n_features)
    labels : ndarray of int64, shape (n_samples,)
    """
    feats, labels = capture_features(model, loader, {"penultimate": classifier},
                                     inputs_of=("penultimate",), device=device, dtype=dtype)
    return feats["penultimate"], labels


def record_epoch(writer, epoch: int, model, loader: Iterable, classifier, *,
                 layers: Mapping[str, Any] | None = None,
                 splits: Mapping[str, Iterable] | None = None, device=None,
                 dtype=np.float32, **scalars: float) -> None:
    """Capture one epoch of a torch model and append it to a :class:`RunWriter`.

    Parameters
    ----------
    writer : ncanalyze.io.writer.RunWriter
    epoch : int
    model : torch.nn.Module
    loader : iterable of (inputs, labels)
        The training set in the order of ``writer.labels`` (``shuffle=False``).
    classifier : torch.nn.Module or str
        The last linear layer; its input is stored as ``/features``, its ``weight`` and
        ``bias`` (if any) as ``/weight`` and ``/bias``.
    layers : mapping of str to (torch.nn.Module or str), optional
        Earlier layers whose outputs go to ``/layers/<name>``.
    splits : mapping of str to loader, optional
        Extra splits (declared in ``RunWriter(splits=...)``) whose penultimate features go to
        ``/splits/<name>/features``.
    dtype : numpy dtype, default float32
        Storage dtype of the features (float16 halves the file); W and b are stored in at
        least float32.
    **scalars : float
        Per-epoch scalars (train_loss, lr, …).

    Raises
    ------
    UsageError
        If the loader's labels differ from the writer's (a shuffled loader, another subset).
    """
    modules = {"__penultimate__": classifier, **dict(layers or {})}
    feats, labels = capture_features(model, loader, modules, inputs_of=("__penultimate__",),
                                     device=device, dtype=dtype)
    _check_labels(labels, writer.labels, "the training loader")
    split_feats = {}
    for name, split_loader in (splits or {}).items():
        if name not in writer.splits:
            raise UsageError(f"split {name!r} was not declared in RunWriter(splits=...)")
        f, y = penultimate_features(model, split_loader, classifier, device=device, dtype=dtype)
        _check_labels(y, writer.splits[name], f"the {name!r} loader")
        split_feats[name] = f
    clf = _resolve(model, classifier)
    weight = getattr(clf, "weight", None)
    bias = getattr(clf, "bias", None)
    # The classifier is tiny: keep it at least float32 even when features are stored float16.
    wdtype = np.promote_types(dtype, np.float32)
    writer.add_epoch(
        epoch, feats.pop("__penultimate__"),
        None if weight is None else _host(weight, wdtype).reshape(weight.shape[0], -1),
        None if bias is None else _host(bias, wdtype),
        layers=feats or None, splits=split_feats or None, **scalars)


def _check_labels(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    if got.shape != expected.shape or not np.array_equal(got, expected):
        raise UsageError(f"{what} yields labels that differ from the RunWriter's labels "
                         f"({got.shape[0]} vs {expected.shape[0]} samples); use a loader with "
                         "shuffle=False over the same samples")
