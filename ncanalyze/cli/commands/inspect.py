"""``ncanalyze inspect``: a run file's layout and the problems found in it."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from ...errors import UsageError
from ..options import INSPECT_FORMATS, AllowExternalOpt, InspectFormatOpt, RunFile

EPILOG = "Example: ncanalyze inspect examples/digits_mlp.h5"
#: inspect's own choices (see ncanalyze.cli.options.CHOICES).
CHOICES = {"fmt": INSPECT_FORMATS}


def inspect(file: RunFile, fmt: InspectFormatOpt = "table",
            allow_external: AllowExternalOpt = False) -> int:
    """Show a run file's layout, sizes, dtypes, epochs, class counts and problems found."""
    from ...inspection import inspect_file

    if fmt not in INSPECT_FORMATS:
        raise UsageError(f"inspect: --format must be table or json, got {fmt!r}")
    report = inspect_file(file, allow_external=allow_external)
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        from ..inspect_view import print_inspection

        tty = sys.stdout.isatty()
        # A pipe gets the full table unless $COLUMNS says how wide to be.
        width = None if tty or os.environ.get("COLUMNS") else 120
        print_inspection(report, Console(width=width, highlight=False))
    return 3 if report["problems"] else 0
