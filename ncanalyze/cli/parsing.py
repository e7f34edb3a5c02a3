"""Strict parsing of the command line, and its errors as one line (docs/RELIABILITY.md §1).

Typer converts numbers leniently (``int("1_0")`` is 10, ``"12.0"`` is 12, ``float("١")`` is
1.0, ``"nan"`` is a float) and prints its own parse errors as multi-line boxes. Here:

* :func:`strict_numbers` gives every ``int``/``float`` option of a command a parser that takes
  ASCII decimal spellings only (``[+-]digits`` for integers; the usual decimal and exponent
  forms for floats, finite only) — one rule for every numeric option, present and future;
* :class:`OneLineGroup`, the root command group, prints any parse error (bad value, unknown
  option, missing argument, unknown command) as one ``ncanalyze: error: …`` line, exit 2.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import typing
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # typer ≥ 0.2x vendors click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _click_errors

from ..errors import escape

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def parse_int(text: Any) -> int:
    """An integer written with ASCII digits and an optional sign (``typer.BadParameter``
    otherwise: no ``1_0``, ``12.0``, ``1e3``, ``0x10``, spaces or non-ASCII digits)."""
    if isinstance(text, int) and not isinstance(text, bool):  # a default, already converted
        return text
    if not isinstance(text, str) or not _INT.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not an integer (use ASCII digits, e.g. 10)")
    return int(text)


def parse_float(text: Any) -> float:
    """A finite number in ASCII decimal or exponent notation (``0.5``, ``.5``, ``1e-3``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str) and _FLOAT.fullmatch(text):
        value = float(text)
    else:
        value = math.nan
    if not math.isfinite(value):
        raise typer.BadParameter(f"{text!r} is not a finite number (use e.g. 0.5 or 1e-3)")
    return value


_PARSERS = {int: parse_int, float: parse_float}
_METAVARS = {int: "N", float: "X"}


def _numeric(annotation) -> type | None:
    """``int`` or ``float`` when ``annotation`` is one of them or ``Optional`` of one."""
    if annotation in _PARSERS:
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1 and args[0] in _PARSERS:
        return args[0]
    return None


def strict_numbers(params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """``params`` with :func:`parse_int`/:func:`parse_float` set on every numeric option."""
    out = []
    for param in params:
        ann = param.annotation
        if typing.get_origin(ann) is Annotated:
            base, *extras = typing.get_args(ann)
            kind = _numeric(base)
            if kind is not None:
                extras = [_with_parser(e, _PARSERS[kind], _METAVARS[kind]) for e in extras]
                param = param.replace(annotation=Annotated[(base, *extras)])
        out.append(param)
    return out


def _with_parser(info, parser, metavar: str):
    """A copy of ``info`` parsing with ``parser``, shown in help as ``metavar`` unless it
    names its own (a custom parser would otherwise be shown as TEXT)."""
    if not isinstance(info, typer.models.ParameterInfo) or info.parser is not None:
        return info
    new = object.__new__(type(info))
    new.__dict__.update(info.__dict__)
    new.parser = parser
    if new.metavar is None:
        new.metavar = metavar
    return new


class OneLineGroup(TyperGroup):
    """The root group: parse errors become one ``ncanalyze: error: …`` line (exit 2)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _click_errors.NoArgsIsHelpError as exc:  # bare `ncanalyze`: the help
            exc.show()
            sys.exit(exc.exit_code)
        except _click_errors.ClickException as exc:
            where = ""
            ctx = getattr(exc, "ctx", None)
            if ctx is not None and ctx.command_path:
                where = f" (see {ctx.command_path} --help)"
            message = " ".join(exc.format_message().split())
            sys.stderr.write(f"ncanalyze: error: {escape(message)}{where}\n")
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.stderr.write("ncanalyze: interrupted\n")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


__all__ = ["OneLineGroup", "parse_float", "parse_int", "strict_numbers"]
