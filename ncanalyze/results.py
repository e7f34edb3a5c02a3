"""Plain-result helpers shared by every output: flattening and cleaning of values
(``--fail-if`` gates are in :mod:`ncanalyze.gates`)."""

from __future__ import annotations

import math
from typing import Any


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested epoch values: ``{"layers": {"fc": {"nc1": x}}}`` -> ``{"layers.fc.nc1": x}``.

    List values become ``key_0, key_1, …`` (the csv format, docs/TUTORIAL.md).
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
    """Finite floats and ints pass, NaN/Inf become ``None`` (every output holds finite floats or null)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value
