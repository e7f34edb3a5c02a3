"""Dynamics of the SNR singular values across epochs (SPEC §2.4, Han et al. Prop. 2).

On the central path, continually renormalised gradient flow gives for every non-zero singular
value ω_j of Σ_W^{-1/2} M̄

    φ(ω_j(t)) = C² log ω_j + C ω_j² + ω_j⁴/4 = κ (a_j + t),

with one time scale κ for all j (c₁ : c₂ : c₃ = C² : C : ¼; κ is unknown because the time of
the flow and the epochs of a real run are related by the learning rate and more). With
balanced classes and λ = 0 the central-path loss is L_LS = ½ Σ_j 1/(C + ω_j²), and gradient
flow of the SNR matrix S on it gives dω_j/dt = ω_j/(C + ω_j²)², whose integral is φ.

So ncanalyze regresses φ(ω_j(epoch)) on the epoch number with a **common slope** s and one
intercept β_j per j (least squares over all j and epochs), and reports R² per j. The fit works
on small host arrays (epochs × C), hence plain NumPy.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: Minimum R² over j for the verdict "follows the law" and "approximately follows".
R2_GOOD = 0.99
R2_FAIR = 0.9
#: Fewer epochs than this give no fit.
MIN_EPOCHS = 3


def phi(omega, num_classes: int):
    """φ(ω) = C² log ω + C ω² + ω⁴/4 (elementwise, ω > 0).

    Parameters
    ----------
    omega : array_like
    num_classes : int
        C.

    Returns
    -------
    ndarray, same shape as ``omega``
    """
    w = np.asarray(omega, dtype=np.float64)
    c = float(num_classes)
    return c * c * np.log(w) + c * w**2 + w**4 / 4.0


def phi_inverse(values, num_classes: int, *, iterations: int = 200):
    """ω > 0 with φ(ω) = value (φ is strictly increasing from −∞ to ∞).

    Bisection on log ω, which is robust for any finite value.

    Parameters
    ----------
    values : array_like
    num_classes : int

    Returns
    -------
    ndarray, same shape as ``values``
    """
    v = np.asarray(values, dtype=np.float64)
    c = float(num_classes)
    # Brackets: φ(ω) ≥ C² log ω gives log ω ≤ v / C² for ω ≤ 1; ω⁴/4 ≤ φ for ω ≥ 1.
    lo = np.minimum(v / (c * c), 0.0) - 1.0
    hi = np.maximum(np.log(np.maximum(4.0 * np.abs(v), 1.0)) / 4.0, 0.0) + 1.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        with np.errstate(divide="ignore", over="ignore"):  # exp(mid) may under/overflow
            below = phi(np.exp(mid), num_classes) < v
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
        if np.all(hi - lo <= 1e-15 * np.maximum(1.0, np.abs(mid))):
            break
    return np.exp(0.5 * (lo + hi))


def fit_dynamics(epochs: Sequence[int], singular_values: Sequence[Sequence[float] | None],
                 num_classes: int) -> dict[str, Any]:
    """Fit φ(ω_j) = s · epoch + β_j with a common slope s (SPEC §2.4).

    Parameters
    ----------
    epochs : sequence of int, length E
    singular_values : sequence of (sequence of float or None), length E
        ω_1 ≥ … ≥ ω_C per epoch (``snr_singular_values``); ``None`` for an epoch whose SNR is
        undefined. Only ω_1..ω_{C−1} are fitted (ω_C is 0).
    num_classes : int
        C.

    Returns
    -------
    dict
        ``fitted`` (bool); when fitted: ``slope`` s, ``intercepts`` β_j (list of C−1),
        ``r2`` (list of C−1, ``None`` where φ(ω_j) does not vary), ``r2_min``, ``epochs``
        (the epochs used), ``law``; always ``verdict`` (one line) and, when not fitted,
        ``reason``.
    """
    c = int(num_classes)
    law = "C² log ω_j + C ω_j² + ω_j⁴/4 = slope · epoch + intercept_j"
    used_epochs: list[int] = []
    rows: list[np.ndarray] = []
    skipped = 0
    for e, sv in zip(epochs, singular_values):
        if sv is None or len(sv) < c - 1:
            skipped += 1
            continue
        w = np.asarray([np.nan if v is None else v for v in sv[: c - 1]], dtype=np.float64)
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            skipped += 1
            continue
        used_epochs.append(int(e))
        rows.append(w)
    if len(used_epochs) < MIN_EPOCHS:
        reason = (f"needs at least {MIN_EPOCHS} epochs with a defined SNR, got "
                  f"{len(used_epochs)}" + (f" ({skipped} skipped)" if skipped else ""))
        return {"fitted": False, "reason": reason, "law": law,
                "verdict": f"dynamics: not fitted ({reason})"}

    t = np.asarray(used_epochs, dtype=np.float64)
    y = phi(np.stack(rows, axis=1), c)  # (C−1, E)
    tc = t - t.mean()
    yc = y - y.mean(axis=1, keepdims=True)
    sxx = float(np.sum(tc * tc))
    slope = float(np.sum(yc * tc[None, :]) / (y.shape[0] * sxx))
    intercepts = y.mean(axis=1) - slope * t.mean()
    resid = yc - slope * tc[None, :]
    ss_res = np.sum(resid * resid, axis=1)
    ss_tot = np.sum(yc * yc, axis=1)
    r2: list[float | None] = []
    for res_j, tot_j in zip(ss_res, ss_tot):
        r2.append(None if tot_j <= 0.0 else float(1.0 - res_j / tot_j))
    defined = [v for v in r2 if v is not None]
    r2_min = min(defined) if defined else None
    out: dict[str, Any] = {
        "fitted": True,
        "law": law,
        "epochs": used_epochs,
        "slope": slope,
        "intercepts": [float(v) for v in intercepts],
        "r2": r2,
        "r2_min": r2_min,
    }
    if skipped:
        out["epochs_skipped"] = skipped
    out["verdict"] = _verdict(slope, r2, r2_min)
    return out


def _verdict(slope: float, r2: list[float | None], r2_min: float | None) -> str:
    if r2_min is None:
        return "dynamics: the SNR singular values do not change over the epochs; nothing to fit"
    worst = 1 + min((i for i, v in enumerate(r2) if v is not None), key=lambda i: r2[i])
    if not slope > 0:
        return (f"dynamics: the SNR singular values shrink over the epochs (slope {slope:.3g}"
                " < 0): the run does not follow the central-path growth law")
    summary = f"common slope {slope:.3g} per epoch, min R² = {r2_min:.4f} (j = {worst})"
    if r2_min >= R2_GOOD:
        return (f"dynamics: follows the central-path law of Han et al. (Prop. 2) for every ω_j: "
                f"{summary}")
    if r2_min >= R2_FAIR:
        return f"dynamics: approximately follows the central-path law: {summary}"
    return f"dynamics: the central-path law does not describe this run: {summary}"


def fitted_curves(dynamics: dict[str, Any], epochs, num_classes: int):
    """ω_j predicted by a fit at the given epochs, shape (C−1, len(epochs)); None if unfitted."""
    if not dynamics.get("fitted"):
        return None
    t = np.asarray(epochs, dtype=np.float64)
    beta = np.asarray(dynamics["intercepts"], dtype=np.float64)
    values = dynamics["slope"] * t[None, :] + beta[:, None]
    return phi_inverse(values, num_classes)


def central_path_flow(snr0, times: Sequence[float], *, steps_per_unit: int = 200) -> list:
    """Integrate the gradient flow of the SNR matrix on the central path (RK4).

    Flow: dS/dt = −∇_S L_LS(S) = S (C I + SᵀS)^{-2}, L_LS = ½ tr((C I + SᵀS)^{-1}) (balanced
    classes, λ = 0, Σ_W = I: the renormalised coordinates of Han et al.). It keeps the
    singular vectors of S and moves each singular value by dω/dt = ω/(C + ω²)², so
    φ(ω_j(t)) − t is constant: a test bench for :func:`fit_dynamics`.

    Parameters
    ----------
    snr0 : ndarray, shape (n_features, n_classes)
        S at t = 0 (columns summing to zero for centred class means).
    times : sequence of float
        Non-decreasing times ≥ 0 at which to return S.
    steps_per_unit : int
        RK4 steps per unit of time.

    Returns
    -------
    list of ndarray, shape (n_features, n_classes) each
    """
    s = np.array(snr0, dtype=np.float64)
    c = s.shape[1]
    eye = np.eye(c)

    def field(x):
        a = c * eye + x.T @ x  # symmetric, eigenvalues ≥ C: well conditioned
        return np.linalg.solve(a, np.linalg.solve(a, x.T)).T

    out, t = [], 0.0
    for target in times:
        if target < t:
            raise ValueError("times must be non-decreasing and ≥ 0")
        n = max(1, int(np.ceil((target - t) * steps_per_unit)))
        h = (target - t) / n
        for _ in range(n):
            k1 = field(s)
            k2 = field(s + 0.5 * h * k1)
            k3 = field(s + 0.5 * h * k2)
            k4 = field(s + h * k3)
            s = s + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        t = float(target)
        out.append(s.copy())
    return out
