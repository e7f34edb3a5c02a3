"""The shared body of ``metrics``, ``decompose``, ``snr`` and ``report``: present what the
library computes (:func:`ncanalyze.api.run_command`), and gate.

A command parses its options into :class:`~ncanalyze.settings.Settings` by name and a
:class:`View` (format, output file, gates, figure, table keys); what a command computes,
``--follow`` and the dynamics fit live in :mod:`ncanalyze.api`.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console

from ..analysis import Analysis
from ..api import CommandResult, check_follow, run_command as compute_command
from ..settings import Settings
from ..atomic import atomic_text, check_outputs
from ..errors import InputError, UsageError, escape
from ..gates import evaluate_gates, parse_gate, producible_keys, validate_gates
from ..results import flatten, merge_warnings
from . import render
from .boundary import EXIT_INTERRUPTED, err_console, flags, warn
from .progress import EpochProgress, progress_console
from .terminal import check_key_patterns, render_view, stream_line


#: A (merged) per-epoch warning that a key is undefined.
_UNDEFINED = re.compile(r"^epochs? [^:]+: (?:(?:split|layer) [^:]+: )?\S+ is undefined: ")
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
class View:
    """How a command presents its results (the options that are not :class:`Settings`).

    Attributes
    ----------
    fmt : str
        One of :data:`ncanalyze.cli.render.FORMATS`.
    output_path : Path or None
        Write there (atomically) instead of stdout.
    fail_if : list of str or None
        ``--fail-if`` conditions; ``gate`` says on which epochs.
    plot : Path or None
        decompose/snr: also draw the command's figure there, epochs on an ``xscale`` axis.
    keys, show_all
        ``--keys`` / ``--all`` of the table view.
    """

    fmt: str = "table"
    output_path: Path | None = None
    fail_if: list[str] | None = None
    gate: str = "last"
    plot: Path | None = None
    xscale: str = "auto"
    keys: list[str] | None = None
    show_all: bool = False


def run_command(command: str, file: Path, settings: Settings, view: View, *,
                time: str = "auto", follow: bool = False, timeout: float | None = None) -> int:
    """Compute ``command`` on ``file``, print it as ``view`` says, evaluate the gates.

    Parameters
    ----------
    command : {"metrics", "decompose", "snr", "report"}
    file : Path
        The run file.
    settings : Settings
        What to compute (:func:`ncanalyze.api.settings_for`).
    view : View
    time : str
        snr/report: the time axis of the dynamics fit (``--time``).
    follow, timeout
        ``--follow``: process epochs as a writer appends them, until it closes the file,
        ``timeout`` seconds pass, a gate holds or Ctrl-C.

    Returns
    -------
    int
        The exit code: 1 when a gate holds, 130 after Ctrl-C while following, else 0.
    """
    fmt, output_path, fail_if, gate = view.fmt, view.output_path, view.fail_if, view.gate
    plot, xscale, keys, show_all = view.plot, view.xscale, view.keys, view.show_all
    if fmt not in render.FORMATS:
        raise UsageError(f"--format must be one of {', '.join(render.FORMATS)}, got {fmt!r}")
    gates = [parse_gate(g) for g in (fail_if or [])]
    if gate not in ("last", "all"):
        raise UsageError(f"--gate must be 'last' or 'all', got {gate!r}")
    check_follow(follow, timeout)
    from ..plots.central_path import check_xscale, plot_format

    check_xscale(xscale)
    if plot is not None:
        plot_format(plot)
    outputs = {"--output": output_path, "--plot": plot}
    check_outputs(outputs, [file])
    quiet = flags().quiet

    def prepare(analysis: Analysis) -> None:
        """Checks that need the file, before any epoch is computed."""
        check_outputs(outputs, analysis.run.inputs)  # every file the reads may open
        catalogue = producible_keys(settings, analysis.run.info)
        validate_gates(gates, catalogue)
        if keys and fmt == "table":
            check_key_patterns(keys, catalogue)
    sink = atomic_text(output_path) if output_path is not None else nullcontext(sys.stdout)
    with sink as out:
        tty = out is sys.stdout and sys.stdout.isatty()
        console = Console(file=out, highlight=False, force_terminal=None if tty else False,
                          soft_wrap=False)
        live: list = []
        if follow:
            outcome = _follow(command, file, settings, gates, fmt, out, console, timeout, time,
                              prepare, keys, live)
        else:
            outcome = _compute(command, file, settings, fmt, out,
                               quiet or (fmt == "jsonl" and tty), time, prepare)
        extra = outcome.extra
        verdicts = live or (
            evaluate_gates(gates, outcome.epochs, gate) if gates and outcome.epochs else [])
        # Each warning once, in one place: identical per-epoch warnings merged into one line
        # naming the epochs; the table view shows them under the table, other formats on
        # stderr (run warnings as soon as the run is open, the rest at the end); while
        # following, each distinct warning was said on stderr when it first appeared.
        raw = outcome.warnings[len(outcome.run_warnings):]
        epoch_warnings = merge_warnings(raw, [int(e["epoch"]) for e in outcome.epochs])
        in_table = fmt == "table" and not follow
        # Under the table an undefined shown key gets its reason next to it (render_view).
        table_notes = outcome.run_warnings + [w for w in epoch_warnings
                                              if not _UNDEFINED.search(w)]
        notes = ([f"warning: {w}" for w in (table_notes if in_table else [])]
                 + _verdict_lines(extra, outcome.loss))
        if not follow and not in_table:
            for w in epoch_warnings:
                warn(w)
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
                        keys=keys, show_all=show_all, notes=notes, warnings=raw)
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
        _draw(command, plot, file, outcome, extra, xscale)
    if outcome.stopped_by == "interrupt":
        return code or EXIT_INTERRUPTED
    unfinished = _unfinished(file, timeout, outcome.epochs) if (
        outcome.stopped_by == "timeout") else ""
    if unfinished:  # a dead (or slow) writer must not pass a CI gate silently
        err_console.print(f"ncanalyze: error: {escape(unfinished)}", markup=False)
        return code or InputError.exit_code
    return code


def _opened(analysis: Analysis, fmt: str, follow: bool) -> None:
    if fmt != "table" or follow:  # the table view says them under the table
        for w in analysis.run_warnings:  # said once per run, before any epoch
            warn(w)


def _compute(command: str, file: Path, settings: Settings, fmt: str, out, quiet: bool,
             time: str, prepare) -> CommandResult:
    """Every selected epoch, with a transient progress bar on a terminal's stderr."""
    progress = EpochProgress(None if quiet else progress_console())
    with ExitStack() as stack:
        def opened(analysis: Analysis) -> None:
            _opened(analysis, fmt, follow=False)
            progress.plan(analysis)
            stack.enter_context(progress.start(len(analysis.epochs)))

        def epoch_done(result) -> None:
            _stream(result, fmt, out)
            progress.epoch_done()

        return compute_command(command, file, settings, time=time, check=prepare,
                               on_open=opened, on_epoch=epoch_done, progress=progress.work)


def _stream(result, fmt: str, out) -> None:
    if fmt == "jsonl":
        render.write_stream(out, render.jsonl_line(result.values))


def _follow(command: str, file: Path, settings: Settings, gates, fmt: str, out,
            console: Console, timeout: float | None, time: str, prepare,
            keys: list[str] | None, live: list) -> CommandResult:
    """Epochs as a writer appends them; stops at close, timeout, a holding gate (its verdicts
    go to ``live``) or Ctrl-C."""
    classes, features = [], []

    def opened(analysis: Analysis) -> None:
        _opened(analysis, fmt, follow=True)
        classes.append(analysis.run.info.num_classes)
        features.append(analysis.run.info.num_features)

    said: set[str] = set()

    def epoch_done(result) -> bool:
        for w in result.warnings:  # each distinct warning once, when it first appears
            text = w.split(": ", 1)[-1]
            if text not in said:
                said.add(text)
                warn(f"{w} (not repeated for later epochs)")
        _stream(result, fmt, out)
        if fmt == "table":
            stream_line(console, command, flatten(result.values), classes[0], keys,
                        features[0])
        live.extend(v for v in evaluate_gates(gates, [result.values], "last") if v.holds)
        return bool(live)

    outcome = compute_command(command, file, settings, time=time, follow=True,
                              timeout=timeout, check=prepare, on_open=opened,
                              on_epoch=epoch_done, stop_on_interrupt=True)
    if outcome.stopped_by == "interrupt":
        err_console.print("ncanalyze: stopped following (interrupted)", markup=False)
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


def _draw(command: str, plot: Path, file: Path, outcome, extra: dict[str, Any],
          xscale: str) -> None:
    from ..plots.central_path import plot_decompose, plot_snr
    from ..run_checks import CE_NAMES

    if command == "decompose":
        plot_decompose(plot, outcome.epochs, title=f"MSE decomposition: {file.name}",
                       xscale=xscale, cross_entropy=str(outcome.loss).lower() in CE_NAMES)
    elif command == "snr":
        plot_snr(plot, outcome.epochs, extra.get("dynamics"), outcome.classes,
                 title=f"SNR dynamics: {file.name}", xscale=xscale)
    else:
        return
    if not flags().quiet:  # as `plot` does
        err_console.print(f"ncanalyze: wrote {escape(plot)}", markup=False)
