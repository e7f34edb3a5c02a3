"""Figures of the central-path analysis: SNR singular values (with the fitted law) and the MSE
decomposition over epochs (as Figure 2 of Han et al.).

matplotlib is imported only when a figure is drawn, through its object-oriented API (a
``Figure`` with the Agg canvas): no pyplot, no global backend switch. Files are written
atomically; the format follows the extension (PNG, SVG or PDF).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_path
from ..core.dynamics import fitted_curves
from ..errors import UsageError
from .text import literal

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(path, option: str = "--plot") -> str:
    """The figure format for ``path`` from its extension.

    Parameters
    ----------
    path : str or os.PathLike
    option : str
        The command-line option that named ``path`` (for the error message).

    Raises
    ------
    UsageError
        For an extension other than .png, .svg or .pdf.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise UsageError(f"{option} {os.fspath(path)}: unknown figure type {ext or '(none)'!r}; "
                         "use .png, .svg or .pdf")
    return FORMATS[ext]


#: Choices of ``--xscale``: ``auto`` is log when the epochs span two decades or more.
XSCALES = ("auto", "linear", "log")


def check_xscale(xscale: str) -> str:
    """``xscale`` if it is one of :data:`XSCALES`, else a UsageError."""
    if xscale not in XSCALES:
        raise UsageError(f"--xscale must be one of {', '.join(XSCALES)}, got {xscale!r}")
    return xscale


def resolve_xscale(epochs: Sequence[np.ndarray], xscale: str) -> str:
    """``linear`` or ``log`` for epoch arrays ``epochs`` under ``--xscale xscale``."""
    check_xscale(xscale)
    if xscale != "auto":
        return xscale
    ends = [np.asarray(e)[np.asarray(e) > 0] for e in epochs]
    lo = min((e.min() for e in ends if e.size), default=1)
    hi = max((e.max() for e in ends if e.size), default=1)
    return "log" if hi / max(lo, 1) >= 100 else "linear"


def epoch_axis(ax, scale: str, right: float, label: bool = True, left: float | None = None
               ) -> None:
    """Put epochs on ``ax``'s x axis: linear; log when every epoch is ≥ 1; with epoch 0, a
    symmetric-log scale (linear below 1, 0 at the left edge), and the label says so. A single
    epoch gets an axis of one tick around it."""
    if left is not None and left == right:
        ax.set_xscale("linear")
        ax.set_xlim(right - 1, right + 1)
        ax.set_xticks([right])
        scale = "linear"
    elif scale == "log" and left is not None and left >= 1:
        ax.set_xscale("log")
        ax.set_xlim(left / 1.3, right * 1.3)
    elif scale == "log":
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ax.set_xlim(0, right * 1.3)
        scale = "symlog"
    else:  # epochs are whole numbers: no 1.25 ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if label:
        ax.set_xlabel({"linear": "epoch", "log": "epoch (log scale)",
                       "symlog": "epoch (log scale above 1, linear from 0 to 1)"}[scale],
                      fontsize=9)


def law_accepted(dynamics: dict[str, Any] | None) -> bool:
    """Whether the verdict accepts the central-path law (only then is the fit drawn)."""
    from ..core.dynamics import R2_FAIR

    d = dynamics or {}
    return bool(d.get("fitted") and d.get("slope", 0) > 0 and d.get("r2_min") is not None
                and d["r2_min"] >= R2_FAIR)


def epoch_grid(lo: float, hi: float, scale: str) -> np.ndarray:
    """Points at which to draw a fitted curve smoothly on a ``scale`` epoch axis."""
    grid = np.linspace(lo, hi, 200)
    if scale == "log" and hi > max(lo, 1.0):
        grid = np.union1d(grid, np.geomspace(max(lo, 1.0), hi, 200))
    return grid


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> None:
    fmt = plot_format(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150)


def plain_log_ticks(ax) -> None:
    """Tick labels 0.5, 1, 2, 3 instead of 5×10⁻¹, 10⁰, … on a log axis of a short range."""
    from matplotlib.ticker import FuncFormatter

    low, high = ax.get_ylim()
    if low > 0 and high < 1e3 * low:
        fmt = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(fmt)
        if high < 30 * low:  # label minor ticks only where few decades leave room for them
            ax.yaxis.set_minor_formatter(fmt)
        else:
            from matplotlib.ticker import NullFormatter

            ax.yaxis.set_minor_formatter(NullFormatter())


def _series(epochs_values: Sequence[dict[str, Any]], key: str):
    """(epochs, values) of a scalar key, keeping positive finite values only (log axes)."""
    ep, val = [], []
    for e in epochs_values:
        v = e.get(key)
        if isinstance(v, (int, float)) and np.isfinite(v) and v > 0:
            ep.append(e["epoch"])
            val.append(float(v))
    return np.asarray(ep), np.asarray(val)


def plot_snr(path, epochs_values: Sequence[dict[str, Any]], dynamics: dict[str, Any] | None,
             num_classes: int, title: str | None = None, xscale: str = "auto") -> None:
    """SNR singular values ω_j (j 0-based, as ``snr_singular_values_j``; the largest and the
    smallest few of a long list) over epochs and ω_max/ω_min. The fitted law is drawn dashed
    only where the verdict accepts it (:func:`law_accepted`), through the clock it was fitted
    on (``dynamics["times"]``); otherwise the figure says in one line that it does not fit.

    Parameters
    ----------
    path : str or os.PathLike
        .png, .svg or .pdf.
    epochs_values : sequence of dict
        Per-epoch values holding ``epoch`` and ``snr_singular_values``.
    dynamics : dict or None
        The ``dynamics`` object of :func:`ncanalyze.core.dynamics.fit_dynamics`.
    num_classes : int
    title : str, optional
    xscale : {"auto", "linear", "log"}
        Epoch axis (see :func:`resolve_xscale`).
    """
    c = int(num_classes)
    lengths = [len(e["snr_singular_values"]) for e in epochs_values
               if e.get("snr_singular_values") is not None]
    nj = max(lengths, default=0)  # min(P, C − 1): the ω_j that can be nonzero
    ep, rows = [], []
    for e in epochs_values:
        sv = e.get("snr_singular_values")
        if sv is not None and len(sv) == nj and all(v is not None for v in sv):
            ep.append(e["epoch"])
            rows.append([float(v) for v in sv])
    fig = _figure(11.0, 4.8)
    ax_w, ax_r = fig.subplots(1, 2)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    omega = np.asarray(rows).T if ep else np.zeros((nj, 0))  # (nj, E)
    # The zeros of directions Σ_W does not resolve (snr_dropped_dims) end the list; the
    # largest and the smallest few of the others tell the story (hundreds in a language model).
    nr = int(np.sum(np.all(omega > 0, axis=1))) if ep else nj
    shown = list(range(nr)) if nr <= 10 else [*range(4), *range(nr - 4, nr)]
    colours = {j: cmap(0.9 * k / max(len(shown) - 1, 1)) for k, j in enumerate(shown)}
    curves = None
    accepted = law_accepted(dynamics)
    if ep and nr:
        ep_arr = np.asarray(ep, dtype=np.float64)
        scale = resolve_xscale([ep_arr], xscale)
        grid = epoch_grid(ep_arr.min(), ep_arr.max(), scale)
        if accepted and len(dynamics["intercepts"]) == nj:  # linear in its clock, not epochs
            clock = np.interp(grid, dynamics["epochs"], dynamics["times"])
            curves = fitted_curves(dynamics, clock, c)
        if curves is not None:
            # A poor fit can predict ω far outside the data (even 0): draw the law only where
            # it stays within a decade of the measured values, so the axes show the data.
            positive = omega[omega > 0]
            lo, hi = (positive.min() / 10, positive.max() * 10) if positive.size else (0, 0)
            with np.errstate(all="ignore"):
                curves = np.where(np.isfinite(curves) & (curves >= lo) & (curves <= hi),
                                  curves, np.nan)
        for j in shown:
            good = omega[j] > 0
            ax_w.plot(ep_arr[good], omega[j][good], "o-", ms=3.5, lw=1.2, color=colours[j],
                      label=f"j = {j}")
            if curves is not None:
                ax_w.plot(grid, curves[j], "--", lw=1.1, color=colours[j], alpha=0.9,
                          label="fitted law" if j == shown[-1] else None)
        ratio = omega[0] / omega[nr - 1]  # snr_ratio: over the resolved ω_j
        good = np.isfinite(ratio)
        ax_r.plot(ep_arr[good], ratio[good], "o-", ms=3.5, lw=1.4, color="tab:red",
                  label="measured ω$_{max}$/ω$_{min}$")
        if curves is not None:
            with np.errstate(all="ignore"):
                fitted_ratio = curves[0] / curves[nr - 1]
            ax_r.plot(grid, fitted_ratio, "--", lw=1.2, color="tab:red",
                      alpha=0.8, label="fitted law")
        ax_r.axhline(1.0, color="0.5", lw=0.8, ls=":", label="simplex ETF (ratio 1)")
    else:
        for ax in (ax_w, ax_r):
            ax.text(0.5, 0.5, "no epoch with a defined SNR", ha="center", va="center",
                    transform=ax.transAxes)
    ax_w.set_yscale("log")
    ax_w.set_ylabel("ω$_j$ = snr_singular_values_j of $\\Sigma_W^{-1/2}\\bar{M}$")
    notes = [f"the 4 largest and smallest of {nr}"] if len(shown) < nr else []
    notes += [f"{nj - nr} dropped"] if nr < nj else []
    ax_w.set_title("SNR singular values" + (f" ({'; '.join(notes)})" if notes else ""))
    ax_r.set_yscale("log")
    ax_r.set_ylabel("ω$_{max}$ / ω$_{min}$")
    ax_r.set_title("SNR spread (→ 1: simplex ETF)")
    for ax in (ax_w, ax_r):
        if ep and nr:
            epoch_axis(ax, scale, float(max(ep)), left=float(min(ep)))
        else:
            ax.set_xlabel("epoch")
        plain_log_ticks(ax)
        ax.grid(True, which="major", alpha=0.3)
        if ep and nr:  # below the axes: a legend never covers a curve
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      ncols=min(5, max(1, len(ax.get_legend_handles_labels()[1]))),
                      frameon=False)
    heading = literal(title or "SNR dynamics")
    if dynamics and not accepted:  # one line: what the verdict says, no curve it rejects
        line = dynamics.get("summary") or dynamics.get("verdict", "")
        heading += "\n" + literal(line.replace("dynamics: ", "no fitted law drawn: "))
    fig.suptitle(heading, fontsize=9.5)
    _save(fig, path)


DECOMPOSE_LINES = (
    ("loss_nc1", "L$_{NC1}$ (within-class variability)", "tab:blue", "-"),
    ("loss_nc23", "L$_{NC2/3}$ (means/classifier ≠ ETF)", "tab:orange", "-"),
    ("loss_ls_perp", "L$^{\\perp}_{LS}$ (classifier ≠ least squares)", "tab:green", "-"),
    ("loss", "total loss L", "black", ":"),
)


def plot_decompose(path, epochs_values: Sequence[dict[str, Any]], title: str | None = None,
                   xscale: str = "auto", cross_entropy: bool = False) -> None:
    """The three terms of the MSE decomposition and the loss over epochs (log scale); for a
    run trained with cross-entropy, a second title line says what the terms measure there.

    Parameters
    ----------
    path : str or os.PathLike
        .png, .svg or .pdf.
    epochs_values : sequence of dict
        Per-epoch values holding ``epoch`` and the ``decompose`` keys.
    title : str, optional
    xscale : {"auto", "linear", "log"}
        Epoch axis (see :func:`resolve_xscale`).
    cross_entropy : bool
        The run was trained with cross-entropy (its ``loss`` attribute).
    """
    all_epochs = np.asarray([e["epoch"] for e in epochs_values], dtype=np.float64)
    fig = _figure(7.0, 4.6)
    ax = fig.subplots()
    drawn = 0
    for key, label, colour, style in DECOMPOSE_LINES:
        ep, val = _series(epochs_values, key)
        if ep.size:
            ax.plot(ep, val, style, marker="o" if style == "-" else None, ms=3.5, lw=1.5,
                    color=colour, label=label)
            drawn += 1
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2,
                  frameon=False)  # below the axes: never over a curve
    else:
        ax.text(0.5, 0.5, "no positive loss values to draw", ha="center", va="center",
                transform=ax.transAxes)
    if all_epochs.size:
        epoch_axis(ax, resolve_xscale([all_epochs], xscale), float(all_epochs.max()),
                   left=float(all_epochs.min()))
    else:
        ax.set_xlabel("epoch")
    ax.set_ylabel("loss term (log scale)")
    ax.grid(True, which="major", alpha=0.3)
    heading = literal(title or "MSE decomposition (Han et al. Thm. 1–2)")
    if cross_entropy:
        heading += ("\ncross-entropy run: L and L$^{\\perp}_{LS}$ are its classifier's MSE "
                    "(they grow with the logit scale)")
    ax.set_title(heading, fontsize=10)
    _save(fig, path)
