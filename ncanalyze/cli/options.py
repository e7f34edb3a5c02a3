"""The options the commands share, as ``Annotated`` aliases (one definition, one help text).

A command's signature is built from these; its parameter names are the field names of
:class:`ncanalyze.settings.Settings` where the option is a setting and of
:class:`ncanalyze.cli.runner.View` where it says how to present, so the command passes each
on by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..plots.central_path import XSCALES
from .render import FORMATS

INSPECT_FORMATS = ("table", "json")
KEYS_FORMATS = ("table", "json", "markdown")
GATES = ("last", "all")
DTYPES = ("float64", "float32")
GLOBAL_MEANS = ("samples", "classes")

#: The choices of every option that takes one, by parameter name: each is listed in the
#: option's help and tests/cli/test_cli_view.py runs every command with each of them (a command
#: module may override an entry in its own ``CHOICES``).
CHOICES = {"fmt": FORMATS, "gate": GATES, "dtype": DTYPES, "global_mean": GLOBAL_MEANS,
           "xscale": XSCALES}


def _listed(choices) -> str:
    return ", ".join(choices)

#: ``readable=False``: an unreadable file is an input error (exit 3, one line naming it) from
#: the reader, not a usage box from the option parser.
RunFile = Annotated[Path, typer.Argument(help="Run file (HDF5, docs/FORMAT.md).",
                                         show_default=False, readable=False)]
EpochsOpt = Annotated[Optional[str], typer.Option(
    "--epochs", "-e", help="Epochs: comma list of numbers, inclusive ranges a:b, 'last'.", rich_help_panel='What to compute', metavar='LIST')]
BackendOpt = Annotated[str, typer.Option(
    "--backend", help="Array backend: auto (CuPy, else torch on CUDA, else NumPy), numpy, "
                      "cupy, torch, torch:cpu, torch:cuda[:N].", rich_help_panel='Computing', metavar='NAME')]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", metavar="DTYPE", help="Precision of the per-chunk products (float64 or "
                                     "float32); chunks are always summed in float64.", rich_help_panel='Computing')]
FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", metavar="FORMAT",
    help=f"Output: {_listed(FORMATS)}. table is for people (fitted to the terminal's width); "
         "jsonl streams one line per epoch; markdown is a summary for CI.", rich_help_panel='Output')]
InspectFormatOpt = Annotated[str, typer.Option(
    "--format", "-f", metavar="FORMAT", help=f"Output: {_listed(INSPECT_FORMATS)}.")]
KeysFormatOpt = Annotated[str, typer.Option(
    "--format", "-f", metavar="FORMAT", help=f"Output: {_listed(KEYS_FORMATS)}.")]
OutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write the output to FILE (atomically) instead of stdout.", rich_help_panel='Output')]
FailIfOpt = Annotated[Optional[list[str]], typer.Option(
    "--fail-if", help="Exit 1 if KEY OP NUMBER holds, e.g. 'nc1>0.05' (repeatable); list "
                      "keys one element at a time, e.g. 'snr_singular_values_0<10'.", rich_help_panel='Gates and live runs', metavar='COND')]
GateOpt = Annotated[str, typer.Option(
    "--gate", metavar="SCOPE", help="Evaluate --fail-if on the last selected epoch or on all "
                                    f"({_listed(GATES)}).", rich_help_panel='Gates and live runs')]
GlobalMeanOpt = Annotated[str, typer.Option(
    "--global-mean", metavar="MEAN",
    help="μ_G: samples (sample-weighted) or classes (mean of class means).", rich_help_panel='What to compute')]
CenterWeightsOpt = Annotated[bool, typer.Option(
    "--center-weights", help="Subtract the mean classifier row before etf_distance_weights.", rich_help_panel='What to compute')]
ChunkRowsOpt = Annotated[Optional[int], typer.Option(
    "--chunk-rows", help="Rows per read (default: about 16 MiB per chunk; at most 1 GiB).", rich_help_panel='Computing', metavar='ROWS')]
AllowExternalOpt = Annotated[bool, typer.Option(
    "--allow-external", help="Follow external links/storage and virtual datasets (refused by "
                             "default: untrusted files).", rich_help_panel='Computing')]
SplitsOpt = Annotated[Optional[list[str]], typer.Option(
    "--split", metavar="NAME", help="Splits whose metrics are computed (repeatable; default: "
                                    "every /splits/NAME of the file; 'none': no split).", rich_help_panel='What to compute')]
LayersOpt = Annotated[bool, typer.Option(
    "--layers", help="Also compute depth-wise NC1/NC2 of every /layers/NAME.", rich_help_panel='What to compute')]
WeightDecayOpt = Annotated[Optional[float], typer.Option(
    "--weight-decay", help="λ of the MSE loss (default: the file's weight_decay, else 0).", rich_help_panel='What to compute', metavar='λ')]
RidgeOpt = Annotated[Optional[float], typer.Option(
    "--ridge", help="Use Σ_W + ε·I for the SNR on every epoch (default: none; a singular Σ_W "
                    "is handled on its support, docs/CENTRAL_PATH.md §2).", rich_help_panel='What to compute', metavar='ε')]
TimeOpt = Annotated[str, typer.Option(
    "--time", help="Time axis of the SNR dynamics fit: auto (cumulative learning rate when "
                   "/scalars/lr exists, else epoch), lr, epoch, steps, or a /scalars name.", rich_help_panel='What to compute', metavar='CLOCK')]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", help="Processes computing whole epochs in parallel (default: all cores when "
                      "several large epochs are selected; 1: no worker processes; capped at "
                      "the cores).", rich_help_panel='Computing', metavar='N')]
DaskOpt = Annotated[Optional[str], typer.Option(
    "--dask", metavar="ADDRESS", help="Compute the epochs on a dask.distributed cluster, e.g. "
                                      "tcp://scheduler:8786 (the file must be readable there).", rich_help_panel='Computing')]
RequireAllClassesOpt = Annotated[bool, typer.Option(
    "--require-all-classes", help="Make a class without samples an input error (exit 3) "
                                  "instead of a warning (its class-mean keys leave it out).", rich_help_panel='What to compute')]
MemoryLimitOpt = Annotated[Optional[int], typer.Option(
    "--memory-limit", metavar="BYTES", help="Working memory to plan for (tiles are sized from "
                                            "it; default half the available memory).", rich_help_panel='Computing')]
PlotOpt = Annotated[Optional[Path], typer.Option(
    "--plot", help="Also draw a figure to FILE (.png, .svg or .pdf, by extension).", rich_help_panel='Output')]
XscaleOpt = Annotated[str, typer.Option(
    "--xscale", metavar="SCALE",
    help=f"Epoch axis of the figure: {_listed(XSCALES)}. log puts epoch 0 at the left edge; "
         "auto is log when the epochs span two decades or more.", rich_help_panel='Output')]
KeysOpt = Annotated[Optional[list[str]], typer.Option(
    "--keys", "-k", help="Table: show these keys (comma list or repeated; shell patterns such "
                         "as 'snr_*' or 'splits.*.accuracy'). Default: the command's headline "
                         "keys.", rich_help_panel='Output', metavar='KEYS')]
ShowAllOpt = Annotated[bool, typer.Option(
    "--all", "-a", help="Table: show every key and every epoch (in several blocks).", rich_help_panel='Output')]
FollowOpt = Annotated[bool, typer.Option(
    "--follow", help="Process epochs as a training job writes them (RunWriter); stop when it "
                     "closes the file, at --timeout, at the first --fail-if that holds (exit "
                     "1) or on Ctrl-C (exit 130). --epochs picks among the epochs already "
                     "written.", rich_help_panel='Gates and live runs')]
TimeoutOpt = Annotated[Optional[float], typer.Option(
    "--timeout", metavar="SECONDS", help="With --follow: stop after this many seconds (exit 3 when the run "
                                         "is still open: its writer stopped or is too slow).", rich_help_panel='Gates and live runs')]

OutFile = Annotated[Path, typer.Argument(help="Run file to write (HDF5).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")]
