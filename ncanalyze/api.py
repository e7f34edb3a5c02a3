"""The commands as library functions: what ``metrics``, ``decompose``, ``snr`` and ``report``
compute, with ``--follow``, the SNR dynamics fit and the output document in one place.

``ncanalyze.report(path, **options)`` returns, as plain Python data, the document that
``ncanalyze report PATH -f json`` prints (docs/TUTORIAL.md, §5 "The same from Python"); :func:`metrics`,
:func:`decompose` and :func:`snr` here do the same for the other commands (reach them as
``ncanalyze.api.snr(path)``: ``ncanalyze.snr(H, y)`` is the in-memory formula on arrays).

The CLI (:mod:`ncanalyze.cli.runner`) calls :func:`run_command` with hooks for what it shows
while the epochs come (progress, streamed lines, live gates) and only renders the result.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from .analysis import Analysis
from .errors import InputError, UsageError
from .results import document
from .run_dynamics import resolve_time_axis, snr_dynamics
from .settings import EpochResult, Settings

#: What each command computes (the ``quantities`` of its Settings).
QUANTITIES = {"metrics": ("metrics",), "decompose": ("decompose",), "snr": ("snr",),
              "report": ("metrics", "decompose", "snr")}
#: Commands whose run-level results include the SNR dynamics fit.
WITH_DYNAMICS = ("snr", "report")

_SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(Settings) if f.name != "quantities")


def settings_for(command: str, **options: Any) -> Settings:
    """The :class:`Settings` of ``command`` from options named as its fields (list options
    may be any sequence; ``splits=None`` means every split of the run).

    Raises
    ------
    UsageError
        An unknown command or option name.
    """
    if command not in QUANTITIES:
        raise UsageError(f"unknown command {command!r}; choose from {', '.join(QUANTITIES)}")
    unknown = sorted(set(options) - set(_SETTINGS_FIELDS))
    if unknown:
        raise UsageError(f"{command}: unknown option(s) {', '.join(unknown)}; options are "
                         f"{', '.join(_SETTINGS_FIELDS)}, time, follow, timeout")
    if options.get("splits") is not None:
        options["splits"] = tuple(options["splits"])
    return Settings(quantities=QUANTITIES[command], **options)


@dataclasses.dataclass
class CommandResult:
    """What one command computed on one run.

    Attributes
    ----------
    command : str
    header : dict
        Run-level facts (version, file, C, N, P, settings).
    classes : int
    loss : str or None
        The run's ``loss`` attribute.
    run_warnings : list of str
        Said once per run (before any epoch).
    epochs : list of dict
        Per-epoch values in epoch order (nested for layers, splits, scalars).
    warnings : list of str
        Run warnings, then every epoch's warnings (``epoch N: …``).
    extra : dict
        Run-level results: ``dynamics`` for snr/report.
    stopped_by : str
        With ``follow``: "closed", "timeout", "stopped" (``on_epoch`` said stop) or
        "interrupt" (Ctrl-C); "" otherwise.
    """

    command: str
    header: dict[str, Any] | None = None
    classes: int = 0
    loss: str | None = None
    run_warnings: list[str] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    stopped_by: str = ""

    def opened(self, analysis: Analysis) -> None:
        self.header = analysis.header
        self.classes = analysis.run.info.num_classes
        self.loss = analysis.run.info.loss
        self.run_warnings = list(analysis.run_warnings)
        self.warnings.extend(analysis.run_warnings)

    def add(self, result: EpochResult) -> None:
        self.epochs.append(result.values)
        self.warnings.extend(result.warnings)

    def document(self) -> dict[str, Any]:
        """The document of ``-f json``: header, ``epochs``, run-level results, ``warnings``."""
        return document(self.header, self.command, self.epochs, self.warnings, self.extra)


def run_command(command: str, path, settings: Settings, *, time: str = "auto",
                follow: bool = False, timeout: float | None = None, poll: float = 0.5,
                check: Callable[[Analysis], None] | None = None,
                on_open: Callable[[Analysis], None] | None = None,
                on_epoch: Callable[[EpochResult], bool | None] | None = None,
                progress: Callable[[str, int, int], None] | None = None,
                stop_on_interrupt: bool = False) -> CommandResult:
    """Compute ``command`` on the run at ``path``.

    Parameters
    ----------
    command : {"metrics", "decompose", "snr", "report"}
    path : str or os.PathLike
    settings : Settings
        As :func:`settings_for` makes them.
    time : str
        snr/report: the clock of the dynamics fit (``--time``); checked against the run
        before any epoch is computed.
    follow : bool
        Process epochs as a writer appends them, until it closes the run, ``timeout``
        seconds pass or ``on_epoch`` returns True (epochs are computed in this process).
    check : callable, optional
        Called with the open :class:`Analysis` first, before any epoch is computed: checks
        that need the run (e.g. ``--fail-if`` keys against what it can produce).
    on_open : callable, optional
        Called with the open :class:`Analysis` once the run is checked, before any epoch is
        computed (showing its warnings, starting a progress bar).
    on_epoch : callable, optional
        Called with each :class:`EpochResult` as it is computed; returning True stops.
    progress : callable, optional
        ``progress(phase, count, size)`` as work is done (:class:`Analysis`; not when
        following).
    stop_on_interrupt : bool
        With ``follow``: Ctrl-C ends following (``stopped_by="interrupt"``) instead of
        raising ``KeyboardInterrupt``, so the epochs so far are kept (before the first
        epoch it is raised: there is nothing to finish).

    Raises
    ------
    InputError
        Following ended before the run held a complete epoch, or the run is unreadable.
    UsageError, BackendError
        As :class:`Analysis`; a ``time`` clock the run lacks.
    """
    result = CommandResult(command)
    check_follow(follow, timeout)

    def opened(analysis: Analysis) -> None:
        if check is not None:
            check(analysis)
        if command in WITH_DYNAMICS:
            resolve_time_axis(analysis.run, time)  # a clock the run lacks: before any work
        result.opened(analysis)
        if on_open is not None:
            on_open(analysis)

    def take(epoch: EpochResult) -> bool:
        result.add(epoch)
        return bool(on_epoch(epoch)) if on_epoch is not None else False

    if not follow:
        with Analysis(path, settings, progress=progress) as analysis:
            opened(analysis)
            for epoch in analysis:
                if take(epoch):
                    break
            result.extra = _run_results(command, analysis, result.epochs, time)
        return result
    _follow(result, path, settings, opened, take, timeout, poll, stop_on_interrupt)
    if result.header is None:
        raise InputError("no complete epoch was written before following stopped "
                         "(--timeout)", file=os.fspath(path))
    if command in WITH_DYNAMICS and result.epochs:
        # The run-level fit over every epoch seen, from the run as it is now.
        with Analysis(path, dataclasses.replace(settings, epochs=None, workers=1,
                                                dask=None)) as analysis:
            result.extra = _run_results(command, analysis, result.epochs, time)
    return result


def check_follow(follow: bool, timeout: float | None) -> None:
    """``timeout`` needs ``follow`` and is a positive number of seconds.

    Raises
    ------
    UsageError
    """
    if timeout is not None and not follow:
        raise UsageError("--timeout applies only with --follow")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {timeout}")


def _follow(result: CommandResult, path, settings, opened, take, timeout, poll,
            stop_on_interrupt: bool) -> None:
    from .follow import Follower

    follower = Follower(path, settings, timeout=timeout, poll=poll, on_open=opened)
    try:
        for epoch in follower:
            if take(epoch):
                result.stopped_by = "stopped"
                return
        result.stopped_by = follower.stop_reason
    except KeyboardInterrupt:
        if not stop_on_interrupt or result.header is None:  # nothing to finish
            raise
        result.stopped_by = "interrupt"


def _run_results(command: str, analysis: Analysis, epochs: list[dict], time: str
                 ) -> dict[str, Any]:
    """Run-level results of ``command`` (the SNR dynamics fit of snr/report)."""
    if command not in WITH_DYNAMICS or not epochs:
        return {}
    return {"dynamics": snr_dynamics(analysis, epochs, time)}


def _command(command: str, path, *, time: str = "auto", follow: bool = False,
             timeout: float | None = None, **options: Any) -> dict[str, Any]:
    settings = settings_for(command, **options)
    return run_command(command, path, settings, time=time, follow=follow,
                       timeout=timeout).document()


def report(path, **options: Any) -> dict[str, Any]:
    """metrics + decompose + snr with the dynamics fit: exactly the document
    ``ncanalyze report PATH -f json`` prints, as plain Python data.

    Parameters
    ----------
    path : str or os.PathLike
        The run.
    **options
        The command's options by their Python names: the :class:`Settings` fields
        (``epochs="10:200"``, ``backend``, ``splits=["test"]``, ``layers=True``,
        ``weight_decay``, ``ridge``, ``workers``, …), ``time`` (the dynamics clock),
        ``follow`` and ``timeout``.

    Returns
    -------
    dict
        ``ncanalyze``, ``command``, ``file``, ``classes``, ``samples``, ``features``,
        ``settings``, ``epochs`` (list of per-epoch dicts), ``dynamics``, ``warnings``;
        non-finite numbers are None.

    Examples
    --------
    >>> doc = ncanalyze.report("run.h5", epochs="last")           # doctest: +SKIP
    >>> doc["epochs"][-1]["nc1"], doc["dynamics"]["verdict"]       # doctest: +SKIP
    """
    return _command("report", path, **options)


def metrics(path, **options: Any) -> dict[str, Any]:
    """The document of ``ncanalyze metrics PATH -f json`` (options as :func:`report`)."""
    return _command("metrics", path, **options)


def decompose(path, **options: Any) -> dict[str, Any]:
    """The document of ``ncanalyze decompose PATH -f json`` (options as :func:`report`)."""
    return _command("decompose", path, **options)


def snr(path, **options: Any) -> dict[str, Any]:
    """The document of ``ncanalyze snr PATH -f json``, dynamics included (options as
    :func:`report`)."""
    return _command("snr", path, **options)


#: Splits whose accuracy the panel draws as the test accuracy (first one the run has).
TEST_SPLITS = ("test", "val", "valid", "validation")


def panel_series(path, settings: Settings, label: str | None = None,
                 outputs: dict | None = None):
    """The panel's series of one run: its metrics at every selected epoch, and the accuracy
    on its test split when it has one (``outputs``: refused when one is a file it reads)."""
    from .atomic import check_outputs
    from .plots.panel import series_from_epochs

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
