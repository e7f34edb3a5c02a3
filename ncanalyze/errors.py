"""The one exception family of ncanalyze.

Every error a user can cause is an :class:`NcanalyzeError`; the CLI turns it into one line on
stderr and the exit code carried by its class (SPEC §4), once, at the CLI boundary.
"""

from __future__ import annotations


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
        return ": ".join(parts)


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
