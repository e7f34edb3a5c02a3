"""Convert a folder of per-epoch dumps into a run file (``ncanalyze convert DIR OUT.h5``).

Most training scripts save one file per epoch. Accepted inputs, one per epoch, whose names
carry the epoch number (the last integer in the name: ``epoch_007.npz``, ``ep7.npz``,
``feats-12.pt``):

* ``.npz`` (read with ``allow_pickle=False``): arrays ``features`` (N, P), ``labels`` (N,)
  and optionally ``weight`` (C, P), ``bias`` (C,).
* ``.pt`` / ``.pth`` (needs torch; read with ``torch.load(weights_only=True)``, which refuses
  pickled code): a dict of tensors with the same keys.

Any other entry that is a numeric scalar (``train_loss``, ``lr``, a 0-d or one-element
array or tensor, a Python number) is carried into ``/scalars/<name>``; the scalars are those of
the first dump (an epoch that lacks one records NaN). Every other entry is ignored and listed in
the result (``"ignored"``), so nothing is dropped silently.

Labels must be identical in every file; shapes must agree across epochs; every file has
weight (bias) or none has. The output is written through :class:`RunWriter` to a temporary
name and renamed, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, check_outputs, check_overwrite, resolve_output
from .errors import InputError, UsageError
from .lock import WriterLock
from .memory import DEFAULT_FRACTION, available_memory

SUFFIXES = (".npz", ".pt", ".pth")
KEYS = ("features", "labels", "weight", "bias")
#: Entry names that cannot be scalars (add_epoch's own parameters; the epoch number comes from
#: the file name).
RESERVED = ("epoch", "layers", "splits", "self")
_NUMBER = re.compile(r"(\d+)")


def epoch_of(name: str) -> int | None:
    """The epoch number carried by a file name: its last run of digits (``ep_007.npz`` → 7)."""
    stem = name
    for suffix in SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    found = _NUMBER.findall(stem)
    return int(found[-1]) if found else None


def find_dumps(folder) -> list[tuple[int, Path]]:
    """The dump files of ``folder`` sorted by epoch.

    Raises
    ------
    InputError
        Missing folder, no dump file, a name without a number, two files for one epoch, or a
        mix of .npz and .pt files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", file=str(folder))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise InputError(f"no {'/'.join(SUFFIXES)} files", file=str(folder))
    kinds = {".npz" if p.suffix == ".npz" else ".pt" for p in files}
    if len(kinds) > 1:
        raise InputError("mixes .npz and .pt dumps; put one kind in the folder", file=str(folder))
    by_epoch: dict[int, Path] = {}
    for p in files:
        e = epoch_of(p.name)
        if e is None:
            raise InputError("file name carries no epoch number (e.g. epoch_007.npz)",
                             file=str(p))
        if e in by_epoch:
            raise InputError(f"epoch {e} appears twice: {by_epoch[e].name} and {p.name}",
                             file=str(folder))
        by_epoch[e] = p
    return sorted(by_epoch.items())


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


def _check(data: dict[str, np.ndarray], first: dict[str, np.ndarray], path: Path,
           epoch: int) -> None:
    f = data["features"]
    if f.ndim != 2:
        raise InputError(f"features must be 2-D (N, P), got shape {f.shape}", file=str(path),
                         dataset="features", epoch=epoch)
    y = data["labels"]
    if y.ndim != 1 or y.shape[0] != f.shape[0]:
        raise InputError(f"labels shape {y.shape} does not match features {f.shape}",
                         file=str(path), dataset="labels", epoch=epoch)
    if data is first:
        return
    if f.shape != first["features"].shape:
        raise InputError(f"features shape {f.shape} differs from the first epoch's "
                         f"{first['features'].shape}", file=str(path), dataset="features",
                         epoch=epoch)
    if not np.array_equal(y, first["labels"]):
        changed = int(np.sum(y != first["labels"]))
        raise InputError(f"labels differ from the first epoch's ({changed} of {y.shape[0]} "
                         "changed): dump the training set in a fixed order (shuffle=False)",
                         file=str(path), dataset="labels", epoch=epoch)
    for k in ("weight", "bias"):
        if (k in data) != (k in first):
            raise InputError(f"{k} is {'present' if k in data else 'missing'} here but "
                             f"{'present' if k in first else 'missing'} in the first epoch",
                             file=str(path), dataset=k, epoch=epoch)
        if k in data and data[k].shape != first[k].shape:
            raise InputError(f"{k} shape {data[k].shape} differs from the first epoch's "
                             f"{first[k].shape}", file=str(path), dataset=k, epoch=epoch)


def convert(folder, out, *, num_classes: int | None = None, weight_decay: float | None = None,
            loss: str | None = None, overwrite: bool = False) -> dict:
    """Write the dumps of ``folder`` into the run file ``out``.

    Parameters
    ----------
    folder : str or os.PathLike
    out : str or os.PathLike
    num_classes, weight_decay, loss : optional
        Stored as the run's attributes.
    overwrite : bool, default False

    Returns
    -------
    dict
        ``{"epochs": [...], "samples": N, "features": P, "weight": bool, "bias": bool,
        "scalars": [names], "ignored": {name: what}}``.

    Raises
    ------
    InputError
        Inconsistent or unreadable dumps (nothing is written).
    UsageError
        ``out`` exists and ``overwrite`` is false, is one of the dumps, or is not a regular
        file.
    OutputError
        Another writer holds ``out``, or it cannot be written.
    """
    from .io.schema import check_num_classes, check_weight_decay

    if weight_decay is not None:  # the reader's rule; an option, so a usage error
        try:
            weight_decay = check_weight_decay(weight_decay)
        except ValueError as exc:
            raise UsageError(f"--weight-decay: {exc}") from None
    if num_classes is not None:  # an option, so a usage error (the writer's rule)
        try:
            check_num_classes(num_classes)
        except ValueError as exc:
            raise UsageError(f"--num-classes: {exc}") from None
    out = os.fspath(out)
    resolve_output(out, regular=True)
    with WriterLock(out):
        check_overwrite(out, overwrite)
        dumps = find_dumps(folder)
        check_outputs({"output": out}, [path for _, path in dumps])
        return _convert(dumps, out, num_classes, weight_decay, loss)


def _convert(dumps, out: str, num_classes, weight_decay, loss) -> dict:
    from .io.writer import RunWriter

    first: dict[str, np.ndarray] | None = None
    names: list[str] = []
    ignored: dict[str, str] = {}
    with atomic_path(out, regular=True) as tmp:
        os.unlink(tmp)  # RunWriter creates the file itself
        writer = None
        try:
            for epoch, path in dumps:
                data, scalars, skipped = load_dump(path)
                ignored.update(skipped)
                _check(data, first if first is not None else data, path, epoch)
                if first is None:
                    first = data
                    names = sorted(scalars)
                    labels = data["labels"]
                    if not np.issubdtype(labels.dtype, np.integer):
                        raise InputError(f"labels must be integers, got {labels.dtype}",
                                         file=str(path), dataset="labels", epoch=epoch)
                    try:
                        writer = RunWriter(tmp, labels, num_classes=num_classes,
                                           weight_decay=weight_decay, loss=loss)
                    except UsageError as exc:
                        raise InputError(exc.reason, file=str(path), dataset="labels",
                                         epoch=epoch) from exc
                try:
                    ignored.update({k: "a scalar missing from the first dump"
                                    for k in scalars if k not in names})
                    writer.add_epoch(epoch, data["features"], data.get("weight"),
                                     data.get("bias"),
                                     **{k: scalars.get(k, float("nan")) for k in names})
                except UsageError as exc:  # shapes the writer refuses are bad input here
                    raise InputError(exc.reason, file=str(path), epoch=epoch) from exc
        finally:
            if writer is not None:
                writer.close()
    assert first is not None
    return {"epochs": [e for e, _ in dumps], "samples": int(first["features"].shape[0]),
            "features": int(first["features"].shape[1]), "weight": "weight" in first,
            "bias": "bias" in first, "scalars": names, "ignored": ignored}
