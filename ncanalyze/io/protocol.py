"""The input format as an interface: what the analysis reads from a run, whatever stores it.

The analysis (:mod:`ncanalyze.analysis` and the per-epoch passes of :mod:`ncanalyze.passes`)
reads a run only through a :class:`RunReader`; :func:`open_reader` picks the implementation
for a path and :func:`writer_active` says whether a writer still appends to it (``--follow``).
Everything format-specific stays behind these three names, inside ``io/``.

One implementation today: the HDF5 run file of docs/FORMAT.md (:class:`~ncanalyze.io.reader.Run`;
its liveness is the superblock flag of :func:`~ncanalyze.io.h5.writer_active`). A run stores,
per epoch and source (the training features, a ``--layers`` layer, a ``--split``), either

* **rows** (``kind == "features"``): the feature matrix, read in row chunks
  (:meth:`RunReader.iter_chunks`) and reduced by the analysis to class statistics and decision
  counts; or
* **statistics** (``kind == "statistics"``, docs/FORMAT.md "Statistics runs"): the reductions
  themselves, written during training without the features: :meth:`RunReader.statistics`
  returns a :class:`~ncanalyze.io.statistics.StoredStatistics` (plain NumPy: ``io/`` imports
  nothing of ``core/``), which :mod:`ncanalyze.stored` turns into the
  :class:`~ncanalyze.core.stats.ClassStats` and
  :class:`~ncanalyze.core.decisions.DecisionCounts` the two passes would have produced.

Adding an input format (docs/ARCHITECTURE.md, "Adding an input format"): a class with the
members of :class:`RunReader` in a new ``io/`` module, and one :class:`InputFormat` entry in
:data:`FORMATS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, runtime_checkable

import numpy as np

from .info import RunInfo, Source
from .statistics import StoredStatistics


@runtime_checkable
class RunReader(Protocol):
    """What the analysis needs from a run, opened read-only (a context manager).

    Attributes
    ----------
    path : str
        The run, as named in messages.
    info : RunInfo
        The header: C, N, P, the epoch numbers, weight/bias presence, weight decay, loss,
        scalar names, ``steps_per_epoch``, the layers and splits as :class:`Source`.
    train : Source
        The training features.
    """

    path: str
    info: RunInfo
    #: Bytes the reader's decompression caches may hold (0 for uncompressed data); the
    #: memory plan counts them.
    decode_bytes: int

    @property
    def kind(self) -> str:
        """``"features"`` (rows) or ``"statistics"`` (stored reductions)."""

    @property
    def train(self) -> Source: ...

    def labels(self, source: Source | None = None) -> np.ndarray:
        """Labels of ``source`` (default: training), int64, shape ``(n,)`` (a features run;
        a statistics run may store none)."""

    def class_counts(self, source: Source | None = None) -> np.ndarray:
        """Samples per class of ``source``, shape ``(C,)`` (0: the class has no samples)."""

    def weight(self, epoch: int) -> np.ndarray | None:
        """W of ``epoch``, shape ``(C, P)``, finite, or None without a classifier."""

    def bias(self, epoch: int) -> np.ndarray | None:
        """b of ``epoch``, shape ``(C,)``, finite, or None."""

    def scalars(self, epoch: int) -> dict[str, float | None]:
        """The per-epoch scalars of ``epoch`` (non-finite ones as None)."""

    def chunk_rows(self, source: Source | None = None, chunk_bytes: int = ...) -> int:
        """Rows per read of about ``chunk_bytes`` (whole storage chunks where possible)."""

    def iter_chunks(self, epoch: int, source: Source | None = None, *, rows: int | None = None,
                    check_finite: bool = True, start: int = 0, stop: int | None = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Features and labels of rows ``start:stop`` of ``epoch`` in chunks of ``rows``;
        with ``check_finite`` a NaN/Inf row raises an InputError naming the epoch."""

    def statistics(self, epoch: int, source: Source | None = None) -> StoredStatistics:
        """The stored reductions of ``source`` at ``epoch`` (a statistics run), checked as
        untrusted input."""

    def close(self) -> None: ...

    def __enter__(self) -> "RunReader": ...

    def __exit__(self, *exc) -> None: ...


@dataclass(frozen=True)
class InputFormat:
    """One input format: how to recognise, open and watch it.

    Attributes
    ----------
    name : str
    claims : callable
        ``claims(path) -> bool`` from a cheap look at the file (its first bytes).
    open : callable
        ``open(path, *, allow_external) -> RunReader``; raises InputError for a bad file.
    writer_active : callable
        ``writer_active(path) -> bool``: a writer still appends to ``path`` (``--follow``).
    """

    name: str
    claims: Callable[[str], bool]
    open: Callable[..., RunReader]
    writer_active: Callable[[str], bool]


def _hdf5() -> InputFormat:
    from .h5 import is_hdf5, writer_active as h5_writer_active
    from .reader import Run

    return InputFormat("hdf5", is_hdf5, Run, h5_writer_active)


#: The formats in the order they are tried; the last one opens whatever no other claims
#: (so its errors — "not an HDF5 file", a missing file — are the ones a user sees).
FORMATS: list[Callable[[], InputFormat]] = [_hdf5]


def input_format(path) -> InputFormat:
    """The format that reads ``path`` (the last of :data:`FORMATS` when none claims it)."""
    path = os.fspath(path)
    formats = [make() for make in FORMATS]
    for fmt in formats[:-1]:
        if fmt.claims(path):
            return fmt
    return formats[-1]


def open_reader(path, *, allow_external: bool = False) -> RunReader:
    """Open the run at ``path`` read-only with the reader of its format (no bulk data read).

    Raises
    ------
    InputError
        The file is missing, of no known format, damaged or not a valid run.
    """
    return input_format(path).open(os.fspath(path), allow_external=allow_external)


def writer_active(path) -> bool:
    """Whether a writer still has the run at ``path`` open (False when closed or unreadable)."""
    return input_format(path).writer_active(os.fspath(path))
