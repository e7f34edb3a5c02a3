"""The options the commands share, as ``Annotated`` aliases (one definition, one help text).

A command's signature is built from these; its parameter names are the keyword names of
:class:`ncanalyze.analysis.Settings` where the option is a setting (so the command can pass
them on by keyword), and the names :func:`ncanalyze.cli.runner.run_command` takes otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

RunFile = Annotated[Path, typer.Argument(help="Run file (HDF5, docs/FORMAT.md).",
                                         show_default=False)]
EpochsOpt = Annotated[Optional[str], typer.Option(
    "--epochs", "-e", help="Epochs: comma list of numbers, inclusive ranges a:b, 'last'.")]
BackendOpt = Annotated[str, typer.Option(
    "--backend", help="Array backend: auto (CuPy, else torch on CUDA, else NumPy), numpy, "
                      "cupy, torch, torch:cpu, torch:cuda[:N].")]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help="Precision of the per-chunk products (float64 or float32); chunks are "
                    "always summed in float64.")]
FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", help="Output: table, json, jsonl, csv, markdown.")]
OutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write the output to FILE (atomically) instead of stdout.")]
FailIfOpt = Annotated[Optional[list[str]], typer.Option(
    "--fail-if", help="Exit 1 if KEY OP NUMBER holds, e.g. 'nc1>0.05' (repeatable); list "
                      "keys one element at a time, e.g. 'snr_singular_values_0<10'.")]
GateOpt = Annotated[str, typer.Option(
    "--gate", help="Evaluate --fail-if on the 'last' selected epoch or on 'all'.")]
GlobalMeanOpt = Annotated[str, typer.Option(
    "--global-mean", help="μ_G: 'samples' (sample-weighted) or 'classes' (mean of class means).")]
CenterWeightsOpt = Annotated[bool, typer.Option(
    "--center-weights", help="Subtract the mean classifier row before etf_distance_weights.")]
ChunkRowsOpt = Annotated[Optional[int], typer.Option(
    "--chunk-rows", help="Rows per read (default: about 16 MiB per chunk; at most 1 GiB).")]
AllowExternalOpt = Annotated[bool, typer.Option(
    "--allow-external", help="Follow external links/storage and virtual datasets (refused by "
                             "default: untrusted files).")]
SplitsOpt = Annotated[Optional[list[str]], typer.Option(
    "--split", help="Also compute the metrics of /splits/NAME (repeatable).")]
LayersOpt = Annotated[bool, typer.Option(
    "--layers", help="Also compute depth-wise NC1/NC2 of every /layers/NAME.")]
WeightDecayOpt = Annotated[Optional[float], typer.Option(
    "--weight-decay", help="λ of the MSE loss (default: the file's weight_decay, else 0).")]
RidgeOpt = Annotated[Optional[float], typer.Option(
    "--ridge", help="Use Σ_W + ε·I for the SNR on every epoch (default: none; a singular Σ_W "
                    "is handled on its support, docs/CENTRAL_PATH.md §2).")]
TimeOpt = Annotated[str, typer.Option(
    "--time", help="Time axis of the SNR dynamics fit: auto (cumulative learning rate when "
                   "/scalars/lr exists, else epoch), lr, epoch, steps, or a /scalars name.")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", help="Processes computing whole epochs in parallel (default: all cores when "
                      "several large epochs are selected; 1: no worker processes; capped at "
                      "the cores).")]
DaskOpt = Annotated[Optional[str], typer.Option(
    "--dask", metavar="ADDRESS", help="Compute the epochs on a dask.distributed cluster, e.g. "
                                      "tcp://scheduler:8786 (the file must be readable there).")]
PlotOpt = Annotated[Optional[Path], typer.Option(
    "--plot", help="Also draw a figure to FILE (.png, .svg or .pdf, by extension).")]

OutFile = Annotated[Path, typer.Argument(help="Run file to write (HDF5).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")]
