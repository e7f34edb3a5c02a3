"""Plain-result helpers shared by every output: flattening and cleaning of values, and the
output document (``--fail-if`` gates are in :mod:`ncanalyze.gates`)."""

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


def clean(obj: Any) -> Any:
    """``obj`` with every non-finite float as ``None`` and tuples as lists (nested)."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return clean_number(obj)


def document(header: dict[str, Any], command: str, epochs: list[dict[str, Any]],
             warnings: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The output document of a command (``-f json``; ``ncanalyze.report`` returns it): the
    header, ``epochs``, the run-level results (``dynamics``) and ``warnings``."""
    doc = {"ncanalyze": header["ncanalyze"], "command": command}
    doc.update(clean({k: v for k, v in header.items() if k != "ncanalyze"}))
    doc["epochs"] = [clean(e) for e in epochs]
    if extra:
        doc.update(clean(extra))
    doc["warnings"] = list(warnings)
    return doc
