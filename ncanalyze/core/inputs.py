"""Checks of the in-memory arrays the Python API takes (docs/RELIABILITY.md §1).

``nc_metrics``, ``snr``, ``decompose``, ``least_squares_classifier`` and ``class_stats`` go
through :func:`checked_labels` and :func:`check_features` before anything C-sized is
allocated, and refuse what they would otherwise mangle silently: float labels that are not
integers (they were truncated), complex features (the imaginary part was dropped), and a class
count beyond the limit the CLI applies to files (one label of 2³¹−1 asked for 2³¹ classes).
"""

from __future__ import annotations

import numpy as np

from ..backend import to_numpy
from ..errors import UsageError
from ..limits import MAX_CLASSES


def check_features(features) -> None:
    """``features`` is 2-D and real (bool, integer or floating).

    Raises
    ------
    UsageError
    """
    shape = tuple(features.shape)
    if len(shape) != 2:
        raise UsageError(f"features must be 2-D (n_samples, n_features), got shape {shape}")
    kind = _kind(features.dtype)
    if kind == "c":
        raise UsageError(f"features must be real, got complex dtype {features.dtype} (the "
                         "imaginary part would be lost; pass .real or abs() explicitly)")
    if kind not in "biuf":
        raise UsageError(f"features must hold real numbers, got dtype {features.dtype}")


def _kind(dtype) -> str:
    """NumPy's dtype kind letter of any array library's dtype."""
    try:
        return np.dtype(dtype).kind
    except TypeError:
        name = str(dtype).rsplit(".", 1)[-1]  # torch.complex64, torch.bfloat16, …
        if name.startswith("complex"):
            return "c"
        if name.startswith(("float", "bfloat")):
            return "f"
        if name.startswith(("int", "uint")):
            return "i"
        return "b" if name == "bool" else "O"


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
                             f"{host.size} are not (first: labels[{i}] = {host[i]!r})")
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
