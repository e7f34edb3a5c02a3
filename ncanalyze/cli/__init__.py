"""The ``ncanalyze`` command line (Typer + rich): the root app and its commands.

Presentation only — what a command computes is :mod:`ncanalyze.api`. The layout: :mod:`.options`
(shared option aliases), :mod:`.boundary` (errors → exit codes, the stderr console, the
``--quiet``/``--debug`` flags), :mod:`.render` (output formats), :mod:`.runner` (presenting
metrics/decompose/snr/report) and one module per command in :mod:`.commands`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer
from typer.core import TyperCommand, TyperOption

from .. import __version__
from .boundary import EXIT_INTERNAL, EXIT_INTERRUPTED, DebugOpt, QuietOpt, command, set_root_flags
from .parsing import OneLineGroup
from .commands import (convert, decompose, inspect, keys, metrics, plot, report, simulate,
                       snr)


class _Group(OneLineGroup):
    """The root: parse errors in one line, ``--help`` without a ``<bool>`` placeholder."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


app = typer.Typer(
    cls=_Group,
    name="ncanalyze",
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
                                                metavar="",
                                                help="Print the version and exit.")] = False,
          quiet: QuietOpt = False, debug: DebugOpt = False):
    """Measure Neural Collapse from saved training runs."""
    set_root_flags(quiet=quiet, debug=debug)


#: Command modules in the order ``ncanalyze --help`` lists them; each holds a function named
#: after the command (returning its exit code) and the ``EPILOG`` example of its ``--help``.
COMMANDS = (inspect, metrics, decompose, snr, report, keys, plot, simulate, convert)


def _metavar(option: TyperOption) -> str:
    """The word for what a non-numeric option takes (numeric ones are named by
    :func:`~ncanalyze.cli.parsing.strict_numbers`): FILE for a path, else TEXT. The path is
    recognised from the annotation (typer ≥ 0.26) or the click type (earlier typer)."""
    descriptor = getattr(option, "type_descriptor", None)
    if descriptor is not None:
        kind = getattr(descriptor, "annotation", None)
        kind = (get_args(kind) or (None,))[0] if get_origin(kind) is list else kind
        return "FILE" if kind is Path else "TEXT"
    # typer < 0.26 is built on click (a later typer vendors it and click may be absent).
    from click import Path as ClickPath

    return "FILE" if isinstance(getattr(option, "type", None), ClickPath) else "TEXT"


class _Command(TyperCommand):
    """A command whose help names what an option takes in words (N, X, FILE, TEXT) and shows
    nothing after a flag, instead of Typer's ``<bool>``/``<list[str]>`` placeholders."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, TyperOption) and p.metavar is None:
                p.metavar = "" if p.is_flag else _metavar(p)
        return params

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


def _helps(fn) -> tuple[str, str]:
    """(help, short help) from a command's docstring: its lines joined, so that the terminal
    wraps them, and the first sentence for the command list."""
    text = " ".join((fn.__doc__ or "").split())
    first = re.split(r"(?<!\bal)\.\s+(?=[A-Z])|;\s", text, maxsplit=1)[0].rstrip(".")
    return text, first


for _module in COMMANDS:
    _name = _module.__name__.rsplit(".", 1)[-1]
    _fn = getattr(_module, _name)
    _help, _short = _helps(_fn)
    app.command(_name, epilog=_module.EPILOG, cls=_Command, help=_help,
                short_help=_short)(command(_fn))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ncanalyze")


__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "app", "main"]
