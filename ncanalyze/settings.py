"""What to compute and how: :class:`Settings` (the common options of every command), the
per-epoch result record, and the ``--epochs`` selection."""

from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .caps import check_numbers
from .core.stats import GLOBAL_MEANS
from .errors import UsageError

QUANTITIES = ("metrics", "decompose", "snr")


@dataclass
class Settings:
    """What to compute and how (the common options of every command, see docs/TUTORIAL.md)."""

    quantities: tuple[str, ...] = ("metrics",)
    epochs: str | None = None
    backend: str = "auto"
    dtype: str = "float64"
    global_mean: str = "samples"
    center_weights: bool = False
    weight_decay: float | None = None
    ridge: float | None = None
    rtol: float | None = None
    #: The ``/splits/<name>`` whose metrics are computed: None (the default) every split the
    #: file holds, ``()`` none; see :func:`resolve_splits`.
    splits: tuple[str, ...] | None = None
    layers: bool = False
    chunk_rows: int | None = None
    allow_external: bool = False
    #: Processes computing whole epochs at once (None: all local cores when several large
    #: epochs are selected, see :func:`ncanalyze.tasks.local_workers`; 1: in this process).
    workers: int | None = None
    #: Address of a dask.distributed scheduler: epochs are computed on its workers.
    dask: str | None = None
    #: Make a class without samples an input error instead of a run-level warning.
    require_all_classes: bool = False
    #: Bound on the working memory in bytes (tiles are sized from it); None: a fraction of
    #: the available memory (see :mod:`ncanalyze.memory`).
    memory_limit: int | None = None
    #: With workers or dask: rows of one epoch per task (the epoch's rows are split over the
    #: workers and the partial statistics merged). None: epochs above ``tasks.TASK_BYTES`` of
    #: features are split into tasks of about that size, smaller ones are one task each.
    task_rows: int | None = None

    def validate(self) -> None:
        bad = [q for q in self.quantities if q not in QUANTITIES]
        if bad:
            raise UsageError(f"unknown quantity {bad[0]!r}; choose from {', '.join(QUANTITIES)}")
        if self.dtype not in ("float64", "float32"):
            raise UsageError(f"--dtype must be float64 or float32, got {self.dtype!r}")
        if self.global_mean not in GLOBAL_MEANS:
            raise UsageError(f"--global-mean must be one of {', '.join(GLOBAL_MEANS)}")
        check_numbers(self)  # finite --weight-decay and --ridge
        if self.chunk_rows is not None and self.chunk_rows < 1:
            raise UsageError("--chunk-rows must be ≥ 1")
        if self.workers is not None and self.workers < 1:
            raise UsageError("--workers must be ≥ 1")
        if self.task_rows is not None and self.task_rows < 1:
            raise UsageError("task_rows must be ≥ 1")
        if self.memory_limit is not None and self.memory_limit < 1:
            raise UsageError("--memory-limit must be a positive number of bytes")

    def public(self) -> dict[str, Any]:
        """The settings as they appear in JSON output."""
        d = asdict(self)
        d["quantities"] = list(self.quantities)
        d["splits"] = None if self.splits is None else list(self.splits)
        return d


#: ``--split none``: compute no split.
NO_SPLITS = "none"


def resolve_splits(splits: tuple[str, ...] | None, available) -> tuple[str, ...]:
    """The split names to compute: every one of ``available`` when ``splits`` is None, none
    for ``("none",)``, else ``splits`` (each must be in ``available``).

    Raises
    ------
    UsageError
        A name the file has no split of.
    """
    if splits is None:
        return tuple(available)
    if tuple(splits) == (NO_SPLITS,) and NO_SPLITS not in available:
        return ()
    for name in splits:
        if name not in available:
            have = ", ".join(available) or "none"
            raise UsageError(f"--split {name}: the file has no /splits/{name} (splits: {have})")
    return tuple(dict.fromkeys(splits))


@dataclass
class EpochResult:
    """Results of one epoch: ``values`` holds the keys in output order (nested for layers/splits)."""

    epoch: int
    values: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


_RANGE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*$", re.ASCII)
#: One epoch number: ASCII digits only (``int()`` would also take "1_0" and "١").
_NUMBER = re.compile(r"-?\d+", re.ASCII)


def select_epochs(spec: str | None, available: np.ndarray) -> list[int]:
    """Epoch numbers chosen by ``--epochs``.

    Parameters
    ----------
    spec : str or None
        Comma list of epoch numbers, inclusive ranges ``a:b`` (either end may be omitted) and
        ``last``; ``None`` or ``"all"`` selects every complete epoch.
    available : ndarray, shape (n_epochs,)

    Raises
    ------
    UsageError
        For a malformed list, an epoch not in the file or an empty selection.
    """
    # ``available`` is strictly increasing and non-empty (the reader guarantees both): ranges
    # are found by bisection and single epochs in a set, so a long list parses in linear time.
    avail = [int(e) for e in available]
    known = set(avail)
    if spec is None or spec.strip().lower() in ("", "all"):
        return avail
    chosen: set[int] = set()
    for part in spec.split(","):
        token = part.strip().lower()
        if not token:
            continue
        if token == "last":
            chosen.add(avail[-1])
            continue
        m = _RANGE.match(token)
        if m:
            lo = int(m.group(1)) if m.group(1) else avail[0]
            hi = int(m.group(2)) if m.group(2) else avail[-1]
            first, stop = bisect.bisect_left(avail, lo), bisect.bisect_right(avail, hi)
            if first >= stop:
                raise UsageError(f"--epochs {token}: no epoch of the file lies in {lo}..{hi}")
            chosen.update(avail[first:stop])
            continue
        if not _NUMBER.fullmatch(token):
            raise UsageError(f"--epochs: cannot parse {part!r} (use e.g. 1,5,10:20,last)")
        e = int(token)
        if e not in known:
            raise UsageError(f"--epochs: epoch {e} is not in the file "
                             f"(first {avail[0]}, last {avail[-1]}, {len(avail)} epochs)")
        chosen.add(e)
    if not chosen:
        raise UsageError("--epochs selects no epoch")
    return sorted(chosen)
