"""Epoch-level parallelism: local worker processes and dask.distributed clusters.

Epochs are independent, so a run with many large epochs is spread over workers that each
open the file themselves and compute whole epochs (:func:`compute_epochs`); results come back
as plain data and are yielded in epoch order, each as soon as it and all earlier epochs are
done. Nothing is home-made beyond that: locally a :class:`concurrent.futures.
ProcessPoolExecutor` runs the tasks, across machines a dask.distributed scheduler does
(``--dask ADDRESS``; the file path must be readable on every worker, e.g. a shared
filesystem).

Every worker runs the same code as the serial path (``Analysis.compute_epoch``) on the same
file with the same settings, so results are identical to a local run.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any, Iterator

from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from .analysis import Analysis, EpochResult, Settings

#: Automatic local parallelism starts only when the selected epochs hold at least this many
#: bytes of features: below it, starting processes (≈1–2 s each) costs more than it saves.
AUTO_MIN_BYTES = 512 * 2**20
#: Environment variables that keep each worker's BLAS to one thread (the workers already
#: use every core; nested BLAS threads would oversubscribe them).
_ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def compute_epochs(path: str, settings: "Settings", epochs: list[int]) -> list[dict[str, Any]]:
    """Open ``path`` and compute ``epochs`` with ``settings`` (run on a worker).

    Parameters
    ----------
    path : str
        Run file, readable where this function runs.
    settings : Settings
        As for :class:`~ncanalyze.analysis.Analysis`; ``epochs``, ``workers`` and ``dask``
        are overridden.
    epochs : list of int
        Epoch numbers.

    Returns
    -------
    list of dict
        ``{"epoch", "values", "warnings"}`` per epoch, in the order of ``epochs`` (plain,
        picklable data).
    """
    from .analysis import Analysis

    local = dataclasses.replace(settings, epochs=",".join(str(e) for e in epochs), workers=1,
                                dask=None)
    with Analysis(path, local) as analysis:
        out = []
        for e in epochs:
            r = analysis.compute_epoch(e)
            out.append({"epoch": r.epoch, "values": r.values, "warnings": r.warnings})
        return out


def local_workers(analysis: "Analysis") -> int:
    """Processes to use for ``analysis`` on this machine (1 means: compute in-process)."""
    s = analysis.settings
    n_epochs = len(analysis.epochs)
    if s.workers is not None:
        return max(1, min(s.workers, n_epochs))
    if n_epochs < 2 or analysis.backend.name != "numpy":
        return 1
    info = analysis.run.info
    per_epoch = info.num_samples * info.num_features * info.features_dtype.itemsize
    if per_epoch * n_epochs < AUTO_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, n_epochs))


def iter_epochs(analysis: "Analysis") -> Iterator["EpochResult"]:
    """Yield the results of ``analysis``'s epochs in order, serially or on workers."""
    s = analysis.settings
    if s.dask:
        yield from _iter_dask(analysis, s.dask)
        return
    workers = local_workers(analysis)
    if workers <= 1:
        for epoch in analysis.epochs:
            yield analysis.compute_epoch(epoch)
        return
    yield from _iter_processes(analysis, workers)


def _result(d: dict[str, Any]) -> "EpochResult":
    from .analysis import EpochResult

    return EpochResult(d["epoch"], d["values"], d["warnings"])


def _iter_processes(analysis: "Analysis", workers: int) -> Iterator["EpochResult"]:
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    # Spawned children read these when they load NumPy; the parent's BLAS is unaffected.
    os.environ.update({k: "1" for k in _ONE_THREAD})
    pool = ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(compute_epochs, analysis.run.path, analysis.settings, [e])
                   for e in analysis.epochs]
        # Processes start on submit; restore the parent's environment afterwards.
        _restore(saved)
        saved = None
        for fut in futures:
            for d in fut.result():
                yield _result(d)
    finally:
        if saved is not None:
            _restore(saved)
        pool.shutdown(wait=True, cancel_futures=True)


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _iter_dask(analysis: "Analysis", address: str) -> Iterator["EpochResult"]:
    try:
        from distributed import Client
    except ImportError as exc:
        raise UsageError("--dask needs dask.distributed: pip install 'ncanalyze[dask]'") from exc
    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"--dask {address}: cannot connect to the scheduler ({exc})") from exc
    path = os.path.abspath(analysis.run.path)
    try:
        futures = [client.submit(compute_epochs, path, analysis.settings, [e], pure=False,
                                 key=f"ncanalyze-epoch-{e}-{os.getpid()}-{id(analysis)}")
                   for e in analysis.epochs]
        try:
            for fut in futures:
                for d in fut.result():
                    yield _result(d)
        finally:
            client.cancel(futures)
    finally:
        client.close()
