"""Rows grouped by class: per-class row sums and labels renumbered over the classes present.

:func:`segment_sum` is the generic array-API sum (a one-hot product, or the library's
scatter-add for many classes); :func:`numpy_segment_sum64` and ``_numpy_segment_sum`` are its
NumPy twins (a dense one-hot product for few classes, a sparse one otherwise).
:func:`compact_labels` renumbers labels over the classes present, so that state of size
K × P replaces C × P when a vocabulary-sized C has few classes in the data.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import scatter_add_rows


def segment_sum(values, labels, num_classes: int):
    """Sum the rows of ``values`` per label.

    Parameters
    ----------
    values : array, shape (n_rows,) or (n_rows, n_cols)
    labels : integer array, shape (n_rows,)
        Values in ``0..num_classes-1``.
    num_classes : int

    Returns
    -------
    array, shape (num_classes,) or (num_classes, n_cols)
        In the dtype of ``values``; classes without rows get 0.
    """
    xp = array_namespace(values, labels)
    vector = values.ndim == 1
    if is_numpy_namespace(xp) and num_classes > 16:
        # Sparse one-hot: O(rows × cols) instead of the dense one-hot product's O(rows × C × cols).
        return xp.asarray(_numpy_segment_sum(np.asarray(values), np.asarray(labels),
                                              num_classes))
    if num_classes > 16:
        scattered = scatter_add_rows(values, labels, num_classes)  # O(rows·cols), not rows·C
        if scattered is not None:
            return scattered
    classes = xp.arange(num_classes, device=device(labels))
    onehot = xp.astype(labels[:, None] == classes[None, :], values.dtype)
    if vector:
        return xp.matmul(onehot.T, values[:, None])[:, 0]
    return xp.matmul(onehot.T, values)


def compact_labels(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The classes present in ``labels`` and the labels renumbered ``0..K-1`` over them.

    Parameters
    ----------
    labels : ndarray, shape (n_samples,)
        Host integer labels in ``0..num_classes-1``.
    num_classes : int
        C.

    Returns
    -------
    classes : ndarray, shape (K,)
        int64, increasing: the class indices with at least one sample.
    compact : ndarray, shape (n_samples,)
        int64, ``classes[compact] == labels``.
    """
    counts = np.bincount(labels, minlength=num_classes)
    classes = np.flatnonzero(counts).astype(np.int64)
    if classes.size == num_classes:
        return classes, labels.astype(np.int64, copy=False)
    lookup = np.full(num_classes, -1, dtype=np.int64)
    lookup[classes] = np.arange(classes.size)
    return classes, lookup[labels]


def numpy_segment_sum64(z: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class row sums of one NumPy block, as float64, shape (C, P)."""
    if num_classes <= 16:
        # One-hot product: 2·rows·C·P flops, summed in the block's dtype (≤ BLOCK_ROWS terms).
        onehot = (labels[None, :] == np.arange(num_classes)[:, None]).astype(z.dtype)
        return (onehot @ z).astype(np.float64)
    return _numpy_segment_sum(z, labels, num_classes).astype(np.float64, copy=False)


def _numpy_segment_sum(v: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-label row sums as a sparse (C × rows) one-hot times ``v``, in ``v``'s dtype.

    O(rows × cols); ~20× faster than ``np.add.reduceat`` over sorted rows for C in the
    thousands (measured on 4096 × 2048 float32 rows, C = 1000).
    """
    from scipy import sparse

    n = v.shape[0]
    onehot = sparse.csr_matrix((np.ones(n, dtype=v.dtype), (labels, np.arange(n))),
                               shape=(num_classes, n))
    out = onehot @ v
    return np.asarray(out, dtype=v.dtype)
