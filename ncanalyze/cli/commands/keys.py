"""``ncanalyze keys``: the catalogue of output keys — what each means, which way is better,
what it needs (:mod:`ncanalyze.core.keys`)."""

from __future__ import annotations

import json
import sys
import textwrap

from ...core.keys import FAMILIES, KEYS, Key, as_dict
from ...errors import UsageError
from ..options import KEYS_FORMATS, KeysFormatOpt

EPILOG = ("Example: ncanalyze keys  ·  "
          "ncanalyze keys -f json | jq '.[] | select(.direction==\"higher\")'")
#: keys' own choices (see ncanalyze.cli.options.CHOICES).
CHOICES = {"fmt": KEYS_FORMATS}
#: The table view's width: fits a standard terminal.
WIDTH = 80


def _direction(key: Key) -> str:
    return f"→ {key.target}" if key.direction == "target" else key.direction


def table_text(width: int = WIDTH) -> str:
    """The catalogue for people: keys under their family headings, no line wider than
    ``width``."""
    name_w = max(len(k.name) for k in KEYS) + 2
    lines = [f"{len(KEYS)} per-epoch keys (docs/METRICS.md, docs/CENTRAL_PATH.md); "
             "-f json or -f markdown for all fields", ""]
    for family in FAMILIES:
        lines.append(family)
        for key in (k for k in KEYS if k.family == family):
            kind = {"list": " (list)", "count": " (integer)"}.get(key.kind, "")
            head = (f"  {key.name.ljust(name_w)}{_direction(key)} · {key.quantity}{kind} · "
                    f"needs {', '.join(key.needs)}")
            lines += textwrap.wrap(head, width, subsequent_indent=" " * (name_w + 2))
            lines += textwrap.wrap(key.definition, width, initial_indent="      ",
                                   subsequent_indent="      ")
        lines.append("")
    lines.append("Split keys: splits.NAME.KEY; layer keys (--layers): layers.NAME.KEY for "
                 + ", ".join(k.name for k in KEYS if k.layer) + "; list keys flatten to "
                 "KEY_0, KEY_1, … (min(P, C − 1) values).")
    return "\n".join(line for part in lines for line in (
        textwrap.wrap(part, width) if len(part) > width else [part])) + "\n"


def markdown_text() -> str:
    """The catalogue as a markdown table (docs/METRICS.md, "Key catalogue", is this text)."""
    rows = ["| key | family | better | needs | definition |", "|---|---|---|---|---|"]
    for key in KEYS:
        kind = " (list)" if key.kind == "list" else ""
        definition = key.definition.replace("|", "\\|")
        rows.append(f"| `{key.name}`{kind} | {key.family} | {_direction(key)} | "
                    f"{', '.join(key.needs)} | {definition} |")
    return "\n".join(rows) + "\n"


def keys(fmt: KeysFormatOpt = "table") -> int:
    """List every output key (its family, which way is better, what it needs, what it means)."""
    if fmt not in KEYS_FORMATS:
        raise UsageError(f"keys: --format must be one of {', '.join(KEYS_FORMATS)}, got {fmt!r}")
    if fmt == "json":
        sys.stdout.write(json.dumps([as_dict(k) for k in KEYS], indent=2, ensure_ascii=False)
                         + "\n")
    elif fmt == "markdown":
        sys.stdout.write(markdown_text())
    else:
        sys.stdout.write(table_text())
    return 0
