"""The run-file rules on values a writer chooses (docs/FORMAT.md), shared by reader and writer.

Each rule raises ``ValueError`` with the problem: the reader (:mod:`ncanalyze.io.schema`)
reports it as ``InputError`` naming the file and dataset, :class:`~ncanalyze.io.writer.RunWriter`
as ``UsageError`` before anything is written, so the writer cannot produce a file the reader
refuses.
"""

from __future__ import annotations

import math

import numpy as np

from ..limits import MAX_MAGNITUDE
from .h5 import MAX_CLASSES


def check_num_classes(num_classes: int) -> int:
    """C: an integer with 2 ≤ C ≤ MAX_CLASSES."""
    if num_classes < 2:
        raise ValueError(f"num_classes = {num_classes}: at least 2 classes are needed")
    if num_classes > MAX_CLASSES:
        raise ValueError(f"num_classes = {num_classes} is above the limit {MAX_CLASSES}")
    return num_classes


def check_labels(labels: np.ndarray, num_classes: int | None) -> None:
    """Labels lie in ``0..C-1`` (C below the limit when not declared)."""
    lo, hi = labels.min(), labels.max()
    if lo < 0:
        raise ValueError(f"has negative labels ({int(np.sum(labels < 0))} of them, min {lo})")
    if num_classes is not None and hi >= num_classes:
        bad = int(np.sum(labels >= num_classes))
        raise ValueError(f"has {bad} label(s) ≥ C = {num_classes} (max {hi}); labels must "
                         f"lie in 0..{num_classes - 1}")
    if hi >= MAX_CLASSES:
        raise ValueError(f"has label {hi}: C would be above the limit {MAX_CLASSES}")


def check_classes_present(labels: np.ndarray, num_classes: int) -> None:
    """Every class ``0..C-1`` has a sample: the rule of ``--require-all-classes`` (applied by
    :func:`ncanalyze.run_checks.absent_classes`; files with absent classes are valid)."""
    counts = np.bincount(labels, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        shown = ", ".join(str(c) for c in empty[:10]) + (" …" if empty.size > 10 else "")
        raise ValueError(f"class(es) {shown} have no samples (C = {num_classes})")


def check_weight_decay(value) -> float:
    """λ: a finite number ≥ 0 (a boolean is not a number here)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"weight_decay={value!r} must be a number, not a boolean")
    try:
        wd = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"weight_decay={value!r} is not a number") from None
    if not math.isfinite(wd) or wd < 0:
        raise ValueError(f"weight_decay={wd!r} must be finite and ≥ 0")
    return wd


def check_member_name(kind: str, name) -> str:
    """A layer, split or scalar name: one HDF5 link name (no "/", not empty, not ".")."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name:
        raise ValueError(f"{kind} name {name!r} must be a non-empty name without '/' "
                         "(it becomes one HDF5 member)")
    return name


def magnitude_problem() -> str:
    """The words for values beyond ±MAX_MAGNITUDE (one message for reader and writer)."""
    return (f"holds values beyond ±{MAX_MAGNITUDE:g}, too large to compute with in float64 "
            "(products overflow)")


def beyond_magnitude(arr: np.ndarray) -> bool:
    """Whether finite ``arr`` holds a value beyond ±MAX_MAGNITUDE (no copy of ``arr``)."""
    return bool(arr.size) and max(-float(arr.min()), float(arr.max())) > MAX_MAGNITUDE


def statistics_beyond_magnitude(means: np.ndarray, within_scatter: np.ndarray,
                                num_samples: int) -> str | None:
    """Which of a source's statistics are beyond what values within ±MAX_MAGNITUDE give:
    ``"means"``, ``"within_scatter"`` (a within-class spread above twice the limit) or None.
    One rule for the class statistics of a features run and a stored statistics run."""
    if beyond_magnitude(means):
        return "means"
    spread = float(np.max(np.diagonal(within_scatter), initial=0.0)) / max(num_samples, 1)
    return "within_scatter" if spread > (2 * MAX_MAGNITUDE) ** 2 else None
