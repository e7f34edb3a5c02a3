"""The ``ncanalyze`` command line (Typer + rich). Presentation only: the work is in
:mod:`ncanalyze.analysis`; errors of the :class:`~ncanalyze.errors.NcanalyzeError` family are
turned into one stderr line and an exit code here, once.
"""

from __future__ import annotations

import functools
import sys
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from .. import __version__
from ..analysis import Analysis, Settings
from ..atomic import atomic_text, check_outputs
from ..errors import InputError, NcanalyzeError, UsageError, escape
from ..gates import evaluate_gates, parse_gate, producible_keys, validate_gates
from . import output

#: Exit code of an unexpected internal error (a bug: please report it).
EXIT_INTERNAL = 70

app = typer.Typer(
    name="ncanalyze",
    help="Measure Neural Collapse (NC1–NC4, ETF/OF geometry, MSE decomposition, SNR dynamics) "
         "from saved training runs.\n\nExit codes: 0 ok · 1 a --fail-if condition holds · "
         "2 usage error · 3 input error · 4 backend unavailable.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ncanalyze {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False):
    """Measure Neural Collapse from saved training runs."""


def report_error(exc: BaseException, debug: bool) -> int:
    """Print one line (or the traceback with ``--debug``) and return the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, NcanalyzeError):
        err_console.print(f"ncanalyze: error: {escape(exc.one_line())}", markup=False)
        return exc.exit_code
    if isinstance(exc, OSError):
        err_console.print(f"ncanalyze: error: {escape(exc)}", markup=False)
        return InputError.exit_code
    err_console.print(
        f"ncanalyze: internal error: {type(exc).__name__}: {escape(exc)} "
        "(a bug; rerun with --debug and report the traceback)", markup=False)
    return EXIT_INTERNAL


def handle_errors(fn: Callable) -> Callable:
    """Decorator: map exceptions to exit codes at the CLI boundary."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = bool(kwargs.get("debug"))
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            err_console.print("ncanalyze: interrupted")
            raise typer.Exit(130)
        except BaseException as exc:  # noqa: BLE001 - the one boundary
            raise typer.Exit(report_error(exc, debug)) from None

    return wrapper


# ---------------------------------------------------------------------- shared options
RunFile = Annotated[Path, typer.Argument(help="Run file (HDF5, SPEC §1).", show_default=False)]
EpochsOpt = Annotated[Optional[str], typer.Option(
    "--epochs", "-e", help="Epochs: comma list of numbers, inclusive ranges a:b, 'last'.")]
BackendOpt = Annotated[str, typer.Option(
    "--backend", help="Array backend: auto (CuPy if a GPU is usable), numpy, cupy.")]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help="Precision of the per-chunk products (float64 or float32); chunks are "
                    "always summed in float64.")]
FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", help="Output: table, json, jsonl, csv, markdown.")]
OutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write the output to FILE (atomically) instead of stdout.")]
FailIfOpt = Annotated[Optional[list[str]], typer.Option(
    "--fail-if", help="Exit 1 if KEY OP NUMBER holds, e.g. 'nc1>0.05' (repeatable).")]
GateOpt = Annotated[str, typer.Option(
    "--gate", help="Evaluate --fail-if on the 'last' selected epoch or on 'all'.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
GlobalMeanOpt = Annotated[str, typer.Option(
    "--global-mean", help="μ_G: 'samples' (sample-weighted) or 'classes' (mean of class means).")]
CenterWeightsOpt = Annotated[bool, typer.Option(
    "--center-weights", help="Subtract the mean classifier row before etf_distance_weights.")]
ChunkRowsOpt = Annotated[Optional[int], typer.Option(
    "--chunk-rows", help="Rows per read (default: about 16 MiB per chunk).")]
AllowExternalOpt = Annotated[bool, typer.Option(
    "--allow-external", help="Follow external links/storage and virtual datasets (refused by "
                             "default: untrusted files).")]
SplitOpt = Annotated[Optional[list[str]], typer.Option(
    "--split", help="Also compute the metrics of /splits/NAME (repeatable).")]
LayersOpt = Annotated[bool, typer.Option(
    "--layers", help="Also compute depth-wise NC1/NC2 of every /layers/NAME.")]
WeightDecayOpt = Annotated[Optional[float], typer.Option(
    "--weight-decay", help="λ of the MSE loss (default: the file's weight_decay, else 0).")]
RidgeOpt = Annotated[Optional[float], typer.Option(
    "--ridge", help="Add ε·I to a singular Σ_W for the SNR (default: none, keys null).")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", help="Processes computing whole epochs in parallel (default: all cores when "
                      "several large epochs are selected; 1: no worker processes).")]
DaskOpt = Annotated[Optional[str], typer.Option(
    "--dask", metavar="ADDRESS", help="Compute the epochs on a dask.distributed cluster, e.g. "
                                      "tcp://scheduler:8786 (the file must be readable there).")]


class _Progress:
    """A rich progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool, total_epochs: int):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[progress.description]{task.description}"),
                                BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
                                TimeRemainingColumn(), console=err_console, transient=True)
            self.task = self.bar.add_task("ncanalyze", total=total_epochs)

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def advance(self) -> None:
        if self.bar:
            self.bar.advance(self.task)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)


def run_command(command: str, settings: Settings, file: Path, fmt: str, output_path,
                fail_if, gate: str, quiet: bool, plot=None,
                finish: Callable[[Analysis, list[dict]], dict[str, Any]] | None = None,
                table_footer: Callable[[dict[str, Any]], list[str]] | None = None) -> int:
    """Shared body of metrics/decompose/snr/report: compute, print, gate. Returns exit code."""
    if fmt not in output.FORMATS:
        raise UsageError(f"--format must be one of {', '.join(output.FORMATS)}, got {fmt!r}")
    gates = [parse_gate(g) for g in (fail_if or [])]
    if gate not in ("last", "all"):
        raise UsageError(f"--gate must be 'last' or 'all', got {gate!r}")
    check_outputs({"--output": output_path, "--plot": plot}, [file])
    warnings: list[str] = []
    epochs: list[dict[str, Any]] = []
    with Analysis(file, settings) as analysis:
        validate_gates(gates, producible_keys(settings, analysis.run.info))
        warnings.extend(analysis.run_warnings)
        if not quiet:
            for w in analysis.run_warnings:
                err_console.print(f"ncanalyze: warning: {escape(w)}", markup=False)
        header = analysis.header
        sink = atomic_text(output_path) if output_path is not None else nullcontext(sys.stdout)
        with sink as out, _Progress(not quiet, len(analysis.epochs)) as progress:
            for result in analysis:
                epochs.append(result.values)
                warnings.extend(result.warnings)
                if not quiet:
                    for w in result.warnings:
                        err_console.print(f"ncanalyze: warning: {escape(w)}", markup=False)
                if fmt == "jsonl":
                    output.write_stream(out, output.jsonl_line(result.values))
                progress.advance()
            extra = finish(analysis, epochs) if finish else {}
            verdicts = evaluate_gates(gates, epochs, gate) if gates else []
            if fmt == "json":
                out.write(output.json_document(header, command, epochs, warnings, extra))
            elif fmt == "csv":
                out.write(output.csv_text(epochs))
            elif fmt == "markdown":
                out.write(output.markdown_text(header, command, epochs, verdicts))
                for line in (table_footer(extra) if table_footer else []):
                    out.write(f"\n{line}\n")
            elif fmt == "table":
                tty = out is sys.stdout and sys.stdout.isatty()
                console = Console(file=out, width=None if tty else 160, highlight=False,
                                  force_terminal=None if tty else False)
                title = f"ncanalyze {command}: {header['file']} (C={header['classes']}, " \
                        f"N={header['samples']}, P={header['features']})"
                output.render_tables(epochs, title, console)
                for line in (table_footer(extra) if table_footer else []):
                    console.print(line)
    code = 0
    for v in verdicts:
        if v.holds:
            err_console.print(f"ncanalyze: fail-if {escape(v.describe())}", markup=False)
            code = 1
        elif not quiet:
            err_console.print(f"ncanalyze: fail-if {escape(v.describe())}", markup=False)
    return code


# ---------------------------------------------------------------------- commands
@app.command(epilog="Example: ncanalyze inspect examples/digits_mlp.h5")
@handle_errors
def inspect(file: RunFile, fmt: FormatOpt = "table", allow_external: AllowExternalOpt = False,
            debug: DebugOpt = False):
    """Show a run file's layout, sizes, dtypes, epochs, class counts and problems found."""
    from ..inspection import inspect_file

    report = inspect_file(file, allow_external=allow_external)
    if fmt == "json":
        import json

        typer.echo(json.dumps(report, indent=2))
    elif fmt == "table":
        from .inspect_view import print_inspection

        tty = sys.stdout.isatty()
        print_inspection(report, Console(width=None if tty else 120, highlight=False))
    else:
        raise UsageError("inspect supports --format table or json")
    if report["problems"]:
        raise typer.Exit(3)


@app.command(epilog="Example: ncanalyze metrics run.h5 --epochs 10:200 --format json "
                    "--fail-if 'nc1>0.05'")
@handle_errors
def metrics(file: RunFile, epochs: EpochsOpt = None, backend: BackendOpt = "auto",
            dtype: DtypeOpt = "float64", fmt: FormatOpt = "table", output_path: OutputOpt = None,
            fail_if: FailIfOpt = None, gate: GateOpt = "last", split: SplitOpt = None,
            layers: LayersOpt = False, global_mean: GlobalMeanOpt = "samples",
            center_weights: CenterWeightsOpt = False, chunk_rows: ChunkRowsOpt = None,
            allow_external: AllowExternalOpt = False, workers: WorkersOpt = None,
            dask: DaskOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False):
    """NC1–NC4, equinorm/equiangle, ETF and orthogonal-frame distances per epoch (SPEC §2.2)."""
    settings = Settings(("metrics",), epochs, backend, dtype, global_mean, center_weights,
                        splits=tuple(split or ()), layers=layers, chunk_rows=chunk_rows,
                        allow_external=allow_external, workers=workers, dask=dask)
    code = run_command("metrics", settings, file, fmt, output_path, fail_if, gate, quiet)
    raise typer.Exit(code)


PlotOpt = Annotated[Optional[Path], typer.Option(
    "--plot", help="Also draw a figure to FILE (.png, .svg or .pdf, by extension).")]


def _keep_epochs(kept: dict[str, Any], with_dynamics: bool):
    """finish/table_footer hooks of decompose/snr/report: keep the epochs for --plot and fit
    the SNR dynamics of SPEC §2.4 (the ``dynamics`` object and its one-line verdict)."""

    def finish(analysis: Analysis, epochs: list[dict]) -> dict[str, Any]:
        kept["epochs"] = epochs
        kept["classes"] = analysis.run.info.num_classes
        if not with_dynamics:
            return {}
        from ..core.dynamics import fit_dynamics

        kept["dynamics"] = fit_dynamics([e["epoch"] for e in epochs],
                                        [e.get("snr_singular_values") for e in epochs],
                                        kept["classes"])
        return {"dynamics": kept["dynamics"]}

    def footer(extra: dict[str, Any]) -> list[str]:
        dynamics = extra.get("dynamics")
        return [dynamics["verdict"]] if dynamics else []

    return finish, footer


@app.command(epilog="Example: ncanalyze decompose run.h5 --weight-decay 5e-4 --plot loss.png "
                    "--fail-if 'central_path_ratio>0.1'")
@handle_errors
def decompose(file: RunFile, epochs: EpochsOpt = None, backend: BackendOpt = "auto",
              dtype: DtypeOpt = "float64", fmt: FormatOpt = "table",
              output_path: OutputOpt = None, fail_if: FailIfOpt = None, gate: GateOpt = "last",
              weight_decay: WeightDecayOpt = None, plot: PlotOpt = None,
              chunk_rows: ChunkRowsOpt = None, allow_external: AllowExternalOpt = False,
              workers: WorkersOpt = None, dask: DaskOpt = None, quiet: QuietOpt = False,
              debug: DebugOpt = False):
    """MSE loss = L_NC1 + L_NC2/3 + L⊥_LS per epoch (Han et al. Thm. 1–2, SPEC §2.3)."""
    from ..plots.central_path import plot_decompose, plot_format

    if plot is not None:
        plot_format(plot)
    settings = Settings(("decompose",), epochs, backend, dtype, weight_decay=weight_decay,
                        chunk_rows=chunk_rows, allow_external=allow_external, workers=workers,
                        dask=dask)
    kept: dict[str, Any] = {}
    finish, _ = _keep_epochs(kept, with_dynamics=False)
    code = run_command("decompose", settings, file, fmt, output_path, fail_if, gate, quiet,
                       plot=plot, finish=finish)
    if plot is not None:
        plot_decompose(plot, kept["epochs"], title=f"MSE decomposition: {file.name}")
    raise typer.Exit(code)


@app.command(epilog="Example: ncanalyze snr run.h5 --plot snr.png --format json")
@handle_errors
def snr(file: RunFile, epochs: EpochsOpt = None, backend: BackendOpt = "auto",
        dtype: DtypeOpt = "float64", fmt: FormatOpt = "table", output_path: OutputOpt = None,
        fail_if: FailIfOpt = None, gate: GateOpt = "last", ridge: RidgeOpt = None,
        global_mean: GlobalMeanOpt = "samples", plot: PlotOpt = None,
        chunk_rows: ChunkRowsOpt = None, allow_external: AllowExternalOpt = False,
        workers: WorkersOpt = None, dask: DaskOpt = None, quiet: QuietOpt = False,
        debug: DebugOpt = False):
    """Singular values of the SNR matrix Σ_W^{-1/2} M̄ per epoch and their dynamics across
    epochs (Han et al. §3.2–3.3, SPEC §2.4)."""
    from ..plots.central_path import plot_format, plot_snr

    if plot is not None:
        plot_format(plot)
    settings = Settings(("snr",), epochs, backend, dtype, global_mean, ridge=ridge,
                        chunk_rows=chunk_rows, allow_external=allow_external, workers=workers,
                        dask=dask)
    kept: dict[str, Any] = {}
    finish, footer = _keep_epochs(kept, with_dynamics=True)
    code = run_command("snr", settings, file, fmt, output_path, fail_if, gate, quiet,
                       plot=plot, finish=finish, table_footer=footer)
    if plot is not None:
        plot_snr(plot, kept["epochs"], kept["dynamics"], kept["classes"],
                 title=f"SNR dynamics: {file.name}")
    raise typer.Exit(code)


@app.command(epilog="Example: ncanalyze report run.h5 --format markdown --fail-if 'nc1>0.05' "
                    ">> \"$GITHUB_STEP_SUMMARY\"")
@handle_errors
def report(file: RunFile, epochs: EpochsOpt = None, backend: BackendOpt = "auto",
           dtype: DtypeOpt = "float64", fmt: FormatOpt = "table", output_path: OutputOpt = None,
           fail_if: FailIfOpt = None, gate: GateOpt = "last", split: SplitOpt = None,
           layers: LayersOpt = False, global_mean: GlobalMeanOpt = "samples",
           center_weights: CenterWeightsOpt = False, weight_decay: WeightDecayOpt = None,
           ridge: RidgeOpt = None, chunk_rows: ChunkRowsOpt = None,
           allow_external: AllowExternalOpt = False, workers: WorkersOpt = None,
           dask: DaskOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False):
    """metrics + decompose + snr (with the dynamics fit) in one pass over the file, for CI
    reports (SPEC §2.2–2.4)."""
    settings = Settings(("metrics", "decompose", "snr"), epochs, backend, dtype, global_mean,
                        center_weights, weight_decay=weight_decay, ridge=ridge,
                        splits=tuple(split or ()), layers=layers, chunk_rows=chunk_rows,
                        allow_external=allow_external, workers=workers, dask=dask)
    kept: dict[str, Any] = {}
    finish, footer = _keep_epochs(kept, with_dynamics=True)
    code = run_command("report", settings, file, fmt, output_path, fail_if, gate, quiet,
                       finish=finish, table_footer=footer)
    raise typer.Exit(code)


from .workflow import register as _register_workflow  # noqa: E402
_register_workflow(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ncanalyze")


if __name__ == "__main__":  # pragma: no cover
    main()
