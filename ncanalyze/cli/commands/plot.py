"""``ncanalyze plot``: the standard NC figure panel of one or more runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ...api import panel_series
from ...settings import Settings
from ...atomic import check_outputs
from ...errors import UsageError, escape
from ..boundary import err_console, flags
from ..options import (AllowExternalOpt, BackendOpt, EpochsOpt, GlobalMeanOpt, RunFile,
                       XscaleOpt)

EPILOG = ("Example: ncanalyze plot examples/digits_mlp.h5 -o nc.png  ·  "
          "ncanalyze plot mse.h5 --compare ce.h5 --label MSE --label CE -o mse_vs_ce.pdf")


def plot(file: RunFile,
         output_path: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, "
                                                   ".svg or .pdf (written atomically).")],
         compare: Annotated[Optional[list[Path]], typer.Option(
             "--compare", help="Overlay another run (repeatable), e.g. the CE twin of an MSE "
                               "run.", readable=False)] = None,
         label: Annotated[Optional[list[str]], typer.Option(
             "--label", help="Legend label per run, in order (repeatable; default: file "
                             "names).")] = None,
         title: Annotated[Optional[str], typer.Option("--title", help="Figure title.")] = None,
         xscale: XscaleOpt = "auto",
         epochs: EpochsOpt = None, backend: BackendOpt = "auto",
         global_mean: GlobalMeanOpt = "samples",
         allow_external: AllowExternalOpt = False) -> int:
    """Draw the standard NC panel over epochs (Papyan et al. style): accuracy, NC1, equinorm,
    equiangularity, maximal angle, self-duality, NCC mismatch, ETF/OF distances."""
    from ...plots.central_path import check_xscale, plot_format
    from ...plots.panel import draw_panel

    paths = [file, *(compare or [])]
    labels = list(label or [])
    if labels and len(labels) != len(paths):
        raise UsageError(f"--label given {len(labels)} times for {len(paths)} runs")
    plot_format(output_path, "--output")  # fail on bad usage before any computation
    check_xscale(xscale)
    check_outputs({"--output": output_path}, paths)
    settings = Settings(quantities=("metrics",), epochs=epochs, backend=backend,
                        global_mean=global_mean, allow_external=allow_external)
    series = [panel_series(p, settings, labels[i] if labels else None,
                           {"--output": output_path}) for i, p in enumerate(paths)]
    draw_panel(series, output_path, title=title, xscale=xscale)
    if not flags().quiet:
        err_console.print(f"ncanalyze: wrote {escape(output_path)}", markup=False)
    return 0
