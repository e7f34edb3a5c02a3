"""How much of a spectrum the stored features resolve: rounding floors from their precision
(docs/METRICS.md, "Rank from the data's precision").

A feature stored (or computed) in a floating-point format with unit roundoff u is known only
to a relative error u per entry: ``h̃_ij = h_ij (1 + δ_ij)``, ``|δ_ij| ≤ u``, so
``‖h̃_i − h_i‖ ≤ u ‖h_i‖``. The data matrix with rows h_i − μ_G (or h_i − μ_{y_i}), scaled by
1/√N, therefore moves by at most ``2 u r`` in norm, r² = (1/N) Σ_i ‖h_i‖², and by Weyl's
inequality so does each of its singular values: an eigenvalue of Σ_T, Σ_W or (1/N) Σ h̃h̃ᵀ at
or below ``(2 u r)²`` (:func:`data_floor`) is consistent with an exact 0 — the direction is
not signal. This bound is not averaged over rows (it holds when rows repeat, as a token seen
after one context only does in a language-model dump) and is not pessimistic either: the
rounding of N distinct rows has about that size too.

The floor is put where the features live, on Σ_T (:func:`resolved_basis`), and not on the
class means: the rounding of a class mean of n_c distinct rows averages down by ~1/√n_c, so a
worst-case floor on M̄'s singular values would drop real but small class-mean directions of an
early epoch; a direction without total variance has no class-mean spread either.

float64 gives a floor of ~1e-32 r² (only exactly degenerate directions, which the float64
cut-offs of the formulas already drop); float32 (the capture default) ~1e-14 r², float16
~1e-6 r², bfloat16 ~6e-5 r².
"""

from __future__ import annotations

import numpy as np
from array_api_compat import device

from ..backend import to_numpy

#: Unit roundoff (half the machine epsilon) of the formats features come in.
UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24,
                 "float64": 2.0**-53}
#: Precision names, coarsest first.
PRECISIONS = ("bfloat16", "float16", "float32", "float64")


def precision_name(dtype) -> str:
    """The precision name of a NumPy/torch/CuPy/array-API float dtype or a name (``"float32"``,
    ``torch.bfloat16``, ``np.dtype("<f2")``); float64 for anything wider or unknown."""
    text = str(dtype).rsplit(".", 1)[-1].lower()
    aliases = {"half": "float16", "f2": "float16", "<f2": "float16", "float": "float32",
               "f4": "float32", "<f4": "float32", "double": "float64", "f8": "float64",
               "<f8": "float64"}
    text = aliases.get(text, text)
    if text not in UNIT_ROUNDOFF:
        try:
            text = np.dtype(dtype).name
        except TypeError:
            return "float64"
    return text if text in UNIT_ROUNDOFF else "float64"


def values_precision(array) -> str:
    """The coarsest precision whose numbers hold every value of a host array exactly: the
    dtype's name, or coarser when the values are (float64 holding float32 values: features
    computed in float32 and stored as float64; float32 holding bfloat16 or float16 values).
    Arrays not in host memory (GPU) give their dtype's name."""
    from ..backend import host_view

    name = precision_name(array.dtype)
    host = host_view(array)
    if host is None or host.size == 0 or name in ("float16", "bfloat16"):
        return name
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "float64":
            single = host.astype(np.float32)
            if not np.array_equal(single, host, equal_nan=True):
                return name
            host, name = single, "float32"
        bits = np.ascontiguousarray(host, dtype=np.float32).view(np.uint32)
        if not np.any(bits & np.uint32(0xFFFF)):
            return "bfloat16"  # the low 16 bits of every float32 are 0
        if np.array_equal(host.astype(np.float16).astype(np.float32), host, equal_nan=True):
            return "float16"
    return name


def unit_roundoff(name: str) -> float:
    """u of a precision name (:data:`UNIT_ROUNDOFF`); raises ValueError for other names."""
    try:
        return UNIT_ROUNDOFF[name]
    except KeyError:
        raise ValueError(f"unknown precision {name!r}; one of {', '.join(PRECISIONS)}") from None


def coarser(first: str, *others: str) -> str:
    """The coarsest of precision names (largest unit roundoff)."""
    for name in others:
        if unit_roundoff(name) > unit_roundoff(first):
            first = name
    return first


#: A direction can be unresolved only when its total variance is at most this many times the
#: variance one rounding adds along it: features computed in a precision carry a few
#: roundings (a float32 LayerNorm's own arithmetic gave 5.7–7.4 on a language model); signal
#: directions are at ≥ 1e6 (float16) and ≥ 1e12 (float32) on the same data.
NOISE_FACTOR = 16.0
#: ... and only when the next direction's ratio is at least GAP times larger (and ≥ GAP): a
#: numerical rank needs a gap. Features that vary by less than their rounding without an
#: exact constraint (float16 features of an untrained network) form a continuum of ratios
#: (consecutive ones within 5×): nothing is dropped there.
GAP = 100.0


def rounding_variance(stats):
    """``(u²/3) E[h_j²]`` per feature j, host float64 (P,): the variance that rounding to
    ``stats.precision`` adds to feature j when the rounding errors are uniform in
    [−u|h_ij|, u|h_ij|]."""
    xp = stats.xp
    u = unit_roundoff(getattr(stats, "precision", "float64"))
    counts = stats.counts
    second = (xp.sum(counts[:, None] * stats.means * stats.means, axis=0)
              + xp.linalg.diagonal(stats.within_scatter)) / stats.num_samples
    return np.asarray(to_numpy(second), dtype=np.float64) * (u * u / 3.0)


def total_covariance(stats):
    """Σ_T = Σ_W + Σ_c π_c (μ_c − μ_G)(μ_c − μ_G)ᵀ (sample-weighted μ_G), shape (P, P)."""
    xp = stats.xp
    mbar = stats.centred_means("samples")
    weights = stats.counts / stats.num_samples
    sigma_t = stats.sigma_w + xp.matmul(mbar.T * weights[None, :], mbar)
    return (sigma_t + sigma_t.T) / 2


def resolved_basis(stats):
    """Orthonormal basis of the feature directions the stored features resolve, or ``None``
    when they resolve every direction.

    Rounding to ``stats.precision`` adds a variance ``vᵀ D v`` along a unit direction v,
    D = diag(:func:`rounding_variance`). A direction whose total variance ``vᵀ Σ_T v``
    (sample-weighted μ_G) is at most ``NOISE_FACTOR · vᵀ D v`` carries nothing that rounding
    could not have put there: in exact arithmetic the features may have none (a final
    LayerNorm leaves exactly P − 1 dimensions; the stored float32 copy has rounding noise
    along the missing one). These are the directions with generalised eigenvalue
    Σ_T v = λ D v, λ ≤ ``NOISE_FACTOR``, separated by a gap (the next λ ≥ ``GAP``·max(λ, 1));
    the formulas that cut a spectrum (NC1's Σ_B^†, the SNR's whitening, the decomposition's
    least-squares solve) work in the orthogonal complement of them. Features that are exactly
    0 everywhere (D_jj = 0) are left out as well.

    A Cholesky factorisation of Σ_T − NOISE_FACTOR·D decides cheaply that nothing is dropped
    (it exists iff every generalised eigenvalue exceeds the factor); only otherwise is the
    eigenproblem solved.

    Returns
    -------
    basis : array, shape (P, k), or None
        In the namespace and on the device of ``stats`` (computed once per ``stats``).
    """
    cached = stats.__dict__.get("_resolved_basis", _UNSET)
    if cached is _UNSET:
        cached = stats.__dict__["_resolved_basis"] = _resolved_basis(stats)
    return cached


_UNSET = object()


def _resolved_basis(stats):
    from ..backend import cholesky

    xp = stats.xp
    noise = rounding_variance(stats)
    if not np.all(np.isfinite(noise)):
        return None
    dev = device(stats.means)
    sigma_t = total_covariance(stats)
    d = xp.asarray(noise, device=dev)
    lower = cholesky(sigma_t - NOISE_FACTOR * _diag(xp, d))
    if lower is not None and bool(xp.all(xp.isfinite(xp.linalg.diagonal(lower)))):
        return None
    p = stats.num_features
    live = noise > 0.0  # a feature that is 0 in every row has no rounding and no variance
    idx = xp.asarray(np.flatnonzero(live), device=dev)
    if not live.all():
        sigma_t = xp.take(xp.take(sigma_t, idx, axis=0), idx, axis=1)
    scale = xp.asarray(1.0 / np.sqrt(noise[live]), device=dev)
    evals, evecs = xp.linalg.eigh(sigma_t * scale[:, None] * scale[None, :])
    drop = np.arange(_unresolved_count(np.asarray(to_numpy(evals), dtype=np.float64)))
    # The unresolved directions D^{-1/2} w (w the dropped eigenvectors), in all P coordinates
    # together with the dead features; the basis spans their orthogonal complement (for
    # exactly degenerate features: the range of Σ_T, so least-squares solutions found in it
    # are the minimum-norm ones).
    unresolved = xp.take(evecs, xp.asarray(drop, device=dev), axis=1) * scale[:, None]
    if not live.all():
        onehot = xp.astype(xp.arange(p, device=dev)[:, None] == idx[None, :], unresolved.dtype)
        dead = xp.asarray(np.flatnonzero(~live), device=dev)
        unresolved = xp.concat([xp.matmul(onehot, unresolved),
                                xp.take(xp.eye(p, dtype=unresolved.dtype, device=dev), dead,
                                        axis=1)], axis=1)
    m = int(unresolved.shape[1])
    if m == 0:
        return None
    q, _ = xp.linalg.qr(unresolved, mode="complete")
    return q[:, m:]


def _unresolved_count(ratios: np.ndarray) -> int:
    """m: the m smallest generalised eigenvalues (ascending ``ratios``) are rounding noise —
    the largest m with λ_m ≤ NOISE_FACTOR and λ_{m+1} ≥ GAP·max(λ_m, 1); 0 when there is no
    such gap."""
    for m in range(int(np.sum(ratios <= NOISE_FACTOR)), 0, -1):
        if m == ratios.size or ratios[m] >= GAP * max(float(ratios[m - 1]), 1.0):
            return m
    return 0


def _diag(xp, d):
    """The diagonal matrix with diagonal ``d``."""
    return xp.eye(d.shape[0], dtype=d.dtype, device=device(d)) * d[None, :]
