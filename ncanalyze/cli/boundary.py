"""The CLI's one error boundary: exceptions → one stderr line and a documented exit code.

Every command is wrapped by :func:`command`, which also gives it the ``--quiet`` and ``--debug``
options (accepted after the command as well as before it, ``ncanalyze --debug metrics …``), so
the command functions themselves take only the options they use. Errors of the
:class:`~ncanalyze.errors.NcanalyzeError` family carry their own exit code; an ``OSError`` is an
input error; anything else is a bug (exit :data:`EXIT_INTERNAL`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import shutil
import signal
import sys
import textwrap
import threading
import traceback
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Callable

import typer
from rich.console import Console

from ..errors import InputError, NcanalyzeError, escape
from .parsing import strict_numbers

#: Exit code of an unexpected internal error (a bug: please report it).
EXIT_INTERNAL = 70
#: Exit code after Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

#: Signals that end a command like Ctrl-C does (every output's temporary file removed), with
#: exit code 128 + the signal number, as shells report it (SIGTERM 143, SIGHUP 129).
TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                            if hasattr(signal, name))


class Terminated(BaseException):
    """A terminating signal arrived; raised in the main thread so that everything unwinds."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def terminating_signals():
    """Turn :data:`TERMINATING_SIGNALS` into :class:`Terminated` while the block runs (only
    where their handler is the default one, and in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        for sig in installed:  # a second signal must not interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum)

    installed = {}
    for sig in TERMINATING_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            installed[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in installed.items():
            signal.signal(sig, old)


#: Warnings, errors, progress and gate verdicts: never on stdout.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Flags:
    """The global flags of one invocation."""

    quiet: bool = False
    debug: bool = False


_flags: ContextVar[Flags] = ContextVar("ncanalyze_cli_flags", default=Flags())


def flags() -> Flags:
    """The ``--quiet``/``--debug`` flags of the running invocation."""
    return _flags.get()


def set_root_flags(quiet: bool, debug: bool) -> None:
    """Record the flags given before the command name (``ncanalyze --quiet metrics …``)."""
    _flags.set(Flags(quiet=quiet, debug=debug))


def say(text: str) -> None:
    """A line of a command's result on stdout: one line into a pipe or file, wrapped at word
    boundaries (continuations indented) to a terminal's width."""
    if sys.stdout.isatty():
        text = textwrap.fill(text, width=shutil.get_terminal_size().columns,
                             subsequent_indent="  ", break_long_words=False)
    typer.echo(text)


def warn(message: str) -> None:
    """One ``ncanalyze: warning: …`` line on stderr, unless ``--quiet``."""
    if not flags().quiet:
        err_console.print(f"ncanalyze: warning: {escape(message)}", markup=False)


def report_error(exc: BaseException, debug: bool) -> int:
    """Print one line (or the traceback with ``--debug``) and return the exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, NcanalyzeError):
        err_console.print(f"ncanalyze: error: {escape(exc.one_line())}", markup=False)
        return exc.exit_code
    if isinstance(exc, OSError):
        err_console.print(f"ncanalyze: error: {escape(exc)}", markup=False)
        return InputError.exit_code
    err_console.print(
        f"ncanalyze: internal error: {type(exc).__name__}: {escape(exc)} "
        "(a bug; rerun with --debug and report the traceback)", markup=False)
    return EXIT_INTERNAL


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    warn(f"{category.__name__}: {message}")


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", metavar="",
                                        help="No warnings or progress on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", metavar="",
                                        help="Show the full traceback on errors.")]

_EXTRA = (inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False,
                            annotation=QuietOpt),
          inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False,
                            annotation=DebugOpt))


def command(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Wrap a command function: add ``--quiet``/``--debug`` and map errors to exit codes.

    ``fn`` returns its exit code (``None`` means 0). The wrapper's signature is ``fn``'s plus
    the two flags, which Typer reads to build the command's options.
    """

    @functools.wraps(fn)
    def wrapper(*args, quiet: bool = False, debug: bool = False, **kwargs):
        root = flags()
        token = _flags.set(Flags(quiet=quiet or root.quiet, debug=debug or root.debug))
        try:
            with terminating_signals(), warnings.catch_warnings():
                # Python warnings (NumPy's RuntimeWarnings, …) are ncanalyze warnings: one
                # line each, none under --quiet.
                warnings.simplefilter("ignore" if flags().quiet else "default")
                warnings.showwarning = _show_warning
                code = fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            err_console.print("ncanalyze: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Terminated as exc:
            err_console.print(f"ncanalyze: terminated ({signal.Signals(exc.signum).name})",
                              markup=False)
            raise typer.Exit(128 + exc.signum) from None
        except BaseException as exc:  # noqa: BLE001 - the one boundary
            raise typer.Exit(report_error(exc, flags().debug)) from None
        finally:
            _flags.reset(token)
        raise typer.Exit(code or 0)

    params = strict_numbers(list(inspect.signature(fn, eval_str=True).parameters.values()))
    wrapper.__signature__ = inspect.Signature(params + list(_EXTRA))  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in params}, "quiet": QuietOpt,
                               "debug": DebugOpt}
    return wrapper
