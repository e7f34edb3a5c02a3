"""Caps on the options that size the work, checked before anything is computed
(docs/RELIABILITY.md §6, "Limits").

* ``--workers`` is capped at the cores this process may run on (with a warning): more
  processes than cores only add memory (each holds an epoch's working set) and time. Capped
  rather than refused, so that one command line serves machines of any size.
* ``--chunk-rows``: one read is ``rows × P × itemsize`` bytes of features (rows capped at the
  samples N); above :data:`MAX_READ_BYTES` it is refused, since the whole chunk is in memory
  at once, plus its copy on the device.
* ``--ridge`` and ``--weight-decay`` must be finite (NaN or ∞ would only produce NaN results).
"""

from __future__ import annotations

import math
import os

from .errors import UsageError

#: Largest read ``--chunk-rows`` may ask for, in bytes (the default reads are ~16 MiB).
MAX_READ_BYTES = 2**30


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_numbers(settings) -> None:
    """``--weight-decay`` (≥ 0) and ``--ridge`` (> 0) must be finite.

    Raises
    ------
    UsageError
    """
    wd = settings.weight_decay
    if wd is not None and not (math.isfinite(wd) and wd >= 0):
        raise UsageError(f"--weight-decay must be a finite number ≥ 0, got {wd!r}")
    ridge = settings.ridge
    if ridge is not None and not (math.isfinite(ridge) and ridge > 0):
        raise UsageError(f"--ridge must be a finite number > 0, got {ridge!r}")


def cap_workers(workers: int | None) -> tuple[int | None, str | None]:
    """``--workers`` capped at :func:`usable_cores`, and the warning when it was."""
    n = usable_cores()
    if workers is None or workers <= n:
        return workers, None
    return n, (f"--workers {workers}: this machine gives ncanalyze {n} core(s); using {n} "
               "(more processes would only add memory)")


def check_chunk_rows(chunk_rows: int | None, sources, itemsize: int) -> None:
    """Refuse a ``--chunk-rows`` whose reads of any of ``sources`` exceed
    :data:`MAX_READ_BYTES`.

    Parameters
    ----------
    chunk_rows : int or None
    sources : iterable of :class:`~ncanalyze.io.info.Source`
        The feature matrices that will be read.
    itemsize : int
        Bytes per stored feature value.
    """
    if chunk_rows is None:
        return
    for source in sources:
        rows = min(chunk_rows, source.num_samples)
        nbytes = rows * source.num_features * itemsize
        if nbytes > MAX_READ_BYTES:
            fit = max(1, MAX_READ_BYTES // max(1, source.num_features * itemsize))
            raise UsageError(
                f"--chunk-rows {chunk_rows}: reads of {rows} rows × {source.num_features} "
                f"features of {source.path} would take {nbytes / 2**30:.3g} GiB each (limit "
                f"{MAX_READ_BYTES / 2**30:g} GiB); use --chunk-rows ≤ {fit}, or leave it out")
