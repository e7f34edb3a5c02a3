"""Run-level checks, done once per run before any epoch is computed: options against what the
run holds, the absent-class rule, and the warnings said once per run (not once per epoch).

:func:`class_warnings` raises for what cannot be computed (``decompose`` alone without a
classifier, an absent class under ``--require-all-classes``); both functions return the
run-level warnings, which :class:`~ncanalyze.analysis.Analysis` collects in ``run_warnings``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .caps import cap_workers
from .core.metrics import etf_impossible_note
from .errors import InputError
from .io.protocol import RunReader
from .io.schema import Source, check_classes_present
from .settings import Settings

#: Said once per run when the decomposition is computed on a cross-entropy run.
CE_DECOMPOSE_NOTE = (
    "decompose: this run was trained with cross-entropy (loss attribute), but the "
    "decomposition is of the MSE loss against one-hot targets (Han et al.): `loss`, "
    "`loss_ls_perp` and `central_path_ratio` measure the CE classifier's MSE, which grows with "
    "its logit scale (large values, ratio near 1 are expected); `loss_ls`, `loss_nc1` and "
    "`loss_nc23` (those of the least-squares classifier on the same features) keep their "
    "meaning")

#: Names under which a run declares cross-entropy training (the ``loss`` attribute).
CE_NAMES = ("ce", "cross_entropy", "cross-entropy", "crossentropy")


def option_warnings(reader: RunReader, settings: Settings) -> list[str]:
    """The run-level warnings about options the run cannot honour (``settings.splits``
    already resolved by :func:`~ncanalyze.settings.resolve_splits`)."""
    s, info = settings, reader.info
    warnings: list[str] = []
    if s.layers and not info.layers:
        warnings.append("--layers: the file has no /layers group")
    if "decompose" in s.quantities and not info.has_weight and s.quantities != ("decompose",):
        warnings.append("decompose skipped: the file has no /weight")
    if "decompose" in s.quantities and info.has_weight and (info.loss or "").lower() in CE_NAMES:
        warnings.append(CE_DECOMPOSE_NOTE)
    if s.dask is None and cap_workers(s.workers)[1]:
        warnings.append(cap_workers(s.workers)[1])
    return warnings


def class_warnings(reader: RunReader, settings: Settings,
                   classes_of: Callable[[Source], np.ndarray]) -> list[str]:
    """The absent-class warnings of the training split and every ``--split``, and the facts
    of a run with more classes than feature dimensions (C − 1 > P), said once here rather
    than at every epoch.

    Parameters
    ----------
    classes_of : callable
        ``classes_of(source)``: the classes with samples in ``source`` (host int64).

    Raises
    ------
    InputError
        ``decompose`` alone on a run without a classifier; an absent class with
        ``require_all_classes``.
    """
    s, info = settings, reader.info
    if "decompose" in s.quantities and not info.has_weight and s.quantities == ("decompose",):
        raise InputError("decompose needs the classifier, but /weight is missing",
                         file=info.path, dataset="/weight")
    warnings = []
    for source in [reader.train] + [info.splits[name] for name in s.splits]:
        note = absent_classes(classes_of(source), info.num_classes,
                              require_all=s.require_all_classes, file=info.path,
                              dataset=source.labels_path or f"{source.path}/counts")
        if note:
            warnings.append(note)
    present = classes_of(reader.train).size
    if "metrics" in s.quantities and present - 1 > info.num_features:
        warnings.append(etf_impossible_note(present, info.num_features))
    if "snr" in s.quantities and present - 1 > info.num_features:
        warnings.append(
            f"SNR: M̄ has rank ≤ P = {info.num_features} < C − 1 = {present - 1}, so "
            f"only the {info.num_features} largest singular values ω_j can be nonzero; "
            "they are the ones reported (snr_singular_values, snr_min, snr_ratio), the "
            f"other {present - 1 - info.num_features} are 0 by construction")
    return warnings


def absent_classes(classes: np.ndarray, num_classes: int, *, require_all: bool, file,
                   dataset: str) -> str | None:
    """The one rule for classes without samples (docs/METRICS.md, "Absent classes").

    Parameters
    ----------
    classes : ndarray
        The classes that have samples.
    num_classes : int
        C.
    require_all : bool
        ``--require-all-classes``: absence is an input error.

    Returns
    -------
    str or None
        The run-level warning counting the absent classes, ``None`` when all are present.

    Raises
    ------
    InputError
        When ``require_all`` and a class has no samples.
    """
    missing = num_classes - int(classes.size)
    if missing == 0:
        return None
    if require_all:
        try:
            check_classes_present(classes, num_classes)
        except ValueError as exc:
            raise InputError(f"{exc} (--require-all-classes)", file=file,
                             dataset=dataset) from None
    return (f"{dataset}: {missing} of {num_classes} classes have no samples; they are left out "
            f"of every class-mean key (C = {classes.size} there, see classes_present), and "
            "accuracy, NCC and NC4 still range over all classifier rows")
