"""Checks of the arrays given to the in-memory Python API (``nc_metrics``, ``decompose``,
``snr``, ``least_squares_classifier``, ``class_stats``), before any arithmetic.

One function, :func:`check_inputs`, so that every public function and every array library
(NumPy, CuPy, torch, any array-API namespace) refuses the same mistakes with the same
:class:`~ncanalyze.errors.UsageError`, naming the argument and both shapes, instead of a
library's own error ("mat1 and mat2 shapes cannot be multiplied", ``IndexError``).
"""

from __future__ import annotations

import numpy as np

from ..backend import to_numpy
from ..errors import UsageError


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
        length than ``weight`` has rows, a complex or non-numeric array.
    """
    fs = shape_of(features)
    if len(fs) != 2:
        raise UsageError(f"features must be 2-D (n_samples, n_features), got shape {_shape(fs)}")
    if fs[0] == 0:
        raise UsageError(f"features has no rows (shape {_shape(fs)})")
    _check_real("features", features)
    ls = shape_of(labels)
    if len(ls) != 1 or ls[0] != fs[0]:
        raise UsageError(f"labels must have shape ({fs[0]},), one per row of features; got "
                         f"labels {_shape(ls)} and features {_shape(fs)}")
    if weight is None:
        if bias is not None:
            raise UsageError("bias was given without weight")
        return
    ws = shape_of(weight)
    if len(ws) != 2 or ws[1] != fs[1]:
        raise UsageError(f"weight must have shape (n_classes, {fs[1]}), one column per feature; "
                         f"got weight {_shape(ws)} and features {_shape(fs)}")
    _check_real("weight", weight)
    if num_classes is not None and ws[0] != num_classes:
        raise UsageError(f"weight must have num_classes = {num_classes} rows; got weight "
                         f"{_shape(ws)}")
    classes_seen = int(np.max(to_numpy(labels))) + 1 if num_classes is None else None
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
