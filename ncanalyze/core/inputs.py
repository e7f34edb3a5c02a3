"""Checks of the arrays given to the in-memory Python API (``nc_metrics``, ``decompose``,
``snr``, ``least_squares_classifier``, ``class_stats``), before any arithmetic.

One function, :func:`check_inputs`, so that every public function and every array library
(NumPy, CuPy, torch, any array-API namespace) refuses the same mistakes with the same
:class:`~ncanalyze.errors.UsageError`, naming the argument and both shapes, instead of a
library's own error ("mat1 and mat2 shapes cannot be multiplied", ``IndexError``); and
:func:`checked_labels` for the label values, before anything C-sized is allocated: float
labels that are not integers (they were truncated), and a class count beyond the limit the
CLI applies to files (one label of 2³¹−1 asked for 2³¹ classes).
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from ..backend import detach, to_numpy
from ..errors import UsageError
from ..limits import MAX_CLASSES, MAX_MAGNITUDE


def shape_of(array) -> tuple[int, ...]:
    """The shape of any array-like (NumPy, CuPy, torch, array API, nested lists)."""
    shape = getattr(array, "shape", None)
    if shape is None:
        shape = np.shape(array)
    return tuple(int(d) for d in shape)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_real(name: str, array) -> None:
    """Refuse complex, boolean and non-numeric dtypes (by name: every library spells them so)."""
    dtype = getattr(array, "dtype", None)
    if dtype is None:
        return
    kind = str(dtype).rsplit(".", 1)[-1].lower()
    if "complex" in kind or kind in ("bool", "object") or kind.startswith(("str", "<u", "|s")):
        raise UsageError(f"{name} must hold real numbers, got dtype {dtype}")


def _check_values(name: str, array) -> None:
    """Refuse NaN/Inf and values beyond ±MAX_MAGNITUDE (float64 products would overflow;
    the rule the reader applies to run files)."""
    try:
        xp = array_namespace(array)
        array = detach(array)  # no autograd warning for a tensor that requires grad
    except TypeError:  # lists and scalars
        array, xp = np.asarray(array, dtype=np.float64), np
    if not bool(xp.all(xp.isfinite(array))):
        raise UsageError(f"{name} holds NaN or Inf")
    if float(xp.max(xp.abs(array))) > MAX_MAGNITUDE:
        raise UsageError(f"{name} holds values beyond ±{MAX_MAGNITUDE:g}, too large to compute "
                         "with in float64 (products overflow)")


def check_inputs(features, labels, weight=None, bias=None, *,
                 num_classes: int | None = None) -> None:
    """Refuse arrays whose shapes do not fit together.

    Parameters
    ----------
    features : array, shape (n_samples, n_features)
    labels : array, shape (n_samples,)
    weight : array, shape (n_classes, n_features), optional
    bias : array, shape (n_classes,), optional
    num_classes : int, optional
        C as given by the caller; ``weight`` must then have C rows (else at least
        ``max(labels) + 1``).

    Raises
    ------
    UsageError
        Naming the argument and the shapes involved: ``features`` not 2-D or without rows,
        ``labels`` not 1-D or of another length, ``weight`` not 2-D, with another number of
        columns than ``features`` or fewer rows than classes, ``bias`` not 1-D or of another
        length than ``weight`` has rows, a complex or non-numeric array, NaN or Inf, values
        beyond ±:data:`~ncanalyze.limits.MAX_MAGNITUDE`.
    """
    fs = shape_of(features)
    if len(fs) != 2:
        raise UsageError(f"features must be 2-D (n_samples, n_features), got shape {_shape(fs)}")
    if fs[0] == 0:
        raise UsageError(f"features has no rows (shape {_shape(fs)})")
    _check_real("features", features)
    _check_values("features", features)
    ls = shape_of(labels)
    if len(ls) != 1 or ls[0] != fs[0]:
        raise UsageError(f"labels must have shape ({fs[0]},), one per row of features; got "
                         f"labels {_shape(ls)} and features {_shape(fs)}")
    _, classes = checked_labels(labels, fs[0], num_classes)  # values, before any use
    if weight is None:
        if bias is not None:
            raise UsageError("bias was given without weight")
        return
    ws = shape_of(weight)
    if len(ws) != 2 or ws[1] != fs[1]:
        raise UsageError(f"weight must have shape (n_classes, {fs[1]}), one column per feature; "
                         f"got weight {_shape(ws)} and features {_shape(fs)}")
    _check_real("weight", weight)
    _check_values("weight", weight)
    if num_classes is not None and ws[0] != num_classes:
        raise UsageError(f"weight must have num_classes = {num_classes} rows; got weight "
                         f"{_shape(ws)}")
    classes_seen = classes if num_classes is None else None
    if classes_seen is not None and ws[0] < classes_seen:
        raise UsageError(f"weight has {ws[0]} rows but the labels name {classes_seen} classes "
                         f"(largest label {classes_seen - 1}); got weight {_shape(ws)} and "
                         f"labels {_shape(ls)}")
    if bias is not None:
        bs = shape_of(bias)
        if bs != (ws[0],):
            raise UsageError(f"bias must have shape ({ws[0]},), one per row of weight; got bias "
                             f"{_shape(bs)} and weight {_shape(ws)}")
        _check_real("bias", bias)
        _check_values("bias", bias)


def checked_labels(labels, num_samples: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    """Host int64 labels and C, checked.

    Parameters
    ----------
    labels : array, shape (n_samples,)
        Integers, or floats that are all integers.
    num_samples : int
        Rows of the features.
    num_classes : int, optional
        C; default ``max(labels) + 1``.

    Raises
    ------
    UsageError
        Labels not 1-D of length ``num_samples``, not integers (a float that is not an integer,
        NaN), negative, or ≥ C; C < 1 or above :data:`~ncanalyze.limits.MAX_CLASSES`.
    """
    host = np.asarray(to_numpy(labels))
    if host.ndim != 1 or host.shape[0] != num_samples:
        raise UsageError(f"labels must be 1-D with one entry per row of features "
                         f"({num_samples}), got shape {host.shape}")
    if host.dtype.kind == "f":
        bad = ~np.isfinite(host) | (host != np.round(host))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UsageError(f"labels must be integers (class indices): {int(bad.sum())} of "
                             f"{host.size} are not (first: labels[{i}] = {host[i].item()!r})")
        if host.size and np.abs(host).max() >= 2**62:
            raise UsageError(f"labels hold {np.abs(host).max():g}, far above the class-count "
                             f"limit {MAX_CLASSES}")
    elif host.dtype.kind not in "iu":
        raise UsageError(f"labels must be integers (class indices), got dtype {host.dtype}")
    if host.size and host.dtype.kind == "u" and host.max() > np.iinfo(np.int64).max:
        raise UsageError(f"labels hold {host.max()}, above the class-count limit {MAX_CLASSES}")
    host = host.astype(np.int64, copy=False)
    if host.size and host.min() < 0:
        raise UsageError(f"labels must be ≥ 0, {int(np.sum(host < 0))} are negative "
                         f"(min {host.min()})")
    if num_classes is not None:
        if isinstance(num_classes, (bool, np.bool_)) or int(num_classes) != num_classes:
            raise UsageError(f"num_classes must be an integer, got {num_classes!r}")
        c = int(num_classes)
        if not 1 <= c <= MAX_CLASSES:
            raise UsageError(f"num_classes = {c} must lie in 1..{MAX_CLASSES}")
        if host.size and host.max() >= c:
            raise UsageError(f"labels hold {host.max()}, not below num_classes = {c}")
        return host, c
    top = int(host.max()) if host.size else -1
    if top >= MAX_CLASSES:
        raise UsageError(f"labels hold {top}: C = max(labels) + 1 would be above the "
                         f"class-count limit {MAX_CLASSES} (docs/RELIABILITY.md)")
    return host, top + 1
