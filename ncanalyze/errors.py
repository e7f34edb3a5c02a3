"""The one exception family of ncanalyze.

Every error a user can cause is an :class:`NcanalyzeError`; the CLI turns it into one line on
stderr and the exit code carried by its class (docs/RELIABILITY.md §1), once, at the CLI
boundary.
"""

from __future__ import annotations

import re

#: Characters a terminal acts on instead of printing: C0/C1 controls (newline, ESC, …), line
#: and paragraph separators, and bidirectional overrides (which reorder what is shown).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e"
                     "\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text) -> str:
    r"""``text`` with every character a terminal would act on shown as a Python escape.

    Names from a file or the command line can hold a newline (which would forge a second
    ``ncanalyze: error:`` line) or ESC/OSC sequences (colours, hyperlinks, title changes).
    Used for every message (:meth:`NcanalyzeError.one_line`, the CLI's stderr lines) and every
    table cell; rich markup is kept literal separately (``markup=False`` or ``rich.text.Text``).
    Idempotent: ``escape(escape(s)) == escape(s)``.

    >>> print(escape("a\nb\x1b[31m"))
    a\nb\x1b[31m
    """
    def sub(m: re.Match) -> str:
        c = m.group()
        if c in _NAMED:
            return _NAMED[c]
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _UNSAFE.sub(sub, str(text))


class NcanalyzeError(Exception):
    """Base class of every error ncanalyze reports to a user."""

    exit_code = 3

    def __init__(self, message: str, *, file=None, dataset=None, epoch=None):
        self.reason = message
        self.file = None if file is None else str(file)
        self.dataset = dataset
        self.epoch = epoch
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message as ``file: dataset: epoch E: what is wrong``."""
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if self.dataset is not None:
            parts.append(self.dataset)
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}")
        parts.append(self.reason)
        return escape(": ".join(parts))


class InputError(NcanalyzeError):
    """Missing, unreadable or invalid input file or data (exit code 3)."""

    exit_code = 3


class UsageError(NcanalyzeError):
    """Invalid command-line usage or API arguments (exit code 2)."""

    exit_code = 2


class OutputError(NcanalyzeError):
    """An output file cannot be written: full disk, no permission, missing folder, another
    writer holds it, or it was replaced while being written (exit code 3). The message names
    the path the user gave, never a temporary name."""

    exit_code = 3


class BackendError(NcanalyzeError):
    """The requested array backend is not available (exit code 4)."""

    exit_code = 4
