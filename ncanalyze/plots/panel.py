"""The standard Neural Collapse figure panel over epochs (in the style of Papyan et al. 2020).

Eight panels: accuracy (train, and test from a test split or the loop's ``test_acc``), NC1
(log), equinorm of means and weights, equiangularity, max-equiangularity, self-duality (log),
NCC mismatch, and the simplex-ETF / orthogonal-frame distances of the class means and of the
classifier rows (linear: they stay within about 0.3–1.5). ``compare`` overlays several runs:
each run has one colour in every panel; within a panel, class means are solid and classifier
weights dashed. Epochs are on a log axis when they span two decades (``xscale="auto"``).

The panel draws from results (:func:`series_from_epochs` of per-epoch values); it never opens
a run. matplotlib is imported only when drawing, through its object-oriented API with the Agg
canvas; the file is written atomically and its format follows the extension (.png, .svg, .pdf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_path
from ..errors import UsageError
from .central_path import epoch_axis, plain_log_ticks, plot_format, resolve_xscale
from .text import literal

#: Colour-blind-safe palette (Okabe & Ito), one colour per run.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")


@dataclass
class RunSeries:
    """Per-epoch metric values of one run, as built by :func:`series_from_epochs`."""

    label: str
    epochs: np.ndarray
    values: dict[str, np.ndarray]
    loss: str | None

    def get(self, key: str) -> np.ndarray | None:
        v = self.values.get(key)
        return None if v is None or np.all(np.isnan(v)) else v


#: (title, y label, log y, [(key, style name)]) of each panel, in reading order.
PANELS: tuple[tuple[str, str, bool, tuple[tuple[str, str], ...]], ...] = (
    ("Accuracy (train and test)", "accuracy", False,
     (("accuracy", "train"), ("test_accuracy", "test"))),
    ("NC1: within-class variability", r"tr$(\Sigma_W \Sigma_B^\dagger)/C$", True,
     (("nc1", "means"),)),
    ("Equinorm", "std / mean of norms", False,
     (("equinorm_means", "means"), ("equinorm_weights", "weights"))),
    ("Equiangularity", "std of cosines", False,
     (("equiangle_means", "means"), ("equiangle_weights", "weights"))),
    ("Maximal angle", r"mean $|\cos + 1/(C-1)|$", False,
     (("maxangle_means", "means"), ("maxangle_weights", "weights"))),
    ("NC3: self-duality", r"$\|W^T/\|W\| - \bar M/\|\bar M\|\|^2$", True,
     (("self_duality", "weights"),)),
    ("NC4: NCC mismatch", "fraction of samples", False, (("ncc_mismatch", "means"),)),
    ("ETF / orthogonal-frame distance", "distance", False,
     (("etf_distance_means", "ETF"), ("of_distance_means", "OF"),
      ("etf_distance_weights", "ETF weights"), ("of_distance_weights", "OF weights"))),
)

_STYLES = {"means": "-", "train": "-", "ETF": "-", "weights": "--", "test": ":", "OF": ":",
           "ETF weights": "--", "OF weights": "-."}
_STYLE_NAMES = {"means": "class means (solid)", "weights": "classifier W (dashed)",
                "train": "train", "test": "test", "ETF": "ETF, means", "OF": "OF, means",
                "ETF weights": "ETF, W", "OF weights": "OF, W"}


def series_from_epochs(epochs: Sequence[dict[str, Any]], label: str,
                       loss: str | None = None) -> RunSeries:
    """The panel's series of one run from its per-epoch metric values.

    Parameters
    ----------
    epochs : sequence of dict
        Per-epoch values as the ``metrics`` command computes them (each holds ``"epoch"``;
        nested ``scalars`` may hold the training loop's ``test_acc``).
    label : str
        Legend label.
    loss : str, optional
        The run's ``loss`` attribute (shown in the legend).
    """
    rows = list(epochs)
    keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float))}
    values = {k: np.array([_num(r.get(k)) for r in rows]) for k in keys if k != "epoch"}
    # Test accuracy: measured on a test split when the run has one, else the training loop's
    # own record of it.
    candidates = [[_num(((r.get("splits") or {}).get(name) or {}).get("accuracy"))
                   for r in rows] for name in ("test", "val", "valid", "validation")]
    candidates += [[_num((r.get("scalars") or {}).get(name)) for r in rows]
                   for name in ("test_acc", "test_accuracy")]
    for col in candidates:
        if not np.all(np.isnan(col)):
            values["test_accuracy"] = np.array(col)
            break
    return RunSeries(label, np.array([r["epoch"] for r in rows]), values, loss)


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None else float("nan")


def draw_panel(series: Sequence[RunSeries], path, *, title: str | None = None,
               xscale: str = "auto") -> None:
    """Draw the NC panel of one or more runs and write it to ``path``.

    Parameters
    ----------
    series : sequence of RunSeries
        One per run; the first is the reference, the others are overlaid (``--compare``).
    path : str or os.PathLike
        .png, .svg or .pdf.
    title : str, optional
        Figure title (default: the run labels).
    xscale : {"auto", "linear", "log"}
        ``auto`` uses a log epoch axis when the epochs span two decades or more (e.g. the
        log-spaced steps of ``simulate``); epoch 0 is then drawn at the axis' left edge via a
        symmetric-log scale.
    """
    if not series:
        raise UsageError("nothing to plot")
    fmt = plot_format(path, "--output")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    scale = resolve_xscale([s.epochs for s in series], xscale)
    fig = Figure(figsize=(13.5, 6.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4, sharex=True)
    used_styles: dict[str, None] = {}
    for ax, (ptitle, ylabel, logy, curves) in zip(axes.flat, PANELS):
        drawn = False
        local_styles: dict[str, None] = {}
        for i, s in enumerate(series):
            colour = PALETTE[i % len(PALETTE)]
            for key, style in curves:
                y = s.get(key)
                if y is None:
                    continue
                x = s.epochs.astype(float)
                keep = np.isfinite(y) & ((y > 0) if logy else True)
                if not np.any(keep):
                    continue
                ax.plot(x[keep], y[keep], _STYLES[style], color=colour, lw=1.6,
                        marker="o" if keep.sum() <= 12 else None, ms=3)
                drawn = True
                if style in ("means", "weights") and len(curves) > 1:
                    used_styles.setdefault(style)
                elif len(curves) > 1:
                    local_styles.setdefault(style)
        ax.set_title(ptitle, fontsize=10.5)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8.5)
        ax.grid(True, which="major", alpha=0.3, lw=0.6)
        if logy and drawn:
            ax.set_yscale("log")
            plain_log_ticks(ax)
            ax.grid(True, which="minor", axis="y", alpha=0.12, lw=0.4)
        if ptitle.startswith("Accuracy"):
            ax.set_ylim(-0.02, 1.04)
        if ptitle.startswith("NC4"):
            ax.set_ylim(bottom=-0.02)
        if len(local_styles) > 1:  # train/test or ETF/OF: a small key inside the panel
            ax.legend(handles=[Line2D([], [], color="0.35", ls=_STYLES[st], lw=1.4,
                                      label=_STYLE_NAMES[st]) for st in local_styles],
                      fontsize=8, frameon=False, loc="best")
        if not drawn:
            ax.text(0.5, 0.5, "not in the file(s)", ha="center", va="center",
                    transform=ax.transAxes, color="0.5", fontsize=9)
    right = max(float(s.epochs.max()) for s in series)
    left = min(float(s.epochs.min()) for s in series)
    for i, ax in enumerate(axes.flat):
        epoch_axis(ax, scale, right, label=i >= 4, left=left)
    handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], lw=2.2,
                      label=literal(s.label + (f" ({s.loss})" if s.loss and s.loss not in s.label
                                               else "")))
               for i, s in enumerate(series)]
    handles += [Line2D([], [], color="0.35", ls=_STYLES[st], lw=1.6, label=_STYLE_NAMES[st])
                for st in used_styles]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
               fontsize=9, frameon=False)
    names = ", ".join(s.label for s in series)
    fig.suptitle(literal(title or f"Neural collapse over training: {names}"), fontsize=12)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150)
