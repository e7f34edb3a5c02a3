"""What the arrays a writer stores must hold for the reader to accept the run
(docs/RELIABILITY.md §1: a writer never creates a file the reader refuses).

The reader's rules on declared shapes live in :mod:`ncanalyze.io.schema`; these are the rules
on values and sizes that :class:`~ncanalyze.io.writer.RunWriter` (and through it ``convert``
and ``simulate``) applies to every array and epoch number before anything is written. Each
rule raises ``ValueError`` with the problem; the writer turns it into a ``UsageError``.
"""

from __future__ import annotations

import numpy as np

from ..limits import MAX_CLASSES_X_FEATURES, MAX_EPOCHS, MAX_FEATURES, MAX_SAMPLES
from .rules import beyond_magnitude, magnitude_problem
from .schema import EPOCH_FILL

#: Epoch numbers a run can hold: int64, above the sentinel that marks an unwritten slot.
EPOCH_MIN, EPOCH_MAX = int(EPOCH_FILL) + 1, int(np.iinfo(np.int64).max)
#: Rows checked for NaN/Inf at a time (bounds the temporary of the exact check).
_ROWS = 4096


def check_values(name: str, arr: np.ndarray) -> None:
    """``arr`` holds real numbers (stored as float), no NaN or Inf, none beyond
    ±:data:`~ncanalyze.limits.MAX_MAGNITUDE`.

    Booleans, integers and floats are accepted (stored as float); complex numbers (the
    imaginary part would be lost), strings, dates and objects are refused.
    """
    if arr.dtype.kind not in "biuf":
        what = "complex numbers" if arr.dtype.kind == "c" else f"dtype {arr.dtype}"
        raise ValueError(f"{name} must hold real numbers, got {what}")
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    # One pass in float64 finds any NaN/Inf (a sum of finite float16/32 values cannot
    # overflow it; one of float64 values near the limit can, and then the row count finds no
    # bad row); only then are the bad rows counted, a block of rows at a time.
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf is the NaN looked for
        total = arr.sum(dtype=np.float64)
    if not np.isfinite(total):
        rows = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
        bad = np.concatenate([~np.isfinite(rows[i:i + _ROWS]).all(axis=1)
                              for i in range(0, rows.shape[0], _ROWS)])
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name}: {int(bad.sum())} of {bad.size} rows contain NaN or Inf "
                             f"(first bad row: {first}); the reader refuses such a run")
    if beyond_magnitude(arr):
        raise ValueError(f"{name}: {magnitude_problem()}; the reader refuses such a run")


def check_sizes(num_samples: int, num_features: int, num_classes: int) -> None:
    """N, P and C·P within the reader's limits (ncanalyze/limits.py)."""
    if num_samples > MAX_SAMPLES:
        raise ValueError(f"N = {num_samples} samples is above the limit {MAX_SAMPLES}")
    if num_features < 1:
        raise ValueError("features have no columns (P = 0)")
    if num_features > MAX_FEATURES:
        raise ValueError(f"P = {num_features} features is above the limit {MAX_FEATURES}")
    if num_classes * num_features > MAX_CLASSES_X_FEATURES:
        raise ValueError(f"C·P = {num_classes}·{num_features} is above the limit "
                         f"{MAX_CLASSES_X_FEATURES}")


def check_epoch(epoch, previous: int | None, count: int) -> int:
    """The next epoch number: an integer in int64, after ``previous``, within MAX_EPOCHS."""
    if isinstance(epoch, (bool, np.bool_)):
        raise ValueError(f"epoch must be an integer, got {epoch!r}")
    try:
        value = int(epoch)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"epoch must be an integer, got {epoch!r}") from None
    if value != epoch:
        raise ValueError(f"epoch must be an integer, got {epoch!r}")
    if not EPOCH_MIN <= value <= EPOCH_MAX:
        raise ValueError(f"epoch {value} does not fit a 64-bit integer "
                         f"({EPOCH_MIN}..{EPOCH_MAX})")
    if previous is not None and value <= previous:
        raise ValueError(f"epoch {value} is not larger than the previous epoch {previous}")
    if count >= MAX_EPOCHS:
        raise ValueError(f"a run holds at most {MAX_EPOCHS} epochs")
    return value
