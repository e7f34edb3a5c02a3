"""How a run file appears at its path: the one sequence every run writer follows.

1. **Lock**: one writer per run (:class:`~ncanalyze.lock.WriterLock` on the path's real target,
   symlinks followed), then the ``exists and not overwrite`` rule — in this order, so that
   two writers racing for a new name cannot both pass the check.
2. **Temporary name**: the content is written to a hidden ``.NAME.*.partial`` file beside the
   target (same file system, so the rename is atomic).
3. **Publish**: the temporary file gets the permissions a plain ``open`` would give (or the
   replaced file's), is flushed to disk and renamed onto the target; a reader sees the old
   file or the complete new one. A failure removes the temporary file.

:class:`RunPublisher` is the sequence; :class:`~ncanalyze.io.writer.RunWriter` publishes
twice through it (the header, then the first complete epoch in SWMR mode), and
:func:`publish_when_done` publishes a whole run once it is written (``convert``,
``simulate``: an interrupted or failed run leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from ..atomic import (check_overwrite, file_mode, fsync_folder, output_errors, resolve_output,
                      temp_beside)
from ..errors import NcanalyzeError
from ..lock import WriterLock


class RunPublisher:
    """The writer lock of ``path`` (held until :meth:`release`), temporary names beside it,
    and the atomic publish onto it.

    Parameters
    ----------
    path : str or os.PathLike
        The run, as the user named it (errors name it, never a temporary name).
    overwrite : bool
        Replace an existing ``path`` (else a UsageError, after the lock is taken).

    Raises
    ------
    UsageError
        ``path`` exists and not ``overwrite``, or is not a regular file or new name.
    OutputError
        Another writer holds the lock, or the folder cannot be written.
    """

    def __init__(self, path, *, overwrite: bool = False):
        self.path = os.fspath(path)
        self.target, _ = resolve_output(self.path, regular=True)
        self.lock = WriterLock(self.target)
        try:
            check_overwrite(self.path, overwrite)
        except BaseException:
            self.lock.release()
            raise

    def temp_name(self) -> str:
        """A new, empty hidden file beside the target (:func:`~ncanalyze.atomic.temp_beside`)."""
        with output_errors(self.path):
            return temp_beside(self.target, ".partial")

    def publish(self, tmp: str) -> tuple[int, int]:
        """Rename the written ``tmp`` onto the target; return the published (device, inode)."""
        with output_errors(self.path):
            os.chmod(tmp, file_mode(self.target))  # mkstemp makes owner-only files
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
                st = os.fstat(fh.fileno())
            os.replace(tmp, self.target)
        fsync_folder(os.path.dirname(self.target))
        return st.st_dev, st.st_ino

    def release(self) -> None:
        """Release the writer lock (idempotent)."""
        self.lock.release()


@contextlib.contextmanager
def publish_when_done(path, *, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary name to write a whole run to (it does not exist yet); when the block
    succeeds the run is published at ``path``, when it fails (any exception, Ctrl-C included)
    the temporary file is removed and an existing ``path`` is left as it was. The writer lock
    of ``path`` is held throughout. An ncanalyze error naming the temporary file is re-raised
    naming ``path``."""
    publisher = RunPublisher(path, overwrite=overwrite)
    try:
        tmp = publisher.temp_name()
        os.unlink(tmp)  # the run's writer creates it
        try:
            try:
                yield tmp
            except NcanalyzeError as exc:
                if exc.file == tmp:
                    raise type(exc)(exc.reason, file=publisher.path, dataset=exc.dataset,
                                    epoch=exc.epoch) from exc
                raise
            publisher.publish(tmp)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    finally:
        publisher.release()
