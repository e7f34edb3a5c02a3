"""Presentation of per-epoch results: table, json, jsonl, csv and markdown (README,
"metrics, decompose, snr, report")."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import escape
from ..gates import Verdict
from ..results import clean_number, flatten

FORMATS = ("table", "json", "jsonl", "csv", "markdown")

#: Keys where a larger value means more collapse / a better model (markdown "best").
HIGHER_IS_BETTER = {"accuracy", "ncc_accuracy", "snr_min", "snr_max", "snr_singular_values",
                    "nc1_rank"}
#: Keys shown but not ranked.
UNRANKED = {"epoch", "nc1_rank", "loss_ls_predicted"}


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return clean_number(obj)


def epoch_object(values: dict[str, Any]) -> dict[str, Any]:
    """One epoch as it appears in JSON (non-finite numbers -> null)."""
    return _clean(values)


def json_document(header: dict[str, Any], command: str, epochs: list[dict[str, Any]],
                  warnings: list[str], extra: dict[str, Any] | None = None) -> str:
    """The single JSON document of ``--format json``."""
    doc = {"ncanalyze": header["ncanalyze"], "command": command}
    doc.update({k: v for k, v in header.items() if k != "ncanalyze"})
    doc["epochs"] = [epoch_object(e) for e in epochs]
    if extra:
        doc.update(_clean(extra))
    doc["warnings"] = list(warnings)
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


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


def _column_groups(cols: list[str], width: int) -> list[list[str]]:
    """Split columns so that each table fits ``width`` characters (headers never truncated)."""
    groups: list[list[str]] = [[]]
    used = 8  # the epoch column
    for c in cols:
        need = max(len(c), 10) + 3
        if groups[-1] and used + need > width:
            groups.append([])
            used = 8
        groups[-1].append(c)
        used += need
    return groups


def render_tables(epochs: list[dict[str, Any]], title: str, console: Console) -> None:
    """Rich tables with epochs as rows, keys split into as many tables as the width needs."""
    cols = [c for c in columns(epochs) if c != "epoch"]
    flats = [flatten(e) for e in epochs]
    title = escape(title)
    if not cols:
        console.print(f"{title}: no values", markup=False)
        return
    console.print(title, style="bold", markup=False)
    for part in _column_groups([escape(c) for c in cols], max(60, console.width)):
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        table.add_column("epoch", justify="right", style="cyan", no_wrap=True)
        for c in part:  # Text: names from the file are shown literally, never as markup
            table.add_column(Text(c), justify="right", no_wrap=True, min_width=len(c))
        shown = [{escape(k): v for k, v in f.items()} for f in flats]
        for f in shown:
            table.add_row(str(f.get("epoch")), *(Text(escape(fmt(f.get(c)))) for c in part))
        console.print(table)
        console.print()


def _trend(first: Any, last: Any) -> str:
    if first is None or last is None or not isinstance(first, (int, float)):
        return ""
    if last == first:
        return "→"
    if first != 0 and abs(last / first) > 0 and abs(math.log10(abs(last / first) + 1e-300)) >= 1:
        factor = abs(last / first) if abs(last) > abs(first) else abs(first / last)
        return ("↑" if last > first else "↓") + f" ×{factor:.3g}"
    return "↑" if last > first else "↓"


def _target(leaf: str, loss: str | None, classes: int) -> float | None:
    """The value a key tends to at collapse when that is not its minimum.

    ``bias_collapse`` = ‖Wμ_G + b‖: with the MSE loss on one-hot targets and a free bias, the
    model's output at μ_G tends to the mean target, the class proportions π, so the key tends to
    ‖π‖ = 1/√C for balanced classes (docs/METRICS.md), not to 0.
    """
    if leaf == "bias_collapse" and (loss or "").lower() == "mse" and classes > 0:
        return 1.0 / math.sqrt(classes)
    return None


def markdown_text(header: dict[str, Any], command: str, epochs: list[dict[str, Any]],
                  verdicts: list[Verdict], loss: str | None = None) -> str:
    """Summary for a CI job summary / pull-request comment: first, last, best and trend.

    "best" is the largest value of keys in :data:`HIGHER_IS_BETTER`, the value closest to
    1/√C for ``bias_collapse`` of an MSE run (``loss``), and the smallest otherwise; the
    training loop's scalars are not ranked.
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
        leaf = re.sub(r"_\d+$", "", c.split(".")[-1])  # list items: snr_singular_values_3
        target = _target(leaf, loss, classes)
        if valid and target is not None:
            be, bv = min(valid, key=lambda t: abs(t[1] - target))
            best = f"{fmt(bv)} ({be}; → 1/√C = {fmt(target)})"
        elif valid and leaf not in UNRANKED and not c.startswith("scalars."):
            pick = max if leaf in HIGHER_IS_BETTER else min
            be, bv = pick(valid, key=lambda t: t[1])
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
