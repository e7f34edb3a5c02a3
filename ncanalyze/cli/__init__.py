"""The ``ncanalyze`` command line (Typer + rich): the root app and its commands.

Presentation only — the work is in :mod:`ncanalyze.analysis`. The layout: :mod:`.options`
(shared option aliases), :mod:`.boundary` (errors → exit codes, the stderr console, the
``--quiet``/``--debug`` flags), :mod:`.render` (output formats), :mod:`.runner` (the loop shared
by metrics/decompose/snr/report) and one module per command in :mod:`.commands`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from .boundary import EXIT_INTERNAL, EXIT_INTERRUPTED, DebugOpt, QuietOpt, command, set_root_flags
from .parsing import OneLineGroup
from .commands import convert, decompose, inspect, metrics, plot, report, simulate, snr

app = typer.Typer(
    name="ncanalyze",
    cls=OneLineGroup,
    help="Measure Neural Collapse (NC1–NC4, ETF/OF geometry, MSE decomposition, SNR dynamics) "
         "from saved training runs.\n\nExit codes: 0 ok · 1 a --fail-if condition holds · "
         "2 usage error · 3 input error · 4 backend unavailable · 70 internal error (a bug: "
         "please report it with --debug output) · 130 interrupted (Ctrl-C).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ncanalyze {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False,
          quiet: QuietOpt = False, debug: DebugOpt = False):
    """Measure Neural Collapse from saved training runs."""
    set_root_flags(quiet=quiet, debug=debug)


#: Command modules in the order ``ncanalyze --help`` lists them; each holds a function named
#: after the command (returning its exit code) and the ``EPILOG`` example of its ``--help``.
COMMANDS = (inspect, metrics, decompose, snr, report, plot, simulate, convert)

for _module in COMMANDS:
    _name = _module.__name__.rsplit(".", 1)[-1]
    app.command(_name, epilog=_module.EPILOG)(command(getattr(_module, _name)))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ncanalyze")


__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "app", "main"]
