"""``--fail-if`` gates: parse ``KEY OP NUMBER``, check the key against what the command can
produce (before anything is computed), evaluate on the computed epochs.

Keys are the flattened output keys (as in CSV output, docs/METRICS.md): ``nc1``,
``splits.test.accuracy``, ``layers.block3.nc1``, ``scalars.train_loss``. A list-valued key such
as ``snr_singular_values`` (min(P, C − 1) values) is gated one element at a time:
``snr_singular_values_0``, ``snr_singular_values_1``, ….

Examples
--------
>>> gate = parse_gate("snr_singular_values_2>1e3")
>>> gate.key, gate.op, gate.threshold
('snr_singular_values_2', '>', 1000.0)
"""

from __future__ import annotations

import difflib
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .core.keys import (DECOMPOSE_KEYS, FEATURE_KEYS, LAYER_KEYS, LIST_KEYS, METRIC_KEYS,
                        SNR_KEYS)
from .core.snr import snr_rank_bound
from .errors import UsageError
from .results import flatten

_OPS = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}
_GATE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")
_INDEXED = re.compile(r"^(.+)_(\d+)$")


@dataclass(frozen=True)
class Gate:
    """One ``--fail-if`` condition: ``key op threshold``; it *holds* when the run fails."""

    text: str
    key: str
    op: str
    threshold: float

    def check(self, flat: Mapping[str, Any]) -> tuple[bool, Any]:
        """Return ``(holds, value)``; a missing or null value makes the condition hold."""
        value = flat.get(self.key)
        if value is None:
            return True, None
        return bool(_OPS[self.op](float(value), self.threshold)), value


def parse_gate(text: str) -> Gate:
    """Parse ``"nc1>0.05"`` (keys as in CSV output, e.g. ``splits.test.accuracy<0.9``).

    Raises
    ------
    UsageError
        When ``text`` is not ``KEY OP NUMBER``.
    """
    m = _GATE.match(text)
    if not m:
        raise UsageError(f"--fail-if {text!r}: expected KEY OP NUMBER, e.g. 'nc1>0.05' "
                         "(OP one of > >= < <= == !=)")
    key, op, num = m.groups()
    try:
        threshold = float(num)
    except ValueError:
        raise UsageError(f"--fail-if {text!r}: {num!r} is not a number") from None
    return Gate(text.strip(), key, op, threshold)


@dataclass(frozen=True)
class KeyCatalogue:
    """The flattened keys a command can produce for one run file.

    Attributes
    ----------
    numbers : frozenset of str
        Keys holding one number (or null).
    lists : dict of str to int
        List-valued keys and their length; element ``j`` is gated as ``KEY_j``.
    """

    numbers: frozenset
    lists: dict = field(default_factory=dict)
    #: Key prefix -> why no key under it is produced (e.g. a split not selected by --split);
    #: the first matching prefix counts, None: produced.
    missing: dict = field(default_factory=dict)

    def why_missing(self, key: str) -> str | None:
        """Why ``key`` (a key or a ``--keys`` pattern) is not produced, when that is known."""
        for prefix, why in self.missing.items():
            if key.startswith(prefix):
                return why
        return None

    def expanded(self) -> list[str]:
        """Every key, list elements as ``KEY_0 … KEY_{n-1}`` (for matching ``--keys``)."""
        out = sorted(self.numbers - {"epoch"})
        for k, n in self.lists.items():
            out.extend(f"{k}_{j}" for j in range(n))
        return out

    def names(self) -> list[str]:
        """Every gateable name, list elements as ``KEY_0…KEY_{n-1}`` (sorted, no ``epoch``)."""
        shown = set(self.numbers) - {"epoch"}
        shown.update(f"{k}_0…{k}_{n - 1}" for k, n in self.lists.items())
        return sorted(shown)


def producible_keys(settings, info) -> KeyCatalogue:
    """The keys :class:`~ncanalyze.analysis.Analysis` produces with ``settings`` on a run whose
    header is ``info`` (a :class:`~ncanalyze.io.schema.RunInfo`); no data is read.

    The classifier keys need ``/weight``; ``layers.NAME.*`` need ``--layers``, ``splits.NAME.*``
    the metrics and a split that is computed (every split of the file unless ``--split``
    chooses); ``scalars.NAME`` are the file's scalars.
    """
    from .settings import NO_SPLITS

    if settings.splits is None:
        splits = tuple(info.splits)
    else:
        splits = tuple(n for n in settings.splits if n in info.splits)
    missing: dict[str, str | None] = {}
    for name in info.splits:
        if name in splits and "metrics" in settings.quantities:
            missing[f"splits.{name}."] = None  # computed: an unknown key there gets the list
        else:
            missing[f"splits.{name}."] = (
                f"split {name!r} is not computed"
                + (" (its keys come with the metrics: use metrics or report)"
                   if "metrics" not in settings.quantities else
                   f"; add --split {name}" if settings.splits != (NO_SPLITS,) else
                   f"; drop --split none or add --split {name}"))
    if not info.splits:
        missing["splits."] = "the file has no /splits"
    elif not splits or "metrics" not in settings.quantities:
        missing["splits."] = (f"no split is computed (the file has {', '.join(info.splits)}; "
                              "metrics and report compute them all unless --split chooses)")
    else:
        missing["splits."] = f"the file has no such split (splits: {', '.join(info.splits)})"
    if not settings.layers:
        missing["layers."] = ("layer keys need --layers" if info.layers else
                              "the file has no /layers")
    quantities = settings.quantities
    metric_keys = METRIC_KEYS if info.has_weight else FEATURE_KEYS
    numbers: set[str] = {"epoch"}
    lists: dict[str, int] = {}
    if "metrics" in quantities:
        numbers.update(metric_keys)
        if settings.layers:
            for name in info.layers:
                numbers.update(f"layers.{name}.{k}" for k in LAYER_KEYS)
        for name in splits:
            numbers.update(f"splits.{name}.{k}" for k in metric_keys)
    if "decompose" in quantities and info.has_weight:
        numbers.update(DECOMPOSE_KEYS)
    if "snr" in quantities:
        for key in SNR_KEYS:
            if key in LIST_KEYS:
                lists[key] = snr_rank_bound(info.num_features, info.num_classes)
            else:
                numbers.add(key)
    numbers.update(f"scalars.{name}" for name in info.scalars)
    return KeyCatalogue(frozenset(numbers), lists, missing)


def _unknown(gate: Gate, catalogue: KeyCatalogue) -> str:
    why = catalogue.why_missing(gate.key)
    if why:
        return f"--fail-if {gate.text!r}: unknown key {gate.key!r}: {why}"
    names = catalogue.names()
    prefixed = sorted(k for k in catalogue.numbers if k.startswith(gate.key + "_"))
    prefixed += [f"{k}_0…{k}_{n - 1}" for k, n in catalogue.lists.items()
                 if k.startswith(gate.key + "_")]
    if prefixed:
        hint = f"did you mean {', '.join(prefixed)}?"
    else:
        close = difflib.get_close_matches(gate.key, names, n=4, cutoff=0.6)
        hint = (f"did you mean {', '.join(close)}? " if close else "") + \
            f"this command produces {', '.join(names)}"
    return f"--fail-if {gate.text!r}: unknown key {gate.key!r}; {hint}"


def validate_gates(gates: Iterable[Gate], catalogue: KeyCatalogue) -> None:
    """Check that every gate names a key of ``catalogue`` (call it before computing).

    Raises
    ------
    UsageError
        An unknown key (with the keys it may have meant), a list-valued key without an element
        index, or an index out of range.
    """
    for gate in gates:
        key = gate.key
        if key in catalogue.numbers:
            continue
        if key in catalogue.lists:
            n = catalogue.lists[key]
            raise UsageError(f"--fail-if {gate.text!r}: {key} is a list of {n} values; gate one "
                             f"element, {key}_0 … {key}_{n - 1} (e.g. {key}_0 for the largest)")
        m = _INDEXED.match(key)
        if m and m.group(1) in catalogue.lists:
            n = catalogue.lists[m.group(1)]
            if int(m.group(2)) >= n:
                raise UsageError(f"--fail-if {gate.text!r}: {m.group(1)} has {n} values, "
                                 f"indices 0..{n - 1}")
            continue
        raise UsageError(_unknown(gate, catalogue))


@dataclass
class Verdict:
    """Outcome of one gate on one epoch."""

    gate: Gate
    epoch: int
    value: Any
    holds: bool

    def describe(self) -> str:
        """'gate FAILED: nc1>0.01 holds at epoch 600 (nc1 = 0.0123)' or 'gate passes: nc1>0.01
        does not hold at epoch 600 (…)'."""
        shown = ("missing: an undefined value fails the gate" if self.value is None
                 else f"{self.gate.key} = {self.value:.6g}")
        if self.holds:
            return f"gate FAILED: {self.gate.text} holds at epoch {self.epoch} ({shown})"
        return f"gate passes: {self.gate.text} does not hold at epoch {self.epoch} ({shown})"


def evaluate_gates(gates: Iterable[Gate], epochs: list[dict[str, Any]], scope: str = "last"
                   ) -> list[Verdict]:
    """Evaluate gates on the last epoch (``scope="last"``) or on every epoch (``"all"``).

    A key that is null at an epoch (or a list element of a null list) makes the gate hold:
    an undefined value never passes a gate.

    Parameters
    ----------
    gates : iterable of Gate
        Checked beforehand with :func:`validate_gates`.
    epochs : list of dict
        Per-epoch values (nested); each must hold ``"epoch"``.
    scope : {"last", "all"}
    """
    if scope not in ("last", "all"):
        raise UsageError(f"--gate must be 'last' or 'all', got {scope!r}")
    chosen = epochs[-1:] if scope == "last" else epochs
    flats = [flatten(values) for values in chosen]
    verdicts = []
    for gate in gates:
        for values, flat in zip(chosen, flats):
            holds, value = gate.check(flat)
            verdicts.append(Verdict(gate, int(values["epoch"]), value, holds))
    return verdicts
