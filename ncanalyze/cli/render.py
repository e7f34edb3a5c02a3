"""Presentation of per-epoch results: table, json, jsonl, csv and markdown (README,
"metrics, decompose, snr, report")."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, TextIO


from ..core.keys import row_of, target_value
from ..errors import escape
from ..gates import Verdict
from ..results import clean, document, flatten

FORMATS = ("table", "json", "jsonl", "csv", "markdown")



def epoch_object(values: dict[str, Any]) -> dict[str, Any]:
    """One epoch as it appears in JSON (non-finite numbers -> null)."""
    return clean(values)


def json_document(header: dict[str, Any], command: str, epochs: list[dict[str, Any]],
                  warnings: list[str], extra: dict[str, Any] | None = None) -> str:
    """The single JSON document of ``--format json`` (:func:`ncanalyze.results.document`)."""
    return json.dumps(document(header, command, epochs, warnings, extra), indent=2,
                      allow_nan=False) + "\n"


def jsonl_line(values: dict[str, Any]) -> str:
    """One epoch as one JSON line."""
    return json.dumps(epoch_object(values), allow_nan=False) + "\n"


def columns(epochs: list[dict[str, Any]]) -> list[str]:
    """Flattened keys in first-seen order across epochs."""
    keys: dict[str, None] = {}
    for e in epochs:
        for k in flatten(e):
            keys.setdefault(k, None)
    return list(keys)


def csv_text(epochs: list[dict[str, Any]]) -> str:
    """A header row and one row per epoch; lists as ``key_0, key_1, …``, null as empty."""
    cols = columns(epochs)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for e in epochs:
        flat = flatten(epoch_object(e))
        writer.writerow(["" if flat.get(c) is None else _csv_value(flat[c]) for c in cols])
    return buf.getvalue()


def _csv_value(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def fmt(v: Any) -> str:
    """A number for people: 4 significant digits, ``—`` for null."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        if v == 0.0:
            return "0"
        if 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return str(v)


def _trend(first: Any, last: Any) -> str:
    if first is None or last is None or not isinstance(first, (int, float)):
        return ""
    if last == first:
        return "→"
    if first != 0 and abs(last / first) > 0 and abs(math.log10(abs(last / first) + 1e-300)) >= 1:
        factor = abs(last / first) if abs(last) > abs(first) else abs(first / last)
        return ("↑" if last > first else "↓") + f" ×{factor:.3g}"
    return "↑" if last > first else "↓"


def markdown_text(header: dict[str, Any], command: str, epochs: list[dict[str, Any]],
                  verdicts: list[Verdict], loss: str | None = None) -> str:
    """Summary for a CI job summary / pull-request comment: first, last, best and trend.

    "best" follows each key's direction in the key catalogue (:mod:`ncanalyze.core.keys`): the
    largest value, the smallest, or the one closest to the key's target (``bias_collapse``:
    1/√C on an MSE run, ``loss``); unranked keys, keys not in the catalogue and the training
    loop's scalars get none.
    """
    flats = [flatten(epoch_object(e)) for e in epochs]
    cols = [c for c in columns(epochs) if c != "epoch"]
    classes = int(header["classes"])
    lines = [
        f"### ncanalyze {command}: `{escape(header['file'])}`",
        "",
        f"{header['classes']} classes · {header['samples']} samples · {header['features']} "
        f"features · {len(epochs)} epoch(s) "
        f"({epochs[0]['epoch']}–{epochs[-1]['epoch']})" if epochs else "",
        "",
        "| key | first | last | best (epoch) | trend |",
        "|---|---:|---:|---:|:---:|",
    ]
    if len(flats) == 1:  # nothing to compare: the values, and why there is no trend
        lines[-2:] = [f"One epoch selected ({flats[0]['epoch']}): its values, without "
                      "first/best/trend (select more epochs with `--epochs` for a trend).",
                      "", "| key | value |", "|---|---:|"]
        lines += [f"| `{escape(c).replace('|', chr(92) + '|')}` | {fmt(flats[0].get(c))} |"
                  for c in cols]
        cols = []
    for c in cols:
        series = [(f["epoch"], f.get(c)) for f in flats]
        valid = [(e, v) for e, v in series if isinstance(v, (int, float)) and v is not None]
        first = series[0][1]
        last = series[-1][1]
        row = row_of(c)
        direction = row.direction if row is not None else "unranked"
        target = None if row is None else target_value(row, loss=loss, classes=classes)
        if valid and target:
            be, bv = min(valid, key=lambda t: abs(t[1] - target))
            shown = f"1/√C = {fmt(target)}" if row.name == "bias_collapse" else fmt(target)
            best = f"{fmt(bv)} ({be}; → {shown})"
        elif valid and direction in ("higher", "lower", "target"):
            pick = max if direction == "higher" else min  # a target of 0: the smallest
            be, bv = pick(valid, key=lambda t: abs(t[1]) if direction == "target" else t[1])
            best = f"{fmt(bv)} ({be})"
        else:
            best = ""
        cell = escape(c).replace("|", "\\|")
        lines.append(f"| `{cell}` | {fmt(first)} | {fmt(last)} | {best} | {_trend(first, last)} |")
    if verdicts:
        lines += ["", "**Gates**", ""]
        for v in verdicts:
            mark = "❌" if v.holds else "✅"
            lines.append(f"- {mark} {escape(v.describe())}")
    return "\n".join(lines) + "\n"


def write_stream(fh: TextIO, text: str) -> None:
    """Write and flush at once (a jsonl consumer sees each epoch as it is computed)."""
    fh.write(text)
    fh.flush()
