"""Dynamics of the SNR singular values across epochs (Han et al. 2022, Prop. 2; docs/CENTRAL_PATH.md §3).

On the central path, continually renormalised gradient flow gives for every non-zero singular
value ω_j of Σ_W^{-1/2} M̄

    φ(ω_j(t)) = C² log ω_j + C ω_j² + ω_j⁴/4 = κ (a_j + t),

with one time scale κ for all j (c₁ : c₂ : c₃ = C² : C : ¼; κ is unknown because the time of
the flow and a real run's clock are related by the learning rate and more). With balanced
classes and λ = 0 the central-path loss is L_LS = ½ Σ_j 1/(C + ω_j²), and gradient flow of the
SNR matrix S on it gives dω_j/dt = ω_j/(C + ω_j²)², whose integral is φ.

So ncanalyze regresses φ(ω_j) on a time axis (epochs, cumulative learning rate, optimiser
steps or a recorded scalar) with a **common slope** s and one intercept β_j per j, reports R²
per j, and also each j's own slope: the law fixes the differences φ(ω_j) − φ(ω_k), so the
spread of the per-j slopes says *why* a run departs from it. Indices j are 0-based, as in the
``snr_singular_values_j`` columns (j = 0 is the paper's ω_1). The fit works on small host
arrays (epochs × C), hence plain NumPy.

The module is a little over 350 lines: φ and its inverse, the clock, the fit, the verdict and
the reference flow that tests the fit are one topic (Prop. 2) and read best together.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: Minimum R² over j for the verdict "follows the law" and "approximately follows".
R2_GOOD = 0.99
R2_FAIR = 0.9
#: Fewer epochs than this give no fit.
MIN_EPOCHS = 3
#: The ω_j "grow in proportion" when the per-j slopes of log ω_j agree within this factor.
PROPORTION_SPREAD = 2.0

#: Names of the built-in time axes (``--time``); any other name is a ``/scalars`` entry.
CLOCKS = {
    "epoch": "epoch",
    "lr": "cumulative learning rate",
    "steps": "optimiser-step",
}

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


def clock_name(time: str) -> str:
    """How the verdict names a time axis: 'epoch', 'cumulative learning rate', '/scalars/x'."""
    return CLOCKS.get(time, f"/scalars/{time}")


def cumulative_learning_rate(steps: Sequence[int | float], lr: Sequence[float]) -> list[float]:
    """Gradient-flow time of a learning-rate schedule: τ_k = Σ_{i≤k} (u_i − u_{i−1})(η_{i−1} + η_i)/2.

    The trapezoid rule over the recorded points (u_i, η_i), τ_0 = 0. Gradient descent with step
    η moves the flow time by η per step, so with u the optimiser-step count τ is the flow time
    up to the unknown scale of Prop. 2; with u the epoch number it is that time divided by the
    steps per epoch.

    Parameters
    ----------
    steps : sequence of int or float, length E
        u_i, non-decreasing (integers are differenced exactly, even near 2⁶³).
    lr : sequence of float, length E
        η_i ≥ 0, finite.

    Returns
    -------
    list of float, length E

    Raises
    ------
    ValueError
        When a learning rate is not finite or negative, or the steps decrease.
    """
    out: list[float] = []
    total = 0.0
    for i, (u, eta) in enumerate(zip(steps, lr)):
        eta = float(eta)
        if not math.isfinite(eta):
            raise ValueError(f"the learning rate is not finite ({eta}) at point {i}")
        if eta < 0:
            raise ValueError(f"the learning rate is negative ({eta:g}) at point {i}")
        if i:
            du = _exact_difference(u, steps[i - 1])
            if not du >= 0:
                raise ValueError(f"the step count must not decrease (point {i})")
            total += du * 0.5 * (float(lr[i - 1]) + eta)
        out.append(total)
    return out


def _law(time: str) -> str:
    return f"C² log ω_j + C ω_j² + ω_j⁴/4 = slope · t + intercept_j, t: {clock_name(time)}"


def _exact_difference(a, b) -> float:
    """a − b, exactly in integers when both are integers (float64 has 53 bits)."""
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return float(int(a) - int(b))
    return float(a) - float(b)


def not_fitted(reason: str, time: str = "epoch", law: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``dynamics`` object that says why there is no fit."""
    law = law or _law(time)
    out = {"fitted": False, "reason": reason, "law": law, "time": time,
           "clock": clock_name(time)}
    out.update(extra or {})
    out["verdict"] = f"dynamics: not fitted ({reason})"
    out["summary"] = out["verdict"]
    return out


def fit_dynamics(times: Sequence[int | float], singular_values: Sequence[Sequence[float] | None],
                 num_classes: int, *, epochs: Sequence[int] | None = None,
                 time: str = "epoch") -> dict[str, Any]:
    """Fit φ(ω_j) = s · t + β_j with a common slope s (docs/CENTRAL_PATH.md §3).

    Parameters
    ----------
    times : sequence of int or float, length E
        The time axis t of each epoch (the epoch numbers, the cumulative learning rate, …).
        Integers are centred exactly, so epochs near 2⁶² are fine.
    singular_values : sequence of (sequence of float or None), length E
        ω_0 ≥ … ≥ ω_{C−1} per epoch (``snr_singular_values``); ``None`` for an epoch whose SNR
        is undefined. Only ω_0..ω_{C−2} are fitted (ω_{C−1} is 0).
    num_classes : int
        C.
    epochs : sequence of int, length E, optional
        Epoch numbers (default ``times``), reported as ``epochs``.
    time : str
        Name of the axis: ``"epoch"``, ``"lr"``, ``"steps"`` or a ``/scalars`` name.

    Returns
    -------
    dict
        ``fitted`` (bool), ``time``, ``clock`` (its name in words), ``law`` and ``verdict``
        (one line) always; ``reason`` when not fitted. When fitted: ``epochs`` and ``times``
        used, ``slope`` s, ``intercepts`` β_j (at t = 0), ``r2`` (common-slope R² per j,
        ``None`` where φ(ω_j) does not vary), ``r2_min``, ``slopes`` (each j's own
        least-squares slope), ``r2_separate`` (R² of each j's own line), ``slope_spread``
        (max/min of ``slopes`` when all are > 0, else ``None``), ``log_slope_spread`` (the
        same for log ω_j), ``epochs_skipped`` when some epochs had no defined SNR. Every list
        has C − 1 entries, position j for ``snr_singular_values_j``.
    """
    c = int(num_classes)
    law = _law(time)
    epochs = list(times) if epochs is None else list(epochs)
    used_epochs: list[int] = []
    used_times: list[int | float] = []
    rows: list[np.ndarray] = []
    skipped = 0
    for e, t, sv in zip(epochs, times, singular_values):
        if sv is None or len(sv) < c - 1:
            skipped += 1
            continue
        w = np.asarray([np.nan if v is None else v for v in sv[: c - 1]], dtype=np.float64)
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            skipped += 1
            continue
        used_epochs.append(int(e))
        used_times.append(t)
        rows.append(w)
    extra = {"epochs_skipped": skipped} if skipped else {}
    lengths = [len(sv) for sv in singular_values if sv is not None]
    if lengths and max(lengths) < c - 1:
        return not_fitted(f"C − 1 > P: only {max(lengths)} singular values can be nonzero "
                          "(M̄ has rank ≤ P) and the law needs all C − 1; it does not apply",
                          time, law, extra)
    if len(used_epochs) < MIN_EPOCHS:
        reason = (f"needs at least {MIN_EPOCHS} epochs with a defined SNR, got "
                  f"{len(used_epochs)}" + (f" ({skipped} skipped)" if skipped else ""))
        return not_fitted(reason, time, law, extra)

    # Time relative to the first used point, in exact integers where possible; then centred.
    rel = np.asarray([_exact_difference(t, used_times[0]) for t in used_times])
    if not np.all(np.isfinite(rel)):
        return not_fitted("the time axis is not finite", time, law, extra)
    tc = rel - rel.mean()
    t_scale = float(np.max(np.abs(tc)))
    if not t_scale > 0:
        return not_fitted(f"the {clock_name(time)} clock does not advance over the "
                           f"{len(used_epochs)} epochs used", time, law, extra)
    omega = np.stack(rows, axis=1)  # (C−1, E)
    with np.errstate(over="ignore", invalid="ignore"):
        y = phi(omega, c)
        yc = y - y.mean(axis=1, keepdims=True)
    if not np.all(np.isfinite(yc)):
        return not_fitted(f"φ(ω_j) overflows float64 (ω up to {float(omega.max()):.3g})",
                           time, law, extra)
    # Sums of squares on scaled copies (R² and slopes are scale-free): no overflow for any
    # finite φ and any finite time axis.
    u = tc / t_scale
    suu = float(np.sum(u * u))
    y_scale = np.max(np.abs(yc), axis=1)
    varies = y_scale > 0
    v = yc / np.where(varies, y_scale, 1.0)[:, None]
    own = (v @ u) / suu  # per-j slope in scaled units
    slopes = own * y_scale / t_scale
    slope = float(np.mean(slopes))
    intercepts = y.mean(axis=1) - slope * (_as_float(used_times[0]) + float(rel.mean()))
    common = slope * t_scale / np.where(varies, y_scale, 1.0)  # common slope, scaled per j
    r2 = _r2(v, common[:, None] * u[None, :], varies)
    r2_sep = _r2(v, own[:, None] * u[None, :], varies)
    defined = [x for x in r2 if x is not None]
    with np.errstate(divide="ignore"):
        logw = np.log(omega)
    log_slopes = ((logw - logw.mean(axis=1, keepdims=True)) @ u) / suu
    out: dict[str, Any] = {
        "fitted": True,
        "law": law,
        "time": time,
        "clock": clock_name(time),
        "epochs": used_epochs,
        "times": [float(x) for x in (_as_float(used_times[0]) + rel)],
        "slope": slope,
        "intercepts": [float(x) for x in intercepts],
        "r2": r2,
        "r2_min": min(defined) if defined else None,
        "slopes": [float(x) for x in slopes],
        "r2_separate": r2_sep,
        "slope_spread": _spread(slopes),
        "log_slope_spread": _spread(log_slopes),
    }
    out.update(extra)
    out["verdict"] = _verdict(out)
    out["summary"] = _summary(out)
    return out


def _as_float(t) -> float:
    return float(int(t)) if isinstance(t, (int, np.integer)) else float(t)


def _r2(v: np.ndarray, fitted: np.ndarray, varies: np.ndarray) -> list[float | None]:
    """1 − SS_res/SS_tot per row of centred, scaled values ``v`` (None where a row is 0)."""
    res = np.sum((v - fitted) ** 2, axis=1)
    tot = np.sum(v * v, axis=1)
    return [float(1.0 - r / s) if ok else None for r, s, ok in zip(res, tot, varies)]


def _spread(slopes: np.ndarray) -> float | None:
    """max/min of the slopes when all are positive, else None."""
    if slopes.size == 0 or not np.all(slopes > 0):
        return None
    return float(slopes.max() / slopes.min())


def _verdict(fit: dict[str, Any]) -> str:
    """One line: does the law describe the run on this clock, and if not, why."""
    r2, r2_min, slope = fit["r2"], fit["r2_min"], fit["slope"]
    clock = f"on the {fit['clock']} clock"
    if r2_min is None:
        return "dynamics: the SNR singular values do not change over the epochs; nothing to fit"
    worst = min((j for j, x in enumerate(r2) if x is not None), key=lambda j: r2[j])
    if all(s < 0 for s in fit["slopes"]):
        return (f"dynamics: the SNR singular values shrink {clock} (common slope {slope:.3g} "
                "< 0): the run does not follow the central-path growth law")
    summary = f"common slope {slope:.3g}, min R² = {r2_min:.4f} (snr_singular_values_{worst})"
    if slope > 0 and r2_min >= R2_GOOD:
        return (f"dynamics: follows the central-path law of Han et al. (Prop. 2) {clock} for "
                f"every ω_j: {summary}")
    cause = _cause(fit)
    if slope > 0 and r2_min >= R2_FAIR:
        return f"dynamics: approximately follows the central-path law {clock}: {summary}; {cause}"
    return f"dynamics: the central-path law does not describe this run {clock}: {cause}; {summary}"


def _summary(fit: dict[str, Any]) -> str:
    """The verdict in plain words for a person: what holds, what does not, one number (the
    full sentence is ``verdict``; the numbers are the other keys of the fit)."""
    r2_min, slope = fit["r2_min"], fit["slope"]
    clock = f"on the {fit['clock']} clock"
    if r2_min is None:
        return "dynamics: the SNR singular values do not change; nothing to fit"
    if all(s < 0 for s in fit["slopes"]):
        return f"dynamics: the SNR singular values shrink {clock}; the growth law does not apply"
    if slope > 0 and r2_min >= R2_GOOD:
        return (f"dynamics: the SNR follows Han et al.'s central-path law {clock} "
                f"(min R² {_r2_text(r2_min)})")
    if slope > 0 and r2_min >= R2_FAIR:
        return (f"dynamics: the SNR roughly follows Han et al.'s central-path law {clock} "
                f"(min R² {_r2_text(r2_min)})")
    slopes, r2_sep = fit["slopes"], [x for x in fit["r2_separate"] if x is not None]
    log_spread = fit["log_slope_spread"]
    if any(not s > 0 for s in slopes):
        why = "some ω_j do not grow"
    elif r2_sep and min(r2_sep) < R2_FAIR:
        why = "φ(ω_j) is not a line on this clock"
    elif log_spread is not None and log_spread <= PROPORTION_SPREAD:
        why = "the ω_j grow in proportion, not equalising"
    else:
        why = "the ω_j grow at different rates"
    return (f"dynamics: the central-path law does not fit {clock}: {why} "
            f"(min R² {_r2_text(r2_min)})")


def _r2_text(r2: float) -> str:
    """'0.968', '1.000' (not '1' for 0.99999), '-359.5'."""
    return f"{r2:.3f}" if abs(r2) <= 1 else f"{r2:.4g}"


def _cause(fit: dict[str, Any]) -> str:
    """Why one common slope does not fit every j (the law fixes φ(ω_j) − φ(ω_k))."""
    slopes = fit["slopes"]
    r2_sep = fit["r2_separate"]
    spread, log_spread = fit["slope_spread"], fit["log_slope_spread"]
    not_growing = [j for j, s in enumerate(slopes) if not s > 0]
    if not_growing:
        shown = ", ".join(f"snr_singular_values_{j}" for j in not_growing[:4])
        return (f"{shown} do{'es' if len(not_growing) == 1 else ''} not grow (own slope ≤ 0), "
                "while the law moves every ω_j up at one rate")
    sep = [(j, x) for j, x in enumerate(r2_sep) if x is not None]
    lo_j, lo = min(sep, key=lambda p: p[1]) if sep else (None, None)
    if lo is not None and lo < R2_FAIR:
        return (f"φ(ω_j) is not a line on this clock (own-line R² down to {lo:.3f} at "
                f"snr_singular_values_{lo_j}); per-j slopes span {_times(spread)}")
    linear = "" if lo is None else (f"; each φ(ω_j) alone is close to a line on this clock "
                                    f"(own-line R² ≥ {lo:.3f})")
    if log_spread is not None and log_spread <= PROPORTION_SPREAD:
        return (f"the ω_j grow in proportion instead of equalising: per-j slopes span "
                f"{_times(spread)} (log ω_j slopes within {_times(log_spread)}), but the law "
                f"needs one common slope{linear}")
    return f"per-j slopes span {_times(spread)}, but the law needs one common slope{linear}"


def _times(ratio: float) -> str:
    """'61×', '1.3×'."""
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


def fitted_curves(dynamics: dict[str, Any], times, num_classes: int):
    """ω_j predicted by a fit at the given times of its clock, shape (C−1, len(times)).

    ``None`` when the dynamics were not fitted.
    """
    if not dynamics.get("fitted"):
        return None
    t = np.asarray(times, dtype=np.float64)
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
