"""Row updates of (C, P) arrays without a second array of that size.

NumPy, PyTorch and CuPy arrays are updated in place (integer-array ``__setitem__``); other
array-API arrays (which need not support it) get a new array built with ``take``/``where``.
Used by the accumulators for vocabulary-sized C, where one extra (C, P) float64 array is
hundreds of MB (docs/PERFORMANCE.md, "Recording statistics").
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, device, is_cupy_array, is_numpy_array, is_torch_array


def _in_place(a) -> bool:
    return is_numpy_array(a) or is_torch_array(a) or is_cupy_array(a)


def _index(a, rows: np.ndarray):
    return rows if is_numpy_array(a) else array_namespace(a).asarray(rows, device=device(a))


def set_rows(target, rows: np.ndarray, values):
    """``target`` with its rows ``rows`` (host int64, distinct) replaced by ``values``."""
    if _in_place(target):
        target[_index(target, rows)] = values
        return target
    xp, dev = array_namespace(target), device(target)
    lookup = np.zeros(int(target.shape[0]), dtype=np.int64)
    lookup[rows] = np.arange(rows.size)
    mask = np.zeros(int(target.shape[0]), dtype=bool)
    mask[rows] = True
    spread = xp.take(values, xp.asarray(lookup, device=dev), axis=0)
    return xp.where(xp.asarray(mask, device=dev)[:, None], spread, target)


def add_rows(target, rows: np.ndarray, values):
    """``target`` with ``values`` added to its rows ``rows`` (host int64, distinct)."""
    if _in_place(target):
        target[_index(target, rows)] += values
        return target
    xp = array_namespace(target)
    old = xp.take(target, xp.asarray(rows, device=device(target)), axis=0)
    return set_rows(target, rows, old + values)


def keep_rows(target, rows: np.ndarray, tile: int = 4096):
    """The rows ``rows`` (host int64, increasing) of ``target``; in place, a tile at a time,
    the result being a view of its first rows."""
    if not _in_place(target):
        xp = array_namespace(target)
        return xp.take(target, xp.asarray(rows, device=device(target)), axis=0)
    # rows[i] >= i: row i is overwritten only after its last read (rows increase).
    for i0 in range(0, rows.size, tile):
        src = rows[i0:i0 + tile]
        target[i0:i0 + src.size] = target[_index(target, src)]
    return target[:rows.size]
