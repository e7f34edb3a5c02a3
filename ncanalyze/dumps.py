"""Reading one per-epoch dump file (``.npz`` or ``.pt``) for ``ncanalyze convert``.

Only the entries convert uses are loaded — ``features``, ``labels``, ``weight``, ``bias`` and
entries holding one real number (scalars such as ``train_loss``) — within one memory budget
per dump (:func:`dump_budget`); every other entry is described from its header and never read
(docs/RELIABILITY.md §6). ``.npz`` archives are read entry by entry with ``zipfile`` and
``np.lib.format`` (no pickles, nothing allocated before the entry's size is checked); ``.pt``
files with ``torch.load(weights_only=True)`` (no code from the file runs), memory-mapped.
torch is imported here as the training framework that wrote the dumps, not as a backend.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, UsageError
from .memory import DEFAULT_FRACTION, available_memory

KEYS = ("features", "labels", "weight", "bias")
#: Entry names that cannot be scalars (add_epoch's own parameters; the epoch number comes from
#: the file name).
RESERVED = ("epoch", "layers", "splits", "self")


#: Largest total of the members one dump may load (bytes), whatever the memory available.
MAX_DUMP_BYTES = 2**34
#: Zip compression methods ``zipfile`` decodes (stored, deflate); others are refused.
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
#: How an .npz (a zip archive) starts: a local file header, or an empty archive's end record.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def dump_budget() -> int:
    """Bytes the members of one dump may take once loaded: half the available memory, at
    most :data:`MAX_DUMP_BYTES`. One budget for all the members used (the arrays and
    scalars); members not used are never loaded."""
    avail = available_memory()
    return MAX_DUMP_BYTES if avail is None else min(MAX_DUMP_BYTES,
                                                     int(avail * DEFAULT_FRACTION))


def _used(key: str, shape: tuple, kind: str) -> bool:
    """Whether convert uses a member: one of :data:`KEYS`, or one real number (a scalar)."""
    return key in KEYS or (math.prod(shape) == 1 and kind in "biuf")


def _describe_header(shape: tuple, dtype) -> str:
    return f"array {dtype} {'×'.join(map(str, shape)) or 'scalar'}"


class _Budget:
    """The bytes the used members of one dump take, against :func:`dump_budget`."""

    def __init__(self, path: Path):
        self.path, self.left, self.total = path, dump_budget(), 0

    def take(self, key: str, nbytes: int) -> None:
        self.total += nbytes
        if self.total > self.left:
            raise InputError(f"member {key!r} brings the arrays used to {self.total / 2**30:.3g} "
                             f"GiB, above the budget of {self.left / 2**30:.3g} GiB for one dump "
                             "(half the available memory, at most "
                             f"{MAX_DUMP_BYTES / 2**30:g} GiB)", file=str(self.path))


def _npz_header(member) -> tuple[tuple, np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):  # 3.0 differs from 2.0 only in utf-8 field names
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:  # pragma: no cover - read_magic accepts only known versions
        raise ValueError(f"unknown .npy format version {version}")
    return shape, dtype


def _load_npz(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The members convert uses (checked against their zip entries before any allocation)
    and a description of the others, which are never loaded.

    ``np.load`` is not used: it allocates an array of the shape a ``.npy`` header declares
    before reading (a few bytes can declare 384 GiB), loads members on access only after
    sniffing the file's first bytes (a ``.npy`` with a zip appended is returned as one
    array), and gives no control over which members are read.
    """
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic not in _ZIP_MAGIC:
            raise InputError(f"is not an .npz archive (a zip file): it starts with {magic!r}",
                             file=str(path))
        used: dict[str, Any] = {}
        ignored: dict[str, str] = {}
        budget = _Budget(path)
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist()]
            if len(set(names)) != len(names):
                raise InputError("holds two zip entries with the same name", file=str(path))
            for info in archive.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if info.flag_bits & 0x1:
                    raise InputError(f"entry {key!r} is encrypted", file=str(path))
                if info.compress_type not in _ZIP_METHODS:
                    raise InputError(f"entry {key!r} uses zip compression method "
                                     f"{info.compress_type}; only stored and deflate are "
                                     "read (np.savez writes those)", file=str(path))
                with archive.open(info) as member:
                    shape, dtype = _npz_header(member)
                    header = member.tell()
                    nbytes = math.prod(shape) * dtype.itemsize
                    what = (f"array {key!r} declares shape {shape} of {dtype} "
                            f"({nbytes / 2**30:.3g} GiB)")
                    if dtype.hasobject:
                        raise InputError(f"cannot be read without unpickling (array {key!r} "
                                         "holds Python objects)", file=str(path))
                    if info.file_size != header + nbytes:
                        raise InputError(f"{what} but its entry holds {info.file_size - header}"
                                         " bytes (damaged or truncated)", file=str(path))
                    if not _used(key, shape, dtype.kind):
                        ignored[key] = _describe_header(shape, dtype)
                        continue
                    budget.take(key, nbytes)
                    member.seek(0)
                    used[key] = np.lib.format.read_array(member, allow_pickle=False)
        return used, ignored
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError,
            RuntimeError, NotImplementedError) as exc:
        raise InputError(f"is not a readable .npz file ({type(exc).__name__}: {_short(exc)})",
                         file=str(path)) from exc


def _short(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception's text, at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _torch_error(exc: BaseException) -> str:
    """torch.load's problem in one line; its advice to retry with ``weights_only=False``
    (which would run code from the file) is never passed on."""
    text = str(exc)
    if "weights_only" in text.lower() or "unpickl" in text.lower():
        return ("holds objects that torch.load(weights_only=True) refuses to unpickle (code or "
                "classes beyond tensors, numbers and containers); ncanalyze never loads those "
                "— save a dict of tensors")
    return f"cannot be read by torch.load(weights_only=True) ({type(exc).__name__}: " \
           f"{_short(exc)})"


def _check_pt_archive(path: Path) -> None:
    """torch.save writes its zip entries stored and unencrypted; anything else is refused
    (a deflated entry cannot be memory-mapped, and would be inflated whole)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.flag_bits & 0x1 or info.compress_type != zipfile.ZIP_STORED:
                    how = "encrypted" if info.flag_bits & 0x1 else (
                        f"compressed (zip method {info.compress_type})")
                    raise InputError(f"entry {info.filename!r} is {how}; torch.save writes "
                                     "its entries uncompressed, so this is not a torch file "
                                     "ncanalyze reads", file=str(path))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"is not a readable .pt archive ({type(exc).__name__}: "
                         f"{_short(exc)})", file=str(path)) from exc


def _load_pt(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The entries convert uses (as NumPy) and a description of the others.

    Zip-format files (torch ≥ 1.6) are memory-mapped (``mmap=True``): an entry not used is
    never read, and the used ones are materialised within one budget. Legacy files are read
    whole, so their size counts against the budget first.
    """
    try:
        import torch
    except ImportError:
        raise UsageError(f"{path}: reading .pt dumps needs torch (pip install torch)") from None
    from .backend import to_numpy

    budget = _Budget(path)
    mapped = zipfile.is_zipfile(path)
    if not mapped:
        budget.take("(whole file, legacy format)", path.stat().st_size)
    else:
        _check_pt_archive(path)
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except Exception as exc:  # torch raises many types for bad or unsafe files
        raise InputError(_torch_error(exc), file=str(path)) from exc
    if not isinstance(obj, dict):
        raise InputError(f"holds a {type(obj).__name__}, expected a dict of tensors "
                         f"with keys {', '.join(KEYS)}", file=str(path))
    used: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    for k, v in obj.items():
        key = str(k)
        if not isinstance(v, torch.Tensor):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and key not in KEYS:
                used[key] = v
            elif key in KEYS:
                raise InputError(f"entry {key!r} is a {type(v).__name__}, not a tensor",
                                 file=str(path))
            else:
                ignored[key] = type(v).__name__
            continue
        kind = "f" if v.is_floating_point() else ("c" if v.is_complex() else "i")
        if not _used(key, tuple(v.shape), kind):
            ignored[key] = f"tensor {v.dtype} {'×'.join(map(str, v.shape)) or 'scalar'}"
            continue
        budget.take(key, v.numel() * max(4, v.element_size()))
        try:
            used[key] = to_numpy(v)
        except UsageError as exc:
            raise InputError(f"entry {key!r}: {exc.reason}", file=str(path)) from None
    return used, ignored


def _scalar(value: Any) -> float | None:
    """``value`` as a float when it is one real number (0-d or one element), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and (
            np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)):
        return float(value.reshape(()))
    return None


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return _describe_header(value.shape, value.dtype)
    return type(value).__name__


def load_dump(path: Path) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, str]]:
    """One dump's arrays, numeric scalars and ignored entries.

    Returns
    -------
    arrays : dict
        ``features``, ``labels`` (and ``weight``, ``bias`` when present) as NumPy arrays.
    scalars : dict of str to float
        The other entries that are one real number.
    ignored : dict of str to str
        Every other entry, with what it is.
    """
    data, ignored = _load_npz(path) if path.suffix == ".npz" else _load_pt(path)
    for k in ("features", "labels"):
        if k not in data:
            raise InputError(f"has no array {k!r} (has: {', '.join(sorted(data)) or 'none'})",
                             file=str(path))
    arrays = {k: np.asarray(data[k]) for k in KEYS if k in data}
    scalars: dict[str, float] = {}
    for k, v in data.items():
        if k in KEYS:
            continue
        value = _scalar(v)
        if k in RESERVED:
            ignored[k] = f"{_describe(v)}, a reserved name"
        elif value is not None and k and "/" not in k and k != "." and k.isprintable():
            scalars[k] = value
        else:
            ignored[k] = _describe(v)
    return arrays, scalars, ignored
