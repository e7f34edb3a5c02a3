"""The shared body of ``metrics``, ``decompose``, ``snr`` and ``report``: compute, print, gate.

A command passes every option by keyword; the ones that are fields of
:class:`~ncanalyze.analysis.Settings` become the settings, the others say how to present the
results (format, output file, gates, figure, view) and whether to ``--follow`` a run that is
still being written.
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from ..analysis import Analysis
from ..run_dynamics import resolve_time_axis, snr_dynamics
from ..settings import Settings
from ..atomic import atomic_text, check_outputs
from ..errors import InputError, UsageError, escape
from ..gates import evaluate_gates, parse_gate, producible_keys, validate_gates
from ..results import flatten
from . import render
from .boundary import EXIT_INTERRUPTED, err_console, flags, warn
from .progress import EpochProgress, progress_console
from .terminal import check_key_patterns, render_view, stream_line

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
    if "splits" in options:  # not given: every split of the file
        options["splits"] = tuple(options["splits"]) if options["splits"] else None
    return Settings(quantities=QUANTITIES[command], **options)


def _run_results(command: str, analysis: Analysis, epochs: list[dict], time: str
                 ) -> dict[str, Any]:
    """Run-level results of ``command`` (the SNR dynamics fit of snr/report)."""
    if command not in WITH_DYNAMICS or not epochs:
        return {}
    return {"dynamics": snr_dynamics(analysis, epochs, time)}


#: The ``loss`` attribute values of a cross-entropy run.
CE_LOSSES = ("ce", "cross_entropy", "cross-entropy", "crossentropy")


def _verdict_lines(extra: dict[str, Any], loss: str | None) -> list[str]:
    """The dynamics verdict for people: one short line (the fit's details are in ``-f json``);
    none for a cross-entropy run, where the MSE law of Han et al. does not apply."""
    dynamics = extra.get("dynamics")
    if not dynamics or (loss or "").lower() in CE_LOSSES:
        return []
    more = "; the fit: -f\u00a0json" if dynamics.get("fitted") else ""  # not split by wrapping
    return [dynamics.get("summary", dynamics["verdict"]) + more]


@dataclasses.dataclass
class _Outcome:
    """What one run of a command produced, for output and gating."""

    header: dict[str, Any] | None = None
    classes: int = 0
    loss: str | None = None
    run_warnings: list[str] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    stopped_by: str = ""  # follow: "closed", "timeout", "gate", "interrupt"
    unfinished: str = ""  # follow: why the run is incomplete when --timeout ended it
    live_verdicts: list = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # run-level results

    def opened(self, analysis: Analysis) -> None:
        """Take the run-level facts of the first opened analysis (warnings said once)."""
        self.header = analysis.header
        self.classes = analysis.run.info.num_classes
        self.loss = analysis.run.info.loss
        self.run_warnings = list(analysis.run_warnings)
        self.warnings.extend(analysis.run_warnings)
        for w in analysis.run_warnings:
            warn(w)


def run_command(command: str, *, file: Path, fmt: str, output_path: Path | None,
                fail_if: list[str] | None, gate: str, plot: Path | None = None,
                xscale: str = "auto", time: str = "auto", keys: list[str] | None = None,
                show_all: bool = False, follow: bool = False, timeout: float | None = None,
                **options: Any) -> int:
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
        decompose/snr: also draw the command's figure there, epochs on an ``xscale`` axis.
    time : str
        snr/report: the time axis of the dynamics fit (``--time``).
    keys, show_all
        ``--keys`` / ``--all`` of the table view.
    follow, timeout
        ``--follow``: process epochs as a writer appends them, until it closes the file,
        ``timeout`` seconds pass, a gate holds or Ctrl-C.
    **options
        The :class:`~ncanalyze.analysis.Settings` fields, by keyword.

    Returns
    -------
    int
        The exit code: 1 when a gate holds, 130 after Ctrl-C while following, else 0.
    """
    if fmt not in render.FORMATS:
        raise UsageError(f"--format must be one of {', '.join(render.FORMATS)}, got {fmt!r}")
    gates = [parse_gate(g) for g in (fail_if or [])]
    if gate not in ("last", "all"):
        raise UsageError(f"--gate must be 'last' or 'all', got {gate!r}")
    if timeout is not None and not follow:
        raise UsageError("--timeout applies only with --follow")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {timeout}")
    from ..plots.central_path import check_xscale, plot_format

    check_xscale(xscale)
    if plot is not None:
        plot_format(plot)
    outputs = {"--output": output_path, "--plot": plot}
    check_outputs(outputs, [file])
    settings = make_settings(command, **options)
    quiet = flags().quiet

    def prepare(analysis: Analysis) -> None:
        """Checks that need the file, before any epoch is computed."""
        check_outputs(outputs, analysis.run.inputs)  # every file the reads may open
        catalogue = producible_keys(settings, analysis.run.info)
        validate_gates(gates, catalogue)
        if keys and fmt == "table":
            check_key_patterns(keys, catalogue)
        if command in WITH_DYNAMICS:
            resolve_time_axis(analysis.run, time)  # a clock the file lacks: exit 2 before work
    sink = atomic_text(output_path) if output_path is not None else nullcontext(sys.stdout)
    with sink as out:
        tty = out is sys.stdout and sys.stdout.isatty()
        console = Console(file=out, highlight=False, force_terminal=None if tty else False,
                          soft_wrap=False)
        if follow:
            outcome = _follow(file, settings, gates, fmt, out, console, timeout, command, time,
                              prepare, keys)
        else:
            outcome = _compute(file, settings, fmt, out, quiet or (fmt == "jsonl" and tty),
                               command, time, prepare)
        extra = outcome.extra
        verdicts = outcome.live_verdicts or (
            evaluate_gates(gates, outcome.epochs, gate) if gates and outcome.epochs else [])
        notes = ([f"warning: {w}" for w in outcome.run_warnings]
                 + _verdict_lines(extra, outcome.loss))
        if outcome.header is None:  # --follow ended before the first complete epoch
            raise InputError("no complete epoch was written before following stopped "
                             "(--timeout)", file=file)
        if fmt == "json":
            out.write(render.json_document(outcome.header, command, outcome.epochs,
                                           outcome.warnings, extra))
        elif fmt == "csv":
            out.write(render.csv_text(outcome.epochs))
        elif fmt == "markdown":
            out.write(render.markdown_text(outcome.header, command, outcome.epochs, verdicts,
                                           loss=outcome.loss))
            for line in _verdict_lines(extra, outcome.loss):
                out.write(f"\n{line}\n")
        elif fmt == "table":
            render_view(console, command=command, header=outcome.header, epochs=outcome.epochs,
                        keys=keys, show_all=show_all, notes=notes, warnings=outcome.warnings)
    if fmt in ("csv", "jsonl") and not quiet:
        # No place for it in the file: say it on stderr.
        for line in _verdict_lines(extra, outcome.loss):
            err_console.print(f"ncanalyze: {escape(line)}", markup=False)
    code = 0
    for v in verdicts:
        if v.holds or not quiet:  # a gate that holds is said even with --quiet
            err_console.print(f"ncanalyze: {escape(v.describe())}", markup=False)
        if v.holds:
            code = 1
    if plot is not None and outcome.epochs:
        _draw(command, plot, file, outcome.epochs, extra, outcome.classes, xscale)
    if outcome.stopped_by == "interrupt":
        return code or EXIT_INTERRUPTED
    if outcome.unfinished:  # a dead (or slow) writer must not pass a CI gate silently
        err_console.print(f"ncanalyze: error: {escape(outcome.unfinished)}", markup=False)
        return code or InputError.exit_code
    return code


def _compute(file: Path, settings: Settings, fmt: str, out, quiet: bool, command: str,
             time: str, prepare) -> _Outcome:
    """Every selected epoch, with a transient progress bar on a terminal's stderr."""
    outcome = _Outcome()
    console = None if quiet else progress_console()
    progress = EpochProgress(console)
    with Analysis(file, settings, progress=progress.work) as analysis:
        prepare(analysis)
        outcome.opened(analysis)
        progress.plan(analysis)
        with progress.start(len(analysis.epochs)):
            for result in analysis:
                _take(outcome, result, fmt, out)
                progress.epoch_done()
        outcome.extra = _run_results(command, analysis, outcome.epochs, time)
    return outcome


def _take(outcome: _Outcome, result, fmt: str, out) -> None:
    outcome.epochs.append(result.values)
    outcome.warnings.extend(result.warnings)
    for w in result.warnings:
        warn(w)
    if fmt == "jsonl":
        render.write_stream(out, render.jsonl_line(result.values))


def _follow(file: Path, settings: Settings, gates: Sequence, fmt: str, out, console: Console,
            timeout: float | None, command: str, time: str, prepare,
            keys: list[str] | None) -> _Outcome:
    """Epochs as a writer appends them; stops at close, timeout, a holding gate or Ctrl-C."""
    from ..follow import Follower

    outcome = _Outcome()

    def opened(analysis: Analysis) -> None:
        prepare(analysis)
        outcome.opened(analysis)

    follower = Follower(file, settings, timeout=timeout, on_open=opened)
    try:
        for result in follower:
            _take(outcome, result, fmt, out)
            if fmt == "table":
                stream_line(console, command, flatten(result.values), outcome.classes, keys,
                            (outcome.header or {}).get("features"))
            held = [v for v in evaluate_gates(gates, [result.values], "last") if v.holds]
            if held:
                outcome.live_verdicts = held
                outcome.stopped_by = "gate"
                break
        else:
            outcome.stopped_by = follower.stop_reason
            if follower.stop_reason == "timeout":
                outcome.unfinished = _unfinished(file, timeout, outcome.epochs)
    except KeyboardInterrupt:
        if outcome.header is None:  # nothing to finish: one line and exit 130 (boundary)
            raise
        outcome.stopped_by = "interrupt"
        err_console.print("ncanalyze: stopped following (interrupted)", markup=False)
    if command in WITH_DYNAMICS and outcome.epochs:
        # The run-level fit over every epoch seen, from the file as it is now.
        with Analysis(file, dataclasses.replace(settings, epochs=None, workers=1,
                                                dask=None)) as analysis:
            outcome.extra = _run_results(command, analysis, outcome.epochs, time)
    return outcome


def _unfinished(file: Path, timeout: float | None, epochs: list[dict]) -> str:
    """Why a run that ``--timeout`` stopped following is incomplete ('' when it was closed)."""
    from ..follow import writer_active
    from ..lock import writer_lock_state

    if not writer_active(file):
        return ""
    last = f"epoch {epochs[-1]['epoch']}" if epochs else "no epoch"
    state, pid = writer_lock_state(file)
    who = f" (process {pid})" if pid else ""
    if state == "held":
        writer = f"its writer{who} is still running; the last epoch written is {last}"
    elif state == "stale":
        writer = (f"its writer{who} is gone without closing it (killed or crashed): it "
                  f"stopped at {last}")
    else:
        writer = f"no writer lock tells whether its writer is alive; the last epoch is {last}"
    return (f"{file}: the run was never closed — following stopped after --timeout "
            f"{timeout:g} s; {writer}")


def _draw(command: str, plot: Path, file: Path, epochs: list[dict], extra: dict[str, Any],
          classes: int, xscale: str) -> None:
    from ..plots.central_path import plot_decompose, plot_snr

    if command == "decompose":
        plot_decompose(plot, epochs, title=f"MSE decomposition: {file.name}", xscale=xscale)
    elif command == "snr":
        plot_snr(plot, epochs, extra.get("dynamics"), classes,
                 title=f"SNR dynamics: {file.name}", xscale=xscale)
    else:
        return
    if not flags().quiet:  # as `plot` does
        err_console.print(f"ncanalyze: wrote {escape(plot)}", markup=False)
