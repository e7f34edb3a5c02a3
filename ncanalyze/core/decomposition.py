"""The MSE decomposition of Han, Papyan & Donoho (2022), Theorems 1–2 (docs/CENTRAL_PATH.md).

Loss: L(W̃) = ½ (1/N) Σ_i ‖W̃ h̃_i − e_{y_i}‖² + (λ/2)‖W̃‖², with h̃ = [h; 1], W̃ = [W b]
(without a bias h̃ = h, W̃ = W). Everything here comes from the class statistics (n_c, μ_c,
Σ_W) and W, b: with π_c = n_c/N,

    (1/N) Σ_i h̃_i h̃_iᵀ = Σ̃_W + Σ_c π_c μ̃_c μ̃_cᵀ,     Σ̃_W = [[Σ_W, 0], [0, 0]],

so L(W̃) = ½ [tr(W Σ_W Wᵀ) + Σ_c π_c ‖W̃ μ̃_c − e_c‖² + λ‖W̃‖²]; the within-class and the
between-class parts are separately non-negative, and every key is computed as such a sum of
non-negative terms — never as a difference of two losses.

Centred coordinates. With a bias, the solve and the class terms use g̃ = T h̃ = [h − μ_G; 1]
(μ_G sample-weighted, T = [[I, −μ_G], [0, 1]]) and V = W̃ T^{-1} = [W, b + W μ_G], so that
W̃ h̃ = V g̃ exactly. For λ = 0 the normal matrix becomes T A Tᵀ = diag(Σ_T, 1) (Σ_T the total
covariance): no ‖μ_G‖² enters its condition number and no W μ_c + b cancels when the features
sit far from the origin. W̃_LS = B A^{-1} = V_LS T with V_LS = B_c (T A Tᵀ)^{-1}, B_c rows
π_c g̃_cᵀ. The sample-weighted μ_G is the one that makes Σ_c π_c (μ_c − μ_G) = 0, hence the
block-diagonal form; the values do not depend on the ``--global-mean`` option.

Length: above the ~350-line guide: class terms, solve and array-API entry points of one loss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_numpy_namespace

from ..backend import detach, to_numpy
from ..errors import UsageError
from .decisions import tile_classes
from .inputs import check_inputs
from .linalg import checked_cholesky, cholesky_solve
from .pairs import Total
from .metrics import as_float64
from .precision import resolved_basis
from .accumulator import class_stats
from .stats import ClassStats
from .keys import keys_of
from .values import MetricValues

#: Keys of the ``decompose`` command, in output order.
DECOMPOSE_KEYS = keys_of("decompose")  # output order, from the key catalogue


class _Problem:
    """The least-squares problem of one epoch in centred coordinates (see module docstring).

    Attributes
    ----------
    normal : array, shape (d, d)
        T A Tᵀ, d = P + 1 with a bias, P without.
    targets : array, shape (C, d)
        B_c: row c is π_c g̃_cᵀ.
    class_points : array, shape (C, d)
        g̃_c as rows: [μ_c − μ_G, 1] with a bias, μ_c without.
    shift : array, shape (P,) or None
        μ_G with a bias (the T of the change of coordinates), None without.
    """

    def __init__(self, stats: ClassStats, with_bias: bool, weight_decay: float,
                 tile_bytes: int | None = None):
        xp = stats.xp
        p = stats.num_features
        self.xp = xp
        dev = self.device = device(stats.means)
        self.tile_bytes = tile_bytes
        self._r = None
        self.weights = stats.counts / stats.num_samples  # π_c
        self.sigma_w = stats.sigma_w
        self.weight_decay = float(weight_decay)
        lam = self.weight_decay
        self.restrict = None  # Q of the resolved directions (:meth:`_restrict_to_resolved`)
        if with_bias and is_numpy_namespace(xp):
            self._numpy_init_bias(stats, lam)
            self._restrict_to_resolved(stats)
            return
        if with_bias:
            mu_g = stats.global_mean("samples")
            centred = stats.means - mu_g[None, :]
            sigma_t = self.sigma_w + xp.matmul(centred.T * self.weights[None, :], centred)
            ones = xp.ones((stats.num_classes, 1), dtype=centred.dtype, device=dev)
            self.class_points = xp.concat([centred, ones], axis=1)
            zeros = xp.zeros((p, 1), dtype=centred.dtype, device=dev)
            normal = xp.concat([
                xp.concat([sigma_t, zeros], axis=1),
                xp.concat([zeros.T, xp.ones((1, 1), dtype=centred.dtype, device=dev)], axis=1),
            ], axis=0)
            if lam > 0:
                # λ T Tᵀ, T Tᵀ = [[I + μ_G μ_Gᵀ, −μ_G], [−μ_Gᵀ, 1]]
                col = -mu_g[:, None]
                ttt = xp.concat([
                    xp.concat([xp.eye(p, dtype=mu_g.dtype, device=dev)
                               + mu_g[:, None] * mu_g[None, :], col], axis=1),
                    xp.concat([col.T, xp.ones((1, 1), dtype=mu_g.dtype, device=dev)], axis=1),
                ], axis=0)
                normal = normal + lam * ttt
            self.shift = mu_g
        else:
            self.class_points = stats.means
            normal = self.sigma_w + xp.matmul(stats.means.T * self.weights[None, :], stats.means)
            if lam > 0:
                normal = normal + lam * xp.eye(p, dtype=normal.dtype, device=dev)
            self.shift = None
        self.normal = (normal + normal.T) / 2
        self.targets = self.class_points * self.weights[:, None]
        self._restrict_to_resolved(stats)

    def _restrict_to_resolved(self, stats: ClassStats) -> None:
        """λ = 0 with a bias: solve in the resolved directions, Q = diag(basis, 1)."""
        basis = resolved_basis(stats) if self.shift is not None and not self.weight_decay else None
        if basis is not None:
            xp, k = self.xp, int(basis.shape[1])
            last = xp.eye(int(basis.shape[0]) + 1, dtype=basis.dtype, device=self.device)[:, -1:]
            self.restrict = xp.concat([xp.concat([basis, xp.zeros(
                (1, k), dtype=basis.dtype, device=self.device)], axis=0), last], axis=1)

    def _numpy_init_bias(self, stats: ClassStats, lam: float) -> None:
        """The with-bias problem on NumPy, built in place (same matrices as the generic code,
        up to rounding): Σ_T + λ(I + μ_G μ_Gᵀ) = Σ_W + λI + GᵀG with
        G = [√π_c (μ_c − μ_G) …; √λ μ_G] (one syrk, exactly symmetric, no concatenations)."""
        p = stats.num_features
        mu_g = np.asarray(stats.global_mean("samples"))
        centred = np.asarray(stats.means) - mu_g[None, :]
        weights = np.asarray(self.weights)
        g = np.empty((centred.shape[0] + 1, p))
        np.multiply(centred, np.sqrt(weights)[:, None], out=g[:-1])
        np.multiply(mu_g, math.sqrt(lam), out=g[-1])
        normal = np.empty((p + 1, p + 1))
        top = normal[:p, :p]
        np.matmul(g.T, g, out=top)
        top += np.asarray(self.sigma_w)
        if lam > 0:
            top[np.diag_indices(p)] += lam
        normal[:p, p] = normal[p, :p] = -lam * mu_g
        normal[p, p] = 1.0 + lam
        self.normal = normal
        self.class_points = np.concatenate([centred, np.ones((centred.shape[0], 1))], axis=1)
        self.targets = self.class_points * weights[:, None]
        self.shift = mu_g

    # ------------------------------------------------------------------ coordinates
    def to_centred(self, weight, bias):
        """V = W̃ T^{-1}: shape (C, d)."""
        if self.shift is None:
            return weight
        xp = self.xp
        return xp.concat([weight, (bias + xp.matmul(weight, self.shift))[:, None]], axis=1)

    def from_centred(self, v):
        """(W, b) from V; b is None without a bias."""
        if self.shift is None:
            return v, None
        xp = self.xp
        p = self.shift.shape[0]
        w = v[:, :p]
        return w, v[:, p] - xp.matmul(w, self.shift)

    # ------------------------------------------------------------------ solve
    def solve(self) -> tuple[Any, int, int]:
        """V_LS = B_c (T A Tᵀ)^{-1}.

        Returns
        -------
        v_ls : array, shape (C, d)
        rank : int
            Numerical rank of T A Tᵀ (d when it is positive definite).
        dim : int
            d.
        """
        xp = self.xp
        dim = int(self.normal.shape[0])
        normal, targets, q = self.normal, self.targets, self.restrict
        if q is not None:  # docs/METRICS.md, "Rank from the data's precision"
            normal, targets = xp.matmul(q.T, xp.matmul(normal, q)), xp.matmul(targets, q)
        back = (lambda v: v) if q is None else (lambda v: xp.matmul(v, q.T))
        lower, _ = checked_cholesky(normal)
        if lower is not None:
            return back(cholesky_solve(lower, targets.T).T), int(normal.shape[0]), dim
        # Singular (λ = 0 and rank-deficient features): least squares restricted to the
        # numerical rank. Every key is the same for every least-squares solution (they differ
        # by directions that no h̃_i sees), so the choice does not change the results.
        evals, evecs = xp.linalg.eigh(normal)
        ev = np.asarray(to_numpy(evals), dtype=np.float64)
        top = float(ev.max()) if ev.size else 0.0
        keep = ev > int(normal.shape[0]) * float(np.finfo(np.float64).eps) * top
        rank = int(keep.sum())
        if rank == 0:
            return xp.zeros_like(self.targets), 0, dim
        idx = xp.asarray(np.flatnonzero(keep), device=self.device)
        u = xp.take(evecs, idx, axis=1)
        inv = 1.0 / xp.take(evals, idx)
        return back(xp.matmul(xp.matmul(targets, u) * inv[None, :], u.T)), rank, dim

    # ------------------------------------------------------------------ loss terms
    def within(self, weight) -> float:
        """tr(W Σ_W Wᵀ) ≥ 0, over row tiles of W."""
        xp = self.xp
        total = Total(xp)
        for r0, r1 in self._row_tiles(weight.shape[0]):
            w = weight[r0:r1, ...]
            total.add(xp.sum(xp.matmul(w, self.sigma_w) * w))
        return max(total.result(), 0.0)

    def between(self, v, subtract_identity: bool) -> float:
        """Σ_c π_c ‖V g̃_c − e_c‖² (or ‖V g̃_c‖² without the targets) for the rows V (K, d)
        of the classes present, one tile of classes c at a time."""
        xp = self.xp
        k = int(self.class_points.shape[0])
        total = Total(xp)
        for c0, c1 in self._row_tiles(k, width=k):
            pred = xp.matmul(v, self.class_points[c0:c1, ...].T)  # column c is V g̃_c
            if subtract_identity:
                pred = pred - xp.eye(k, c1 - c0, k=-c0, dtype=pred.dtype, device=self.device)
            total.add(xp.sum(xp.sum(pred * pred, axis=0) * self.weights[c0:c1]))
        return total.result()

    def spread(self, v) -> float:
        """Σ_c π_c ‖V g̃_c‖² for any rows V (m, d), as ‖V Rᵀ‖²_F with RᵀR = Σ_c π_c g̃_c g̃_cᵀ:
        a sum of squares, O(m·d²), whatever the number of rows."""
        xp = self.xp
        if self._r is None:
            g = self.class_points * xp.sqrt(self.weights)[:, None]
            if is_numpy_namespace(xp):
                self._r = np.linalg.qr(np.asarray(g), mode="r")
            else:
                self._r = xp.linalg.qr(g)[1]
        total = Total(xp)
        for r0, r1 in self._row_tiles(v.shape[0]):
            y = xp.matmul(v[r0:r1, ...], self._r.T)
            total.add(xp.sum(y * y))
        return total.result()

    def decay(self, weight, bias) -> float:
        """‖W̃‖² = ‖W‖² + ‖b‖²."""
        xp = self.xp
        total = float(xp.sum(weight * weight))
        if bias is not None:
            total += float(xp.sum(bias * bias))
        return total

    def _row_tiles(self, n: int, width: int | None = None):
        """Row ranges whose (rows × max(d, width)) float64 blocks fit the tile budget."""
        cols = max(int(self.normal.shape[0]), width or 0)
        step = max(1, tile_classes(self.tile_bytes, cols))
        for r0 in range(0, int(n), step):
            yield r0, min(int(n), r0 + step)


def _absent_rows(stats: ClassStats, total: int):
    """Indices of the classifier rows of classes without samples (host int64)."""
    present = np.zeros(total, dtype=bool)
    present[stats.class_ids] = True
    return np.flatnonzero(~present)


def _expand(stats: ClassStats, rows, total: int):
    """A (K, …) per-class array as (C, …) with zero rows for the classes without samples."""
    if rows is None or rows.shape[0] == total:
        return rows
    xp = array_namespace(rows)
    where = np.full(total, rows.shape[0], dtype=np.int64)
    where[stats.class_ids] = np.arange(rows.shape[0])
    dev = device(rows)
    zero = xp.zeros((1,) + tuple(rows.shape[1:]), dtype=rows.dtype, device=dev)
    return xp.take(xp.concat([rows, zero], axis=0), xp.asarray(where, device=dev), axis=0)


def least_squares_from_stats(stats: ClassStats, *, bias: bool = True,
                             weight_decay: float = 0.0) -> tuple[Any, Any, list[str]]:
    """W̃_LS = B A^{-1} of docs/CENTRAL_PATH.md (Prop. 1 of Han et al.) from class statistics.

    Parameters
    ----------
    stats : ClassStats
    bias : bool
        Fit a bias (extended features h̃ = [h; 1]) or not.
    weight_decay : float
        λ ≥ 0 (the bias is decayed too, as in the paper).

    Returns
    -------
    weight : array, shape (n_classes, n_features)
    bias : array, shape (n_classes,), or None
    warnings : list of str
        Set when A is singular and a rank-restricted least-squares solution was used.
    """
    problem = _Problem(stats, bias, weight_decay)
    v_ls, rank, dim = problem.solve()
    w, b = problem.from_centred(v_ls)
    total = stats.num_classes_total
    return (_expand(stats, w, total), _expand(stats, b, total),
            _rank_warning(rank, dim, problem.weight_decay))


def _rank_warning(rank: int, dim: int, lam: float) -> list[str]:
    if rank == dim:
        return []
    return [f"A = (1/N) Σ h̃h̃ᵀ + λI is singular (numerical rank {rank} of {dim}, λ = {lam:g}): "
            "W̃_LS is the least-squares solution restricted to that rank (the decomposition "
            "terms are the same for every least-squares solution)"]


def decompose_from_stats(stats: ClassStats, weight, bias=None, *, weight_decay: float = 0.0,
                         tile_bytes: int | None = None) -> MetricValues:
    """The decomposition keys (docs/CENTRAL_PATH.md) for one epoch.

    Parameters
    ----------
    stats : ClassStats
    weight : array, shape (n_classes, n_features)
        W, float64, in the namespace of ``stats``.
    bias : array, shape (n_classes,), optional
        b; ``None`` means a bias-free classifier (h̃ = h, W̃ = W, W̃_LS without bias).
    weight_decay : float
        λ ≥ 0.
    tile_bytes : int, optional
        Memory for one tile of the class terms (memory O(C·P + tile), never C×C).

    Returns
    -------
    MetricValues
        ``loss``, ``loss_ls``, ``loss_nc1``, ``loss_nc23``, ``loss_ls_perp``,
        ``central_path_ratio``; ``loss = loss_nc1 + loss_nc23 + loss_ls_perp`` to rounding.
    """
    lam = float(weight_decay)
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"weight_decay must be a finite number ≥ 0, got {weight_decay!r}")
    xp = stats.xp
    out = MetricValues()
    problem = _Problem(stats, bias is not None, lam, tile_bytes)
    v_ls, rank, dim = problem.solve()
    out.warnings.extend(_rank_warning(rank, dim, lam))
    w_ls, b_ls = problem.from_centred(v_ls)  # rows of the classes present
    # Rows of the classes present (S) carry the targets e_c; the others (A) only add
    # non-negative terms, identical in the loss and in loss_ls_perp (W̃_LS is 0 there).
    ids = xp.asarray(stats.class_ids, device=problem.device)
    absent = _absent_rows(stats, int(weight.shape[0]))
    w_s = weight if absent.size == 0 else xp.take(weight, ids, axis=0)
    b_s = bias if (bias is None or absent.size == 0) else xp.take(bias, ids, axis=0)
    v_s = problem.to_centred(w_s, b_s)
    rest = 0.0  # within + spread + λ·decay of the rows A
    step = max(1, tile_classes(tile_bytes, 2 * int(weight.shape[1])))
    for r0 in range(0, absent.size, step):
        idx = xp.asarray(absent[r0:r0 + step], device=problem.device)
        w_a = xp.take(weight, idx, axis=0)
        b_a = None if bias is None else xp.take(bias, idx, axis=0)
        rest += (problem.within(w_a) + problem.spread(problem.to_centred(w_a, b_a))
                 + lam * problem.decay(w_a, b_a))

    loss = 0.5 * (problem.within(w_s) + problem.between(v_s, True)
                  + lam * problem.decay(w_s, b_s) + rest)
    nc1 = 0.5 * (problem.within(w_ls) + lam * problem.decay(w_ls, b_ls))
    nc23 = 0.5 * problem.between(v_ls, True)
    dw = w_s - w_ls
    db = None if bias is None else b_s - b_ls
    perp = 0.5 * (problem.within(dw) + problem.spread(v_s - v_ls)
                  + lam * problem.decay(dw, db) + rest)
    out.set("loss", loss)
    out.set("loss_ls", nc1 + nc23)
    out.set("loss_nc1", nc1)
    out.set("loss_nc23", nc23)
    out.set("loss_ls_perp", perp)
    out.set("central_path_ratio", perp / loss if loss > 0 else None,
            "the loss is 0")
    return out


# ---------------------------------------------------------------------- array API


def decompose(features, labels, weight, bias=None, *, weight_decay: float = 0.0,
              num_classes: int | None = None) -> dict[str, Any]:
    """MSE decomposition (docs/CENTRAL_PATH.md) of in-memory arrays.

    Parameters
    ----------
    features : array, shape (n_samples, n_features)
        NumPy, CuPy or any array-API array.
    labels : integer array, shape (n_samples,)
    weight : array, shape (n_classes, n_features)
    bias : array, shape (n_classes,), optional
        Omit for a bias-free classifier.
    weight_decay : float
        λ of the loss ½·mean‖Wh + b − e_y‖² + (λ/2)(‖W‖² + ‖b‖²).
    num_classes : int, optional

    Returns
    -------
    dict
        The keys of :data:`DECOMPOSE_KEYS` (plain Python numbers) and ``"warnings"``.
        Computed on the device of ``features``; tensors that require grad are detached.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 40)
    >>> h = 3 * np.eye(3, 5)[y] + rng.normal(size=(120, 5))
    >>> w, b = least_squares_classifier(h, y)
    >>> out = decompose(h, y, w, b)
    >>> abs(out["loss_ls_perp"]) < 1e-12
    True
    """
    if weight is None:
        raise UsageError("decompose needs weight, shape (n_classes, n_features)")
    check_inputs(features, labels, weight, bias, num_classes=num_classes)
    features = detach(features)
    xp, dev = array_namespace(features), device(features)
    stats = class_stats(features, labels, num_classes)
    res = decompose_from_stats(stats, as_float64(xp, weight, dev), as_float64(xp, bias, dev),
                               weight_decay=weight_decay)
    out = dict(res.values)
    out["warnings"] = res.warnings
    return out


def least_squares_classifier(features, labels, *, bias: bool = True, weight_decay: float = 0.0,
                             num_classes: int | None = None):
    """The MSE-optimal classifier W̃_LS = B A^{-1} for fixed features (Prop. 1 of Han et al.).

    Parameters
    ----------
    features : array, shape (n_samples, n_features)
    labels : integer array, shape (n_samples,)
    bias : bool
        Fit a bias too.
    weight_decay : float
        λ (applied to the bias as well).
    num_classes : int, optional

    Returns
    -------
    weight : array, shape (n_classes, n_features)
    bias : array, shape (n_classes,), or None when ``bias=False``
        In the namespace and on the device of ``features``, float64, without autograd
        tracking (tensors that require grad are detached). When A is singular (λ = 0, rank-deficient
        features) a least-squares solution restricted to the numerical rank is returned and a
        ``RuntimeWarning`` is issued.
    """
    import warnings

    stats = class_stats(features, labels, num_classes)
    w, b, notes = least_squares_from_stats(stats, bias=bias, weight_decay=weight_decay)
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    return w, b
