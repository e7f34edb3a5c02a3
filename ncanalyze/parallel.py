"""Parallel map in order, over local worker processes or a dask.distributed cluster, and a
read-ahead thread.

:func:`ordered_map` runs a picklable function on every argument tuple and yields the results
in the order of the arguments, each as soon as it and all earlier ones are done. Nothing is
home-made beyond that: locally a :class:`concurrent.futures.ProcessPoolExecutor` (spawned
processes, one BLAS thread each) runs the tasks, across machines a dask.distributed
scheduler does (through its ``concurrent.futures`` executor), and both go through the same
loop. :func:`prefetch` iterates in a background thread a few items ahead, so that reading a
file overlaps with computing on what was read.

This module knows nothing of what the tasks compute.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

from . import scheduler
from .errors import BackendError, UsageError

#: Environment variables that keep each worker's BLAS to one thread (the workers already
#: use every core; nested BLAS threads would oversubscribe them).
_ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def ordered_map(fn: Callable[..., Any], args: Sequence[tuple], *, workers: int = 1,
                dask: str | None = None) -> Iterator[Any]:
    """Yield ``fn(*a)`` for every ``a`` in ``args``, in order.

    Parameters
    ----------
    fn : callable
        Importable by name (it is pickled to the workers).
    args : sequence of tuple
        Positional arguments of each call (picklable).
    workers : int
        Local processes; 1 runs the calls in this process, one after the other.
    dask : str, optional
        Address of a dask.distributed scheduler; takes precedence over ``workers``.

    Raises
    ------
    UsageError
        When dask.distributed is missing or the scheduler cannot be reached.

    Notes
    -----
    An exception raised by a call is re-raised here when its result is due; the calls not
    yet finished are then cancelled.
    """
    if dask is None and workers <= 1:
        for a in args:
            yield fn(*a)
        return
    context = _dask_executor(dask) if dask is not None else _process_executor(workers)
    with context as (executor, submitted):
        futures = [executor.submit(fn, *a) for a in args]
        submitted()
        try:
            for fut in futures:
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


@contextlib.contextmanager
def _process_executor(workers: int) -> Iterator[tuple[Executor, Callable[[], None]]]:
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    # Spawned children read these when they load NumPy; the parent's BLAS is unaffected. The
    # processes start on submit, so the parent's environment is restored once all are queued.
    os.environ.update({k: "1" for k in _ONE_THREAD})
    pool = ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool, lambda: _restore(saved)
    finally:
        _restore(saved)
        pool.shutdown(wait=True, cancel_futures=True)


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextlib.contextmanager
def _dask_executor(address: str) -> Iterator[tuple[Executor, Callable[[], None]]]:
    try:
        from distributed import Client
    except ImportError as exc:
        raise UsageError("--dask needs dask.distributed: pip install 'ncanalyze[dask]'") from exc
    scheduler.check_scheduler(address)  # bounded: a Client alone may wait without end
    try:
        client = Client(address, timeout=f"{scheduler.DASK_CONNECT_TIMEOUT}s",
                        set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - any failure of a scheduler that answered
        raise BackendError(f"--dask {address}: cannot connect to the scheduler ({exc})") \
            from exc
    try:
        executor = client.get_executor(pure=False)
        try:
            yield executor, lambda: None
        finally:
            executor.shutdown(wait=False)  # cancels what is still running
    finally:
        client.close()


def prefetch(iterable: Iterable, depth: int) -> Iterator:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead (errors re-raised).

    Abandoning the iterator early (the consumer raised, or it is garbage-collected) stops the
    thread at its next item.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterable:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put((False, exc))

    thread = threading.Thread(target=work, name="ncanalyze-reader", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = items.get()
            if not ok:
                thread.join()
                raise item
            if item is done:
                thread.join()
                return
            yield item
    finally:
        # Never join here: the reader may hold h5py's lock; it stops by itself at its next put.
        stop.set()
