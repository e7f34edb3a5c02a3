"""Streaming accumulation of :class:`~ncanalyze.core.stats.ClassStats` over row chunks, in float64.

:class:`StatsAccumulator` takes the rows of one epoch chunk by chunk (any chunk sizes) and
regroups them into fixed blocks (:func:`block_rows`), so the result does not depend on how a
file is read; :func:`class_stats` runs it over an in-memory feature matrix.

Numerics. Σ_W is never formed as a difference of large uncentred sums. Each row is shifted by
a per-class reference point ``ref_c`` — the mean of class ``c``'s rows in the first block that
contains the class (among its first ``REF_ROWS`` rows when they hold it) — before any product
is taken:

    z_i = h_i − ref_{y_i},    d_c = (1/n_c) Σ_{y_i=c} z_i,    μ_c = ref_c + d_c
    N Σ_W = Σ_i z_i z_iᵀ − Σ_c n_c d_c d_cᵀ

``ref_c`` is within sampling noise of μ_c, so the entries of ``z`` are of the size of the
within-class spread and the correction term is small: the float64 result keeps its relative
accuracy down to deep collapse (NC1 ≈ 1e-8 and below), unlike ``Σ h hᵀ/N − μ μᵀ``.

Length: above the ~350-line guide; the accumulator's generic block and its NumPy twin share
one state (reference points, float64 totals, the pending block) and are one class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import detach, to_numpy
from .precision import coarser, precision_name, values_precision
from .rows import add_rows, keep_rows, set_rows
from .segments import compact_labels, numpy_segment_sum64, segment_sum
from .stats import ClassStats

#: Most rows per accumulation block. The statistics are computed block by block over fixed
#: row ranges ``[k·B, (k+1)·B)`` whatever the size of the chunks handed to :meth:`update`, so
#: the result does not depend on how a file is read (bit for bit). Large blocks keep BLAS
#: calls few and large; the float64 add of each block's P×P product costs ~1/B of it.
BLOCK_ROWS = 16384
#: Rows of a block averaged for the reference points of the classes it is the first to hold.
REF_ROWS = 2048
#: Size of one block in float32 (wide features get fewer rows, narrow ones at most BLOCK_ROWS).
BLOCK_BYTES = 32 * 2**20
#: Size of one row tile of the class-mean corrections in :meth:`StatsAccumulator.finalize`.
FINAL_TILE_BYTES = 16 * 2**20


def block_rows(num_features: int) -> int:
    """Rows per accumulation block for ``num_features`` columns (a function of P only)."""
    rows = BLOCK_BYTES // (4 * max(1, num_features))
    return int(max(256, min(BLOCK_ROWS, 1 << (int(rows).bit_length() - 1))))


class StatsAccumulator:
    """Accumulate :class:`ClassStats` over row chunks of one epoch.

    Arithmetic (see docs/PERFORMANCE.md). Rows are regrouped into fixed blocks of
    :func:`block_rows` rows. In each block, every row is shifted by its class reference point
    (``z = h − ref_y``), then the block's ``zᵀz`` (one symmetric BLAS product), per-class
    ``Σ z`` and ``Σ ‖z‖²`` are formed in ``compute_dtype`` and added to float64 totals. With
    ``compute_dtype="float32"`` the reference points are rounded to float32 once, so
    ``h − ref`` of float32 features is exact wherever the two agree to a factor of two
    (Sterbenz) — the usual case near collapse — and otherwise rounded once; the product then
    carries float32 rounding of a centred, small quantity, which keeps every metric
    within ~1e-7 relative of the float64 computation (tests/core/test_precision.py).

    Memory (vocabulary-sized C): the state is the float64 per-class sums and the reference
    points — float64 only for float64 features with float64 products, float32 otherwise
    (``h − ref`` of two float32 numbers is exact in float64) — so at most 2·C·P·8 bytes plus
    P² and one block; per-block class sums are formed over the classes present in the block,
    and :meth:`finalize` works in place.

    Parameters
    ----------
    num_classes, num_features : int
    xp : namespace
        Array namespace of the chunks (NumPy, CuPy, array-api-strict, …).
    compute_dtype : {"float64", "float32"}
        Precision of the per-block centring and products; block results are always summed
        in float64.
    keep_row_norms : bool
        Keep an upper bound on every row's ‖h‖ (NumPy only; N float64 values), a by-product
        of the per-row ‖z‖² of the CDNV: :meth:`row_norm_bounds`.
    classes : ndarray, shape (num_classes,), optional
        Class index of each label value when the labels are renumbered over the classes
        present (:func:`compact_labels`; memory O(K·P) instead of O(C·P)).
    total_classes : int, optional
        C of the run when the labels are renumbered.
    device : object, optional
        Device of the chunks (default: the namespace's default device).
    regroup : bool
        Regroup rows into full blocks (results independent of the chunking); False: each
        chunk is its own block(s), so nothing but the caller's chunk is held (the recorder:
        memory of one batch, not one block).
    """

    def __init__(self, num_classes: int, num_features: int, xp, compute_dtype: str = "float64",
                 keep_row_norms: bool = False, classes: np.ndarray | None = None,
                 total_classes: int | None = None, device=None, regroup: bool = True):
        if compute_dtype not in ("float64", "float32"):
            raise ValueError(f"compute_dtype must be float64 or float32, got {compute_dtype!r}")
        self.xp = xp
        self.device = device
        self.regroup = regroup
        self.num_classes = num_classes
        self.classes = classes
        self.total_classes = total_classes
        self.num_features = num_features
        self.compute_dtype = getattr(xp, compute_dtype)
        self.block_rows = block_rows(num_features)
        self._numpy = is_numpy_namespace(xp)
        f64 = xp.float64
        # The reference points are stored once: float64 only for float64 features with
        # float64 products, float32 otherwise (the reference only has to lie near μ_c, and
        # h − ref of float32 numbers is exact in float64). Allocated at the first block, when
        # the features' dtype is known; the float64 view is derived (:attr:`_ref`).
        self._ref_c = None
        self._ref_norms: np.ndarray | None = None
        self._has_ref = np.zeros(num_classes, dtype=bool)
        self._counts = np.zeros(num_classes, dtype=np.int64)
        self._zsum = xp.zeros((num_classes, num_features), dtype=f64, device=device)
        self._zsq = xp.zeros((num_classes,), dtype=f64, device=device)
        self._scatter = xp.zeros((num_features, num_features), dtype=f64, device=device)
        # Rows waiting for a full block, copied into one block-sized buffer (the caller may
        # reuse its arrays; no second copy when the block is flushed).
        self._pending: tuple[Any, Any, np.ndarray] | None = None
        self._pending_rows = 0
        #: Coarsest dtype of the chunks (ClassStats.precision; the callers holding the host
        #: rows refine it with :func:`~ncanalyze.core.precision.values_precision`). The
        #: compute dtype does not enter: float32 products round z = h − ref, not h.
        self.precision = "float64"
        self._buffer: np.ndarray | None = None
        # ‖z‖² → ‖h − ref‖ bound: z = fl(h − ref) has relative error ≤ u per entry (≤ 2u for
        # float64 features rounded to float32), the computed Σ z² ≥ (1 − γ_P)‖z‖² in any
        # summation order; u = 2⁻²⁴ covers float32 and float64 products.
        u, g = 2.0**-24, (num_features + 1) * 2.0**-24
        self._norms: list[np.ndarray] | None = (
            [] if keep_row_norms and self._numpy and g < 0.25 else None)
        self._sq_factor = 1.0 / (1.0 - g / (1.0 - g))
        self._z_factor = (1.0 + 1e-12) / (1.0 - 2.0 * u)
        self._sq_floor = num_features * 2.0**-126  # squares that underflowed

    def update(self, features, labels, labels_host: np.ndarray | None = None) -> None:
        """Add one chunk (any number of rows; consecutive chunks are consecutive rows).

        Parameters
        ----------
        features : array, shape (n_rows, n_features)
            Any floating dtype.
        labels : integer array, shape (n_rows,)
            On the same device as ``features``.
        labels_host : ndarray, shape (n_rows,), optional
            The same labels as NumPy (saves a device-to-host copy).
        """
        if labels_host is None:
            labels_host = to_numpy(labels)
        self.precision = coarser(self.precision, precision_name(features.dtype))
        n = int(features.shape[0])
        b = self.block_rows
        start = 0
        if not self.regroup:
            for start in range(0, n, b):
                stop = min(n, start + b)
                self._block(features[start:stop, ...], labels[start:stop],
                            labels_host[start:stop])
            return
        if self._pending_rows:
            take = min(n, b - self._pending_rows)
            self._stash(features[:take, ...], labels[:take], labels_host[:take])
            start = take
            if self._pending_rows < b:
                return
            self._flush()
        while n - start >= b:
            stop = start + b
            self._block(features[start:stop, ...], labels[start:stop], labels_host[start:stop])
            start = stop
        if start < n:
            self._stash(features[start:, ...], labels[start:], labels_host[start:])

    def _stash(self, features, labels, labels_host: np.ndarray) -> None:
        """Copy rows to the pending block buffer (allocated once, reused)."""
        xp, r, k = self.xp, self._pending_rows, int(features.shape[0])
        if self._pending is None or self._pending[0].dtype != features.dtype:
            self._flush()
            r = 0
            shape = (self.block_rows, self.num_features)
            self._pending = (xp.zeros(shape, dtype=features.dtype, device=self.device),
                             xp.zeros((self.block_rows,), dtype=labels.dtype,
                                      device=self.device),
                             np.zeros(self.block_rows, dtype=np.int64))
        x, y, yh = self._pending
        x[r:r + k, ...] = features
        y[r:r + k] = labels
        yh[r:r + k] = labels_host
        self._pending_rows = r + k

    def _flush(self) -> None:
        r = self._pending_rows
        if not r:
            return
        x, y, yh = self._pending
        self._pending_rows = 0
        self._block(x[:r, ...], y[:r], yh[:r])

    def _block(self, features, labels, labels_host: np.ndarray) -> None:
        """Add one block of rows (the unit of the fixed row grouping)."""
        xp = self.xp
        cdt = self.compute_dtype
        f64 = xp.float64
        if self._ref_c is None:
            wide = cdt == f64 and features.dtype == f64
            self._ref_c = xp.zeros((self.num_classes, self.num_features),
                                   dtype=f64 if wide else xp.float32, device=self.device)
        counts = np.bincount(labels_host, minlength=self.num_classes)
        new = (counts > 0) & ~self._has_ref
        if new.any():
            self._new_references(features, labels_host, counts, np.flatnonzero(new))
        # Classes present in this block: with many classes (a vocabulary) the per-class sums
        # are formed and added for these only, never as a (C, P) temporary.
        present = np.flatnonzero(counts)
        sparse = present.size * 2 < self.num_classes and self.num_classes > 16
        if self._numpy:
            self._numpy_block(np.asarray(features), labels_host, present if sparse else None)
        else:
            if cdt == f64 or features.dtype == f64:
                # float64 centring; rounded to the compute dtype afterwards (once) if needed.
                z = xp.astype(features, f64, copy=False) - xp.astype(
                    xp.take(self._ref_c, labels, axis=0), f64)
                if cdt != f64:
                    z = xp.astype(z, cdt)
            else:  # float16/float32 features, float32 products: centre in float32 (see above)
                z = xp.astype(features, cdt, copy=False) - xp.take(self._ref_c, labels, axis=0)
            if sparse:
                compact = xp.asarray(np.searchsorted(present, labels_host), device=self.device)
                sums = xp.astype(segment_sum(z, compact, int(present.size)), f64)
                self._zsum = add_rows(self._zsum, present, sums)
            else:
                self._zsum = self._zsum + xp.astype(segment_sum(z, labels, self.num_classes),
                                                    f64)
            z64sq = xp.astype(xp.sum(z * z, axis=1), f64)
            self._zsq = self._zsq + segment_sum(z64sq, labels, self.num_classes)
            self._scatter = self._scatter + xp.astype(xp.matmul(z.T, z), f64)
        self._counts += counts

    def _new_references(self, features, labels_host: np.ndarray, counts: np.ndarray,
                        new: np.ndarray) -> None:
        """Set the reference points of the classes ``new`` (first seen in this block).

        The reference only has to lie near μ_c (any value gives exact statistics), so the
        block means are summed in the features' own precision when it is float32/64. Only
        the first REF_ROWS rows of the block are averaged when every new class is among them
        (a mean of ~REF_ROWS/C rows is as good a reference as any). Only the rows and
        classes concerned are touched: nothing of size C × P is created.
        """
        xp, cdt, f64 = self.xp, self.compute_dtype, self.xp.float64
        head = min(int(features.shape[0]), REF_ROWS)
        head_counts = np.bincount(labels_host[:head], minlength=self.num_classes)
        if np.all(head_counts[new] > 0):
            xs, ys, counts_ref = features[:head, ...], labels_host[:head], head_counts
        else:
            xs, ys, counts_ref = features, labels_host, counts
        lookup = np.full(self.num_classes, -1, dtype=np.int64)
        lookup[new] = np.arange(new.size)
        rows = np.flatnonzero(lookup[ys] >= 0)
        sums = None
        for r0 in range(0, rows.size, REF_ROWS):  # a few rows at a time: no block-sized copy
            part = rows[r0:r0 + REF_ROWS]
            xt = xp.take(xs, xp.asarray(part, device=self.device), axis=0)
            if cdt == f64:
                # float64 products (the default, and the retry after a float32 overflow):
                # sum in float64 too, so features near the float32 limit do not overflow.
                xt = xp.astype(xt, f64, copy=False)
            elif xt.dtype not in (xp.float32, f64):
                xt = xp.astype(xt, xp.float32)
            compact = xp.asarray(lookup[ys[part]], device=self.device)
            t = xp.astype(segment_sum(xt, compact, int(new.size)), f64)
            sums = t if sums is None else sums + t
        n = xp.asarray(counts_ref[new].astype(np.float64), device=self.device)
        self._ref_c = set_rows(self._ref_c, new, xp.astype(sums / n[:, None],
                                                          self._ref_c.dtype))
        self._has_ref[new] = True
        if self._norms is not None:
            if self._ref_norms is None:
                self._ref_norms = np.zeros(self.num_classes)
            ref64 = np.asarray(self._ref_c[new], dtype=np.float64)
            self._ref_norms[new] = np.sqrt(np.einsum("ij,ij->i", ref64, ref64)) * (1.0 + 1e-12)

    @property
    def _ref(self):
        """The reference points in float64, shape (n_classes, n_features)."""
        xp = self.xp
        if self._ref_c is None:  # no row was added
            return xp.zeros((self.num_classes, self.num_features), dtype=xp.float64,
                            device=self.device)
        return self._ref_c if self._ref_c.dtype == xp.float64 else xp.astype(self._ref_c,
                                                                              xp.float64)

    def _numpy_block(self, x: np.ndarray, labels: np.ndarray,
                     present: np.ndarray | None = None) -> None:
        """The NumPy block: one symmetric product gives Σ zzᵀ and, for few classes, Σ_c z.

        For C ≤ P/16 the centred rows are written next to their one-hot labels,
        ``a = [z | onehot]`` (rows × (P+C)), and ``aᵀa`` (BLAS syrk: NumPy detects the
        transposed operand) holds ``zᵀz`` and the per-class sums ``onehotᵀz`` at a cost of
        (1 + C/P)² products; otherwise the class sums come from a sparse one-hot product.
        """
        c, p = self.num_classes, self.num_features
        cdt = np.dtype(self.compute_dtype)
        ref = np.asarray(self._ref_c)
        fused = c * 16 <= p
        n = x.shape[0]
        shape = (self.block_rows if self.regroup else n, p + (c if fused else 0))
        b = self._buffer
        if b is None or b.shape[0] < shape[0] or b.shape[1] != shape[1] or b.dtype != cdt:
            # Reused across blocks: fresh multi-MiB arrays would be page-faulted every time.
            self._buffer = np.empty(shape, dtype=cdt)
        a = self._buffer[:n]
        z = a[:, :p]
        if fused:
            a[:, p:] = labels[:, None] == np.arange(c)[None, :]
        if x.dtype != np.float64 or cdt == np.float64:
            if fused:
                # onehot @ ref gathers the references exactly (one non-zero term per row) and,
                # unlike np.take, writes fast into the strided view z.
                np.matmul(a[:, p:], ref, out=z)
            elif ref.dtype == cdt:
                np.take(ref, labels, axis=0, out=z)
            else:  # float32 references, float64 products: exact upcast
                z[...] = ref[labels]
            np.subtract(x, z, out=z, dtype=cdt, casting="unsafe")
        else:  # float64 features, float32 products: centre in float64, round once
            z[...] = x - ref[labels].astype(np.float64)
        gram = a.T @ a
        np.add(self._scatter, gram[:p, :p], out=self._scatter)
        if fused:
            self._zsum += gram[p:, :p]
        elif present is not None:  # few of many classes: sums over the present ones only
            compact = np.searchsorted(present, labels)
            self._zsum[present] += numpy_segment_sum64(z, compact, int(present.size))
        else:
            self._zsum += numpy_segment_sum64(z, labels, c)
        sq = np.einsum("ij,ij->i", z, z)
        self._zsq += np.bincount(labels, weights=sq, minlength=c)
        if self._norms is not None:
            # ‖h‖ ≤ ‖h − ref_y‖ + ‖ref_y‖ (the reference points never change once set).
            ref_norms = self._ref_norms
            bound = np.sqrt((sq.astype(np.float64) + self._sq_floor) * self._sq_factor)
            bound *= self._z_factor
            bound += ref_norms[labels]
            self._norms.append(bound)

    @property
    def counts(self) -> np.ndarray:
        """Samples per class seen so far, shape ``(n_classes,)``."""
        return self._counts + (np.bincount(self._pending[2][:self._pending_rows],
                                           minlength=self.num_classes)
                               if self._pending_rows else 0)

    def row_norm_bounds(self) -> np.ndarray | None:
        """Upper bounds on ‖h_i‖ of every row added, float64, shape (n_rows,), or ``None``
        when they were not kept (see ``keep_row_norms``). Call after :meth:`finalize`."""
        if self._norms is None or self._pending_rows:
            return None
        return np.concatenate(self._norms) if self._norms else np.zeros(0)

    def finalize(self) -> ClassStats:
        """Return the statistics of all chunks added; classes without samples get no row.

        Call once: the (C, P) totals become the result in place, so that no second array of
        that size is made (memory stays 2·C·P·8 bytes with vocabulary-sized C), and the
        accumulator cannot be updated afterwards.
        """
        self._flush()
        self._pending = None
        xp, f64 = self.xp, self.xp.float64
        ids = (np.arange(self.num_classes, dtype=np.int64) if self.classes is None
               else np.asarray(self.classes, dtype=np.int64))
        total = self.num_classes if self.total_classes is None else self.total_classes
        zsum, zsq, counts = self._zsum, self._zsq, self._counts
        ref = self._ref_c if self._ref_c is not None else self._ref
        self._zsum = self._ref_c = None  # consumed
        compacted = bool(np.any(counts == 0))
        if compacted:
            keep = np.flatnonzero(counts)
            zsum, ref = keep_rows(zsum, keep), keep_rows(ref, keep)
            zsq = xp.take(zsq, xp.asarray(keep, device=self.device), axis=0)
            counts, ids = counts[keep], ids[keep]
        n = xp.asarray(counts.astype(np.float64), device=self.device)
        d = zsum
        d /= n[:, None]
        k, p = int(d.shape[0]), self.num_features
        tile = max(1, FINAL_TILE_BYTES // (8 * max(1, p)))
        correction = xp.zeros((p, p), dtype=f64, device=self.device)
        dd = []
        for r0 in range(0, k, tile):  # Σ_c n_c d_c d_cᵀ and ‖d_c‖², one row tile at a time
            r1 = min(k, r0 + tile)
            dt, nt = d[r0:r1, ...], n[r0:r1]
            correction = correction + xp.matmul(dt.T * nt[None, :], dt)
            dd.append(xp.sum(dt * dt, axis=1))
        dd = xp.concat(dd) if dd else xp.zeros((0,), dtype=f64, device=self.device)
        scatter = self._scatter - correction
        scatter = (scatter + scatter.T) / 2
        class_scatter = xp.maximum(zsq - n * dd, 0.0)
        for r0 in range(0, k, tile):  # μ_c = ref_c + d_c, in place (ref may be float32)
            r1 = min(k, r0 + tile)
            d[r0:r1, ...] += xp.astype(ref[r0:r1, ...], f64)
        del ref
        means = xp.asarray(d, copy=True) if compacted else d  # the rows alone, not a view
        return ClassStats(n, means, scatter, class_scatter, int(counts.sum()),
                          classes=ids, total_classes=int(total), precision=self.precision)


def class_stats(features, labels, num_classes: int | None = None, *, chunk_rows: int = 65536,
                compute_dtype: str = "float64") -> ClassStats:
    """Statistics of an in-memory feature matrix (convenience for the Python API).

    Parameters
    ----------
    features : array, shape (n_samples, n_features)
    labels : integer array, shape (n_samples,)
    num_classes : int, optional
        C, default ``max(labels) + 1``; classes without samples get no row (their indices
        are in ``ClassStats.class_ids``' complement).
    chunk_rows : int
        Rows per accumulation step.

    Tensors that require grad are detached (no copy); the statistics are computed on the
    device of ``features`` (labels anywhere: they are copied there).
    """
    from .inputs import check_inputs, checked_labels

    check_inputs(features, labels)
    features = detach(features)
    xp = array_namespace(features)
    dev = device(features)
    labels_host, c = checked_labels(labels, int(features.shape[0]), num_classes)
    classes, compact = compact_labels(labels_host, c)
    acc = StatsAccumulator(classes.size, int(features.shape[1]), xp, compute_dtype,
                           classes=classes, total_classes=c, device=dev)
    labels_host = compact
    lab = xp.asarray(compact, device=dev)
    n = int(features.shape[0])
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        acc.update(features[start:stop, ...], lab[start:stop], labels_host[start:stop])
    stats = acc.finalize()
    stats.precision = coarser(stats.precision, values_precision(features))
    return stats
