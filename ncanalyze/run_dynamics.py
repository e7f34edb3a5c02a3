"""Run-level results: the clock of the SNR dynamics law (``--time``) and its fit over the
computed epochs (Han et al. 2022, Prop. 2; docs/CENTRAL_PATH.md §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core.dynamics import clock_name, cumulative_learning_rate, fit_dynamics, not_fitted
from .errors import UsageError
from .io.protocol import RunReader

if TYPE_CHECKING:  # only for the annotation: run_dynamics is imported by no analysis code
    from .analysis import Analysis

#: ``--time`` choices besides a ``/scalars`` name (docs/CENTRAL_PATH.md §3).
TIME_AXES = ("auto", "epoch", "lr", "steps")


def resolve_time_axis(run: RunReader, time: str = "auto") -> str:
    """The time axis of the SNR dynamics fit: ``auto`` becomes ``lr`` when the run records
    ``/scalars/lr``, else ``epoch``.

    Raises
    ------
    UsageError
        When the run lacks what the axis needs (``lr``: ``/scalars/lr``; ``steps``:
        ``/scalars/steps`` or a ``steps_per_epoch`` attribute; a name: ``/scalars/<name>``).
    """
    scalars = run.info.scalars
    have = ", ".join(scalars) or "none"
    if time == "auto":
        return "lr" if "lr" in scalars else "epoch"
    if time == "epoch":
        return time
    if time == "steps":
        if "steps" not in scalars and run.info.steps_per_epoch is None:
            raise UsageError("--time steps: the file records neither /scalars/steps nor a "
                             "steps_per_epoch attribute")
        return time
    if time not in scalars:
        raise UsageError(f"--time {time}: the file has no /scalars/{time} (scalars: {have}); "
                         f"use {', '.join(TIME_AXES)} or a scalar's name")
    return time


def snr_dynamics(analysis: "Analysis", epochs: list[dict[str, Any]], time: str = "auto"
                 ) -> dict[str, Any]:
    """The run-level fit of the SNR dynamics law (Han et al. Prop. 2) over computed epochs.

    Parameters
    ----------
    analysis : Analysis
        The (open) analysis that produced ``epochs``.
    epochs : list of dict
        Per-epoch values holding ``epoch``, ``snr_singular_values`` and, when the file has
        them, ``scalars``.
    time : str
        ``auto`` (cumulative learning rate if ``/scalars/lr`` exists, else epochs), ``epoch``,
        ``lr``, ``steps`` or the name of a ``/scalars`` entry.

    Returns
    -------
    dict
        The ``dynamics`` object of :func:`ncanalyze.core.dynamics.fit_dynamics`; not fitted,
        with the reason, when the clock is undefined (e.g. a NaN learning rate).
    """
    run = analysis.run
    time = resolve_time_axis(run, time)
    numbers = [int(e["epoch"]) for e in epochs]
    values = [e.get("snr_singular_values") for e in epochs]
    num_classes = run.info.num_classes
    if not numbers or time == "epoch":
        return fit_dynamics(numbers, values, num_classes, time="epoch")
    # Every recorded epoch between the first and last one used enters the trapezoid.
    known = {int(e["epoch"]): e.get("scalars") or {} for e in epochs}
    lo, hi = min(numbers), max(numbers)
    span = sorted(set(numbers) | {int(e) for e in run.info.epochs if lo <= int(e) <= hi})
    series = [known[e] if e in known else run.scalars(e) for e in span]

    def column(name: str) -> list[float]:
        out = []
        for e, s in zip(span, series):
            v = s.get(name)
            if v is None:
                raise ValueError(f"/scalars/{name} is not finite at epoch {e}")
            out.append(v)
        return out

    try:
        if time not in ("lr", "steps"):
            clock = column(time)
        else:
            if "steps" in run.info.scalars:
                steps: list = column("steps")
            elif run.info.steps_per_epoch is not None:
                steps = [run.info.steps_per_epoch * e for e in span]
            else:
                steps = list(span)
            clock = steps if time == "steps" else cumulative_learning_rate(steps, column("lr"))
    except ValueError as exc:
        return not_fitted(f"the {clock_name(time)} clock is undefined: {exc}", time)
    at = dict(zip(span, clock))
    return fit_dynamics([at[e] for e in numbers], values, num_classes, epochs=numbers, time=time)
