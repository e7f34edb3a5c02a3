"""Plain-result helpers shared by every output: flattening and ``--fail-if`` gates."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import UsageError


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested epoch values: ``{"layers": {"fc": {"nc1": x}}}`` -> ``{"layers.fc.nc1": x}``.

    List values become ``key_0, key_1, …`` (SPEC §4, CSV).
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                out[f"{name}_{i}"] = item
        else:
            out[name] = value
    return out


def clean_number(value: Any) -> Any:
    """Finite floats and ints pass, NaN/Inf become ``None`` (SPEC §4: finite floats or null)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


_OPS = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}
_GATE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Gate:
    """One ``--fail-if`` condition: ``key op threshold``; it *holds* when the run fails."""

    text: str
    key: str
    op: str
    threshold: float

    def check(self, flat: dict[str, Any]) -> tuple[bool, Any]:
        """Return ``(holds, value)``; a missing or null value makes the condition hold."""
        value = flat.get(self.key)
        if value is None:
            return True, None
        return bool(_OPS[self.op](float(value), self.threshold)), value


def parse_gate(text: str) -> Gate:
    """Parse ``"nc1>0.05"`` (keys as in CSV output, e.g. ``splits.test.accuracy<0.9``)."""
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


@dataclass
class Verdict:
    """Outcome of one gate on one epoch."""

    gate: Gate
    epoch: int
    value: Any
    holds: bool

    def describe(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.6g}"
        state = "FAILED" if self.holds else "ok"
        return f"{state}: {self.gate.text} (epoch {self.epoch}: {self.gate.key} = {shown})"


def evaluate_gates(gates: Iterable[Gate], epochs: list[dict[str, Any]], scope: str = "last"
                   ) -> list[Verdict]:
    """Evaluate gates on the last epoch (``scope="last"``) or on every epoch (``"all"``).

    Parameters
    ----------
    gates : iterable of Gate
    epochs : list of dict
        Per-epoch values (nested); each must hold ``"epoch"``.
    scope : {"last", "all"}
    """
    if scope not in ("last", "all"):
        raise UsageError(f"--gate must be 'last' or 'all', got {scope!r}")
    chosen = epochs[-1:] if scope == "last" else epochs
    verdicts = []
    for gate in gates:
        for values in chosen:
            flat = flatten(values)
            if gate.key not in flat and not any(k.startswith(gate.key + "_") for k in flat):
                known = ", ".join(sorted(k for k in flat if k != "epoch")[:12])
                raise UsageError(f"--fail-if {gate.text!r}: unknown key {gate.key!r} "
                                 f"(keys include {known}, …)")
            holds, value = gate.check(flat)
            verdicts.append(Verdict(gate, int(values["epoch"]), value, holds))
    return verdicts
