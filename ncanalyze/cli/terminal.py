"""The ``table`` view, for people: quantities as rows, epochs as columns, fitted to the width.

Rows are grouped under headings (the families of the key catalogue, :mod:`ncanalyze.core.keys`:
NC1 … NC4, many classes, the MSE decomposition, the SNR; then each split, layer and the
training loop's scalars). By default a command shows its headline keys and as
many epochs as fit (evenly spaced, always the first and the last); ``--all`` shows every key and
every epoch (in as many blocks of columns as the width needs), ``--keys`` chooses keys.
Numbers have four significant digits and are right-aligned. The machine formats (csv, json,
jsonl) always hold everything.
"""

from __future__ import annotations

import fnmatch
import re
import textwrap
from typing import Any, Sequence

from rich.console import Console

from ..core.keys import row_of
from ..errors import UsageError, escape
from ..results import flatten
from .render import fmt

#: The keys each command shows without ``--all``/``--keys`` (patterns as in ``--keys``).
HEADLINE: dict[str, tuple[str, ...]] = {
    "metrics": ("nc1", "cdnv", "equinorm_means", "equiangle_means", "etf_distance_means",
                "of_distance_means", "self_duality", "bias_collapse", "accuracy",
                "ncc_mismatch", "splits.*.nc1", "splits.*.accuracy", "layers.*.nc1",
                "scalars.*acc*"),
    "decompose": ("loss", "loss_ls", "loss_nc1", "loss_nc23", "loss_ls_perp",
                  "central_path_ratio"),
    "snr": ("snr_singular_values_*", "snr_min", "snr_max", "snr_ratio", "nc1_whitened",
            "snr_dropped_dims"),
    "report": ("nc1", "etf_distance_means", "of_distance_means", "self_duality", "accuracy",
               "ncc_mismatch", "splits.*.accuracy", "loss", "loss_nc1", "loss_nc23",
               "loss_ls_perp", "central_path_ratio", "snr_min", "snr_max", "snr_ratio"),
}

#: Width of the key column's indent and the gap between columns.
_INDENT, _GAP = 2, 2


#: The headline keys when C − 1 > P (a language model, Wu & Papyan 2024): the ETF distances
#: cannot reach 0 there, the regime's own keys come first (docs/TUTORIAL.md).
HEADLINE_LM: dict[str, tuple[str, ...]] = {
    "metrics": ("classes_present", "effective_classes", "nc1", "nc1_trace_ratio", "cdnv",
                "gnc2", "unc3", "duality_mean", "accuracy", "ncc_mismatch", "splits.*.nc1",
                "splits.*.accuracy", "layers.*.nc1", "scalars.*acc*"),
    "report": ("classes_present", "nc1", "nc1_trace_ratio", "cdnv", "gnc2", "unc3",
               "duality_mean", "accuracy", "ncc_mismatch", "splits.*.accuracy", "loss",
               "loss_nc1", "loss_nc23", "loss_ls_perp", "snr_min", "snr_max", "snr_ratio"),
}
#: The snr command's headline shows this many of the largest and of the smallest ω_j.
SNR_SHOWN = 3


def language_model_regime(classes: int, features: int | None) -> bool:
    """C − 1 > P: more classes than a simplex ETF fits in P dimensions."""
    return features is not None and classes - 1 > features


def _few_singular_values(keys: list[str]) -> list[str]:
    """The largest and the smallest ``SNR_SHOWN`` ω_j of a long list, in order."""
    sv = [k for k in keys if k.startswith("snr_singular_values_")]
    if len(sv) <= 2 * SNR_SHOWN:
        return keys
    drop = set(sv[SNR_SHOWN:-SNR_SHOWN])
    return [k for k in keys if k not in drop]


def _group_of(key: str) -> str:
    """The heading of a flattened key: its family in the key catalogue, or its split, layer
    or the training scalars."""
    if "." in key:
        head, rest = key.split(".", 1)
        if head == "scalars":
            return "training scalars"
        name = rest.split(".", 1)[0]
        return {"splits": f"split {name}", "layers": f"layer {name}"}.get(head, head)
    row = row_of(key)
    return row.family if row is not None else "other"


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(key == p or fnmatch.fnmatchcase(key, p) for p in patterns)


def key_patterns(keys: Sequence[str]) -> list[str]:
    """The ``--keys`` patterns (comma lists and repeated options)."""
    return [p.strip() for k in keys for p in k.split(",") if p.strip()]


def check_key_patterns(keys: Sequence[str], catalogue) -> None:
    """Refuse, before anything is computed, a ``--keys`` pattern that matches no key the
    command produces (``catalogue``: :func:`ncanalyze.gates.producible_keys`).

    Raises
    ------
    UsageError
        Naming the pattern and why it matches nothing (e.g. the option that computes a split).
    """
    names = catalogue.expanded()
    for p in key_patterns(keys):
        if not any(_matches(k, [p]) for k in names):
            why = catalogue.why_missing(p)
            raise UsageError(f"--keys {p!r} matches no key: " + (why or (
                f"keys include {', '.join(names[:12])}, …")))


def choose_keys(all_keys: Sequence[str], command: str, keys: Sequence[str] | None,
                show_all: bool, classes: int, features: int | None = None) -> list[str]:
    """The keys the view shows, in output order.

    Raises
    ------
    UsageError
        When a ``--keys`` pattern matches no key.
    """
    if show_all:
        return list(all_keys)
    if keys:
        patterns = key_patterns(keys)
        for p in patterns:
            if not any(_matches(k, [p]) for k in all_keys):
                known = ", ".join(all_keys[:12])
                raise UsageError(f"--keys {p!r} matches no key (keys include {known}, …)")
        return [k for k in all_keys if _matches(k, patterns)]
    if language_model_regime(classes, features) and command in HEADLINE_LM:
        patterns = HEADLINE_LM[command]  # in their order: the regime's keys first
        headline = sorted((k for k in all_keys if _matches(k, patterns)),
                          key=lambda k: next(i for i, p in enumerate(patterns)
                                             if _matches(k, [p])))
    else:
        headline = [k for k in all_keys if _matches(k, HEADLINE[command])]
    return _few_singular_values(headline) or list(all_keys)


def pick_epochs(count: int, slots: int) -> list[int]:
    """Indices of ``slots`` evenly spaced epochs out of ``count`` (first and last included)."""
    if count <= slots:
        return list(range(count))
    if slots <= 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (slots - 1)) for i in range(slots)})


def _layout(keys: list[str], flats: list[dict[str, Any]], width: int) -> tuple[int, int, int]:
    """Key column width, number column width and how many epoch columns fit in ``width``."""
    key_w = max([len(k) for k in keys] + [5]) + _INDENT
    col_w = max([len(fmt(f.get(k))) for f in flats for k in keys]
                + [len(str(f["epoch"])) for f in flats])
    slots = max(1, (width - key_w) // (col_w + _GAP))
    return key_w, col_w, slots


def render_view(console: Console, *, command: str, header: dict[str, Any],
                epochs: list[dict[str, Any]], keys: Sequence[str] | None = None,
                show_all: bool = False, notes: Sequence[str] = (),
                warnings: Sequence[str] = ()) -> None:
    """Print the view of ``epochs`` on ``console``, no line wider than ``console.width``.

    Parameters
    ----------
    console : rich.console.Console
    command : str
        Selects the headline keys.
    header : dict
        Run facts (``file``, ``classes``, ``samples``, ``features``).
    epochs : list of dict
        Per-epoch values (nested, as computed).
    keys : sequence of str, optional
        ``--keys`` patterns (comma lists allowed).
    show_all : bool
        ``--all``: every key and every epoch.
    notes : sequence of str
        Lines printed after the table (warnings, the dynamics verdict), wrapped to the width.
    warnings : sequence of str
        The per-epoch warnings ("epoch 5: cdnv is undefined: …"): a shown key that is null
        ("—") gets its reason under the table, once.
    """
    width = console.width
    # Keys from the file (layer, split, scalar names) are shown escaped: one line stays one.
    flats = [{escape(k): v for k, v in flatten(e).items()} for e in epochs]
    all_keys: list[str] = []
    for f in flats:
        for k in f:
            if k != "epoch" and k not in all_keys:
                all_keys.append(k)
    shown = choose_keys(all_keys, command, keys, show_all, header["classes"],
                        header.get("features")) if all_keys else []
    title = (f"ncanalyze {command} · C={header['classes']} · N={header['samples']} · "
             f"P={header['features']} · {len(epochs)} epoch(s)")
    _print_wrapped(console, title, width, style="bold")
    _print_wrapped(console, f"file: {escape(header['file'])}", width)
    if not all_keys:
        console.print("no values", markup=False)
        return
    key_w, col_w, slots = _layout(shown or all_keys, flats, width)
    if show_all:
        blocks = [list(range(i, min(i + slots, len(flats)))) for i in range(0, len(flats), slots)]
    else:
        blocks = [pick_epochs(len(flats), slots)]
    groups: dict[str, list[str]] = {}
    for k in shown:
        groups.setdefault(_group_of(k), []).append(k)
    for block in blocks:
        console.print()
        head = "epoch".ljust(key_w) + "".join(
            str(flats[i]["epoch"]).rjust(col_w + _GAP) for i in block)
        console.print(head, style="bold cyan", markup=False, highlight=False)
        for heading, members in groups.items():
            if heading.startswith("MSE decomposition"):
                heading += _decomposition_note(header)
            console.print(heading[:width], style="bold", markup=False)
            for k in members:
                row = (" " * _INDENT + k).ljust(key_w) + "".join(
                    fmt(flats[i].get(k)).rjust(col_w + _GAP) for i in block)
                console.print(row, markup=False, highlight=False)
    console.print()
    hidden_epochs = len(flats) - sum(len(b) for b in blocks)
    hidden_keys = len(all_keys) - len(shown)
    if hidden_epochs > 0 or hidden_keys > 0:
        parts = []
        if hidden_epochs > 0:
            parts.append(f"{sum(len(b) for b in blocks)} of {len(flats)} epochs")
        if hidden_keys > 0:
            parts.append(f"{len(shown)} of {len(all_keys)} keys")
        _print_wrapped(console, f"shown: {' and '.join(parts)} (--all for everything, --keys "
                                f"to choose, --epochs to select; -f csv|json for files)",
                       width, style="dim")
    for key, why in _null_reasons(shown, flats, warnings).items():
        _print_wrapped(console, f"— {key}: undefined: {escape(why)}", width)
    if (language_model_regime(header["classes"], header.get("features")) and not keys
            and command in HEADLINE_LM):
        _print_wrapped(console, f"C − 1 > P = {header['features']} (a language model): the "
                                "regime's keys come first; nc1 divides by the number of "
                                "classes present although Σ_B has rank ≤ P — compare runs by "
                                "nc1_trace_ratio; see docs/TUTORIAL.md, 'Language models'",
                       width, style="dim")
    for line in notes:
        _print_wrapped(console, escape(line), width)


_UNDEFINED = re.compile(r"^epoch [^:]+: (?:(split|layer) ([^:]+): )?(\S+) is undefined: (.*)$")


def _null_reasons(shown: Sequence[str], flats: list[dict[str, Any]],
                  warnings: Sequence[str]) -> dict[str, str]:
    """Why each shown key that is null at some epoch is undefined (the first reason given)."""
    nulls = {k for k in shown if any(k in f and f[k] is None for f in flats)}
    out: dict[str, str] = {}
    for w in warnings:
        m = _UNDEFINED.match(w)
        if not m:
            continue
        kind, name, key, why = m.groups()
        full = f"{kind}s.{name}.{key}" if kind else key
        if full in nulls and full not in out:
            out[full] = why
    return {k: out[k] for k in shown if k in out}


def _decomposition_note(header: dict[str, Any]) -> str:
    """The λ of the decomposition: its `loss` is the penalised one, unlike a training loop's
    `scalars.train_loss` (docs/CENTRAL_PATH.md)."""
    lam = (header.get("settings") or {}).get("weight_decay")
    return "" if lam is None else f" · loss includes λ/2‖W̃‖², λ = {lam:g}"


def _print_wrapped(console: Console, text: str, width: int, style: str | None = None) -> None:
    for line in textwrap.wrap(text, width=width, subsequent_indent="  ",
                              break_on_hyphens=False) or [""]:
        console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)


def stream_line(console: Console, command: str, flat: dict[str, Any], classes: int,
                keys: Sequence[str] | None = None, features: int | None = None) -> None:
    """One epoch as it arrives (``--follow``): as many of the view's keys as fit on one line."""
    flat = {escape(k): v for k, v in flat.items()}
    keys = choose_keys([k for k in flat if k != "epoch"], command, keys, False, classes,
                       features)
    text = f"epoch {flat.get('epoch')}:"
    for k in keys:
        part = f" {k} {fmt(flat.get(k))}"
        if len(text) + len(part) > console.width - 2:
            text += " …"
            break
        text += part
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.file.flush()
