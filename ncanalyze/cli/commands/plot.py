"""``ncanalyze plot``: the standard NC figure panel of one or more runs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ...analysis import Analysis
from ...settings import Settings
from ...atomic import check_outputs
from ...errors import UsageError, escape
from ..boundary import err_console, flags
from ..options import (AllowExternalOpt, BackendOpt, EpochsOpt, GlobalMeanOpt, RunFile,
                       XscaleOpt)

EPILOG = ("Example: ncanalyze plot examples/digits_mlp.h5 -o nc.png  ·  "
          "ncanalyze plot mse.h5 --compare ce.h5 --label MSE --label CE -o mse_vs_ce.pdf")


#: Splits whose accuracy the panel draws as the test accuracy (first one the run has).
TEST_SPLITS = ("test", "val", "valid", "validation")


def read_series(path: Path, settings: Settings, label: str | None = None,
                outputs: dict | None = None):
    """The panel's series of one run: its metrics at every selected epoch, and the accuracy
    on its test split when it has one (``outputs``: refused when one is a file it reads)."""
    from ...plots.panel import series_from_epochs

    analysis = Analysis(path, settings)
    try:
        check_outputs(outputs or {}, analysis.run.inputs)
    except BaseException:
        analysis.close()
        raise
    test = [name for name in TEST_SPLITS if name in analysis.run.info.splits][:1]
    if test and settings.splits is not None and test[0] not in settings.splits:
        analysis.close()
        analysis = Analysis(path, dataclasses.replace(settings,
                                                      splits=(*settings.splits, *test)))
    with analysis:
        rows = [result.values for result in analysis]
        loss = analysis.run.info.loss
    name = label or os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return series_from_epochs(rows, name, loss)


def plot(file: RunFile,
         output_path: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, "
                                                   ".svg or .pdf (written atomically).")],
         compare: Annotated[Optional[list[Path]], typer.Option(
             "--compare", help="Overlay another run (repeatable), e.g. the CE twin of an MSE "
                               "run.")] = None,
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
    series = [read_series(p, settings, labels[i] if labels else None,
                          {"--output": output_path}) for i, p in enumerate(paths)]
    draw_panel(series, output_path, title=title, xscale=xscale)
    if not flags().quiet:
        err_console.print(f"ncanalyze: wrote {escape(output_path)}", markup=False)
    return 0
