"""The shared body of ``metrics``, ``decompose``, ``snr`` and ``report``: compute, print, gate.

A command passes every option by keyword; the ones that are fields of
:class:`~ncanalyze.analysis.Settings` become the settings, the others say how to present the
results (format, output file, gates, figure).
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console

from ..analysis import Analysis, Settings, resolve_time_axis, snr_dynamics
from ..atomic import atomic_text, check_outputs
from ..errors import UsageError, escape
from ..gates import evaluate_gates, parse_gate, producible_keys, validate_gates
from . import render
from .boundary import err_console, flags, warn

#: What each command computes (the ``quantities`` of its Settings).
QUANTITIES = {"metrics": ("metrics",), "decompose": ("decompose",), "snr": ("snr",),
              "report": ("metrics", "decompose", "snr")}
#: Commands whose run-level results include the SNR dynamics fit.
WITH_DYNAMICS = ("snr", "report")

_SETTINGS_FIELDS = {f.name for f in dataclasses.fields(Settings)}


def make_settings(command: str, **options: Any) -> Settings:
    """``Settings(**options)`` for ``command``; list options become tuples."""
    unknown = sorted(set(options) - _SETTINGS_FIELDS)
    if unknown:  # a programming error: a command passed an option nobody consumes
        raise TypeError(f"{command}: options {unknown} are not Settings fields")
    if "splits" in options:
        options["splits"] = tuple(options["splits"] or ())
    return Settings(quantities=QUANTITIES[command], **options)


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


def _run_results(command: str, analysis: Analysis, epochs: list[dict], time: str
                 ) -> dict[str, Any]:
    """Run-level results of ``command`` (the SNR dynamics fit of snr/report)."""
    if command not in WITH_DYNAMICS:
        return {}
    return {"dynamics": snr_dynamics(analysis, epochs, time)}


def _footer(extra: dict[str, Any]) -> list[str]:
    dynamics = extra.get("dynamics")
    return [dynamics["verdict"]] if dynamics else []


def run_command(command: str, *, file: Path, fmt: str, output_path: Path | None,
                fail_if: list[str] | None, gate: str, plot: Path | None = None,
                time: str = "auto", **options: Any) -> int:
    """Compute ``command`` on ``file``, print it in ``fmt``, evaluate the gates.

    Parameters
    ----------
    command : {"metrics", "decompose", "snr", "report"}
    file : Path
        The run file.
    fmt : str
        One of :data:`ncanalyze.cli.render.FORMATS`.
    output_path : Path or None
        Write there (atomically) instead of stdout.
    fail_if : list of str or None
        ``--fail-if`` conditions; ``gate`` says on which epochs.
    plot : Path or None
        decompose/snr: also draw the command's figure there.
    time : str
        snr/report: the time axis of the dynamics fit (``--time``).
    **options
        The :class:`~ncanalyze.analysis.Settings` fields, by keyword.

    Returns
    -------
    int
        The exit code: 1 when a gate holds, else 0.
    """
    if fmt not in render.FORMATS:
        raise UsageError(f"--format must be one of {', '.join(render.FORMATS)}, got {fmt!r}")
    gates = [parse_gate(g) for g in (fail_if or [])]
    if gate not in ("last", "all"):
        raise UsageError(f"--gate must be 'last' or 'all', got {gate!r}")
    if plot is not None:
        from ..plots.central_path import plot_format

        plot_format(plot)
    check_outputs({"--output": output_path, "--plot": plot}, [file])
    settings = make_settings(command, **options)
    quiet = flags().quiet
    warnings: list[str] = []
    epochs: list[dict[str, Any]] = []
    with Analysis(file, settings) as analysis:
        validate_gates(gates, producible_keys(settings, analysis.run.info))
        warnings.extend(analysis.run_warnings)
        for w in analysis.run_warnings:
            warn(w)
        header = analysis.header
        classes = analysis.run.info.num_classes
        if command in WITH_DYNAMICS:
            resolve_time_axis(analysis.run, time)  # a clock the file lacks: exit 2 before work
        sink = atomic_text(output_path) if output_path is not None else nullcontext(sys.stdout)
        with sink as out, _Progress(not quiet, len(analysis.epochs)) as progress:
            for result in analysis:
                epochs.append(result.values)
                warnings.extend(result.warnings)
                for w in result.warnings:
                    warn(w)
                if fmt == "jsonl":
                    render.write_stream(out, render.jsonl_line(result.values))
                progress.advance()
            extra = _run_results(command, analysis, epochs, time)
            verdicts = evaluate_gates(gates, epochs, gate) if gates else []
            if fmt == "json":
                out.write(render.json_document(header, command, epochs, warnings, extra))
            elif fmt == "csv":
                out.write(render.csv_text(epochs))
            elif fmt == "markdown":
                out.write(render.markdown_text(header, command, epochs, verdicts))
                for line in _footer(extra):
                    out.write(f"\n{line}\n")
            elif fmt == "table":
                tty = out is sys.stdout and sys.stdout.isatty()
                console = Console(file=out, width=None if tty else 160, highlight=False,
                                  force_terminal=None if tty else False)
                title = f"ncanalyze {command}: {header['file']} (C={header['classes']}, " \
                        f"N={header['samples']}, P={header['features']})"
                render.render_tables(epochs, title, console)
                for line in _footer(extra):
                    console.print(line)
    code = 0
    for v in verdicts:
        if v.holds:
            err_console.print(f"ncanalyze: fail-if {escape(v.describe())}", markup=False)
            code = 1
        elif not quiet:
            err_console.print(f"ncanalyze: fail-if {escape(v.describe())}", markup=False)
    if plot is not None:
        _draw(command, plot, file, epochs, extra, classes)
    return code


def _draw(command: str, plot: Path, file: Path, epochs: list[dict], extra: dict[str, Any],
          classes: int) -> None:
    from ..plots.central_path import plot_decompose, plot_snr

    if command == "decompose":
        plot_decompose(plot, epochs, title=f"MSE decomposition: {file.name}")
    elif command == "snr":
        plot_snr(plot, epochs, extra.get("dynamics"), classes,
                 title=f"SNR dynamics: {file.name}")
