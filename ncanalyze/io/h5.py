"""Opening HDF5 files read-only, and the size limits a run file must respect.

Files are always opened read-only (the input file's bytes are never changed). A file being
appended to by a :class:`~ncanalyze.io.writer.RunWriter` is opened in SWMR-read mode with a
bounded number of metadata read attempts, so a damaged checksum fails fast instead of
retrying for hours.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import stat

import h5py

from ..errors import InputError
from ..limits import (MAX_CLASSES, MAX_CLASSES_X_FEATURES, MAX_EPOCHS,  # noqa: F401
                      MAX_FEATURES, MAX_SAMPLES)

#: Target size of one row chunk read from ``/features`` (bytes, in the file's dtype).
DEFAULT_CHUNK_BYTES = 16 * 2**20
#: Largest HDF5 chunk of a filtered (compressed) dataset: HDF5 decodes whole chunks.
MAX_FILTERED_CHUNK_BYTES = 256 * 2**20
#: Metadata read attempts of a SWMR reader. HDF5's default (100, sleeping 1 ns, 2 ns, 4 ns, …
#: between attempts) makes opening a file with a bad checksum hang for hours; 24 attempts
#: wait at most ~17 ms per metadata entry, ample for a writer's flush in progress.
SWMR_READ_ATTEMPTS = 24
#: What h5py raises for damaged or malformed files.
H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


def gib(nbytes: float) -> str:
    """``nbytes`` as a short GiB string for messages."""
    return f"{nbytes / 2**30:.3g} GiB"


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, from its ``st_mode``, for messages."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"


def open_file(path) -> h5py.File:
    """Open an HDF5 file read-only, in SWMR-read mode when possible.

    Raises
    ------
    InputError
        Missing, not a regular file (a FIFO, a device), unreadable, not HDF5, truncated, damaged, or held open by a non-SWMR writer.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("no such file", file=path)
    if os.path.isdir(path):
        raise InputError("is a directory, not a run file", file=path)
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        # Opening a FIFO blocks until a writer appears; a device reads without end.
        raise InputError(f"is not a regular file (it is {file_kind(mode)})", file=path)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied (cannot read the file)", file=path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise InputError(f"cannot be read: {exc}", file=path) from exc
    if not is_hdf5:
        size = os.path.getsize(path)
        what = "is empty (0 bytes)" if size == 0 else "is not an HDF5 file (no HDF5 signature)"
        raise InputError(what, file=path)
    try:
        # SWMR-read sees a consistent file while a RunWriter appends to it.
        return _open_swmr_read(path)
    except H5_ERRORS:
        pass
    try:
        return h5py.File(path, "r")
    except H5_ERRORS as exc:
        text = str(exc)
        if "already open for write" in text and _set_read_attempts() is None:
            try:  # a live SWMR writer, on a platform where retries cannot be bounded
                return h5py.File(path, "r", swmr=True)
            except OSError:
                pass
        if "already open for write" in text:
            raise InputError(
                "no complete epoch yet: the file is held open by a writer that is not in SWMR "
                "mode, or such a writer was killed (HDF5: file is already open for write; "
                "`h5clear -s` on a copy clears the flag of a dead writer)", file=path) from exc
        if "truncated" in text:
            raise InputError(f"is truncated (HDF5: {text})", file=path) from exc
        raise InputError(f"cannot be read as HDF5 (damaged?): {text}", file=path) from exc


@functools.lru_cache(maxsize=1)
def _set_read_attempts():
    """``H5Pset_metadata_read_attempts`` of the HDF5 library h5py uses (h5py does not wrap it).

    Returns ``None`` where the library cannot be located (then SWMR-read is not used).
    """
    try:
        with open("/proc/self/maps") as fh:
            paths = {m.group(1) for m in (re.search(r"(/\S*/libhdf5[-.][^/\s]*)$", line.rstrip())
                                          for line in fh) if m}
        paths = [p for p in paths if ".so" in p and "hdf5_hl" not in p]
        if len(paths) != 1:
            return None
        fn = ctypes.CDLL(paths[0]).H5Pset_metadata_read_attempts
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_uint], ctypes.c_int
    return fn


def _open_swmr_read(path: str) -> h5py.File:
    """Open read-only in SWMR-read mode with a bounded number of metadata read attempts."""
    set_attempts = _set_read_attempts()
    if set_attempts is None:
        raise OSError("SWMR-read with bounded retries is unavailable here")
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    if set_attempts(fapl.id, SWMR_READ_ATTEMPTS) < 0:
        raise OSError("H5Pset_metadata_read_attempts failed")
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


# ---------------------------------------------------------------- liveness (--follow)
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: File-consistency flags of superblock v2/v3: open for write (bit 0), SWMR write (bit 2).
_WRITE_FLAGS = 0x01 | 0x04


def _superblock_head(path) -> bytes | None:
    """The first 12 bytes of the HDF5 superblock of ``path``, or None (no signature, unreadable).

    The superblock is at byte 0 or at 512, 1024, 2048, … (after a user block).
    """
    try:
        with open(path, "rb") as fh:
            offset = 0
            size = os.fstat(fh.fileno()).st_size
            while offset + 12 <= size:
                fh.seek(offset)
                head = fh.read(12)
                if head[:8] == _SIGNATURE:
                    return head
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return None
    return None


def is_hdf5(path) -> bool:
    """Whether ``path`` carries the HDF5 signature (a cheap look, no parsing)."""
    return _superblock_head(path) is not None


def writer_active(path) -> bool:
    """Whether an HDF5 writer has ``path`` open (False for a closed or unreadable file).

    Read from the superblock's file-consistency flags (versions 2 and 3, which SWMR requires):
    HDF5 sets them while a file is open for writing and clears them on close, so a writer
    killed without closing leaves them set. A file without them is treated as closed.
    """
    head = _superblock_head(path)
    return head is not None and head[8] in (2, 3) and bool(head[11] & _WRITE_FLAGS)
