"""Plain-result helpers shared by every output: flattening and cleaning of values, and the
output document (``--fail-if`` gates are in :mod:`ncanalyze.gates`)."""

from __future__ import annotations

import math
import re
from typing import Any, Sequence


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
    doc["warnings"] = merge_warnings(warnings, [int(e["epoch"]) for e in epochs])
    return doc


_EPOCH_LINE = re.compile(r"^epoch (-?\d+): (.*)$", re.S)


def merge_warnings(lines: Sequence[str], epochs: Sequence[int]) -> list[str]:
    """Identical per-epoch warnings (``epoch N: …``) as one line naming their epochs, e.g.
    ``epochs 1–100: equiangle_means is undefined: …``; other lines unchanged.

    Parameters
    ----------
    lines : sequence of str
        Warnings in the order they were made.
    epochs : sequence of int
        The computed epochs in order: runs of consecutive computed epochs are written
        ``a–b`` (so ``epochs 0–600`` may span epochs that were not computed).

    Returns
    -------
    list of str
        One line per distinct warning, in order of first appearance.
    """
    index = {int(e): i for i, e in enumerate(epochs)}
    merged: dict[str, list[int]] = {}
    order: list[tuple[bool, str]] = []
    for line in lines:
        m = _EPOCH_LINE.match(line)
        if m is None or int(m.group(1)) not in index:
            order.append((False, line))
            continue
        text = m.group(2)
        if text not in merged:
            merged[text] = []
            order.append((True, text))
        merged[text].append(int(m.group(1)))
    out = []
    for per_epoch, text in order:
        if not per_epoch:
            out.append(text)
            continue
        seen = sorted(set(merged[text]), key=index.__getitem__)
        runs: list[list[int]] = []
        for e in seen:
            if runs and index[e] == index[runs[-1][-1]] + 1:
                runs[-1].append(e)
            else:
                runs.append([e])
        named = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)
        out.append(f"{'epoch' if len(seen) == 1 else 'epochs'} {named}: {text}")
    return out
