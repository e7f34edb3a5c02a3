"""Convert a folder of per-epoch dumps into a run file (``ncanalyze convert DIR OUT.h5``).

Most training scripts save one file per epoch. Accepted inputs, one per epoch, whose names
carry the epoch number (the last integer in the name: ``epoch_007.npz``, ``ep7.npz``,
``feats-12.pt``):

* ``.npz`` (read with ``allow_pickle=False``): arrays ``features`` (N, P), ``labels`` (N,)
  and optionally ``weight`` (C, P), ``bias`` (C,).
* ``.pt`` / ``.pth`` (needs torch; read with ``torch.load(weights_only=True)``, which refuses
  pickled code): a dict of tensors with the same keys.

Labels must be identical in every file; shapes must agree across epochs; every file has
weight (bias) or none has. The output is written through :class:`RunWriter` to a temporary
name and renamed, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import InputError, UsageError

SUFFIXES = (".npz", ".pt", ".pth")
KEYS = ("features", "labels", "weight", "bias")
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


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files if k in KEYS}
    except ValueError as exc:  # object arrays need pickle, which we refuse
        raise InputError(f"cannot be read without unpickling ({exc})", file=str(path)) from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"is not a readable .npz file ({exc})", file=str(path)) from exc


def _load_pt(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise UsageError(f"{path}: reading .pt dumps needs torch (pip install torch)") from None
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad or unsafe files
        raise InputError(f"cannot be read by torch.load(weights_only=True): {exc}",
                         file=str(path)) from exc
    if not isinstance(obj, dict):
        raise InputError(f"holds a {type(obj).__name__}, expected a dict of tensors "
                         f"with keys {', '.join(KEYS)}", file=str(path))
    out = {}
    for k in KEYS:
        if k in obj:
            v = obj[k]
            out[k] = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
    return out


def load_dump(path: Path) -> dict[str, np.ndarray]:
    """Arrays ``features``, ``labels`` (and ``weight``, ``bias`` when present) of one dump."""
    data = _load_npz(path) if path.suffix == ".npz" else _load_pt(path)
    for k in ("features", "labels"):
        if k not in data:
            raise InputError(f"has no array {k!r} (has: {', '.join(sorted(data)) or 'none'})",
                             file=str(path))
    return data


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
        ``{"epochs": [...], "samples": N, "features": P, "weight": bool, "bias": bool}``.

    Raises
    ------
    InputError
        Inconsistent or unreadable dumps (nothing is written).
    UsageError
        ``out`` exists and ``overwrite`` is false.
    """
    from .io.schema import check_weight_decay
    from .io.writer import RunWriter

    if weight_decay is not None:  # the reader's rule; an option, so a usage error
        try:
            weight_decay = check_weight_decay(weight_decay)
        except ValueError as exc:
            raise UsageError(f"--weight-decay: {exc}") from None
    dumps = find_dumps(folder)
    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    first: dict[str, np.ndarray] | None = None
    with atomic_path(out) as tmp:
        os.unlink(tmp)  # RunWriter creates the file itself
        writer = None
        try:
            for epoch, path in dumps:
                data = load_dump(path)
                _check(data, first if first is not None else data, path, epoch)
                if first is None:
                    first = data
                    labels = data["labels"]
                    if not np.issubdtype(labels.dtype, np.integer):
                        raise InputError(f"labels must be integers, got {labels.dtype}",
                                         file=str(path), dataset="labels", epoch=epoch)
                    if labels.min() < 0:
                        raise InputError("labels must be non-negative", file=str(path),
                                         dataset="labels", epoch=epoch)
                    try:
                        writer = RunWriter(tmp, labels, num_classes=num_classes,
                                           weight_decay=weight_decay, loss=loss)
                    except UsageError as exc:
                        raise InputError(exc.reason, file=str(path), dataset="labels",
                                         epoch=epoch) from exc
                try:
                    writer.add_epoch(epoch, data["features"], data.get("weight"),
                                     data.get("bias"))
                except UsageError as exc:  # shapes the writer refuses are bad input here
                    raise InputError(exc.reason, file=str(path), epoch=epoch) from exc
        finally:
            if writer is not None:
                writer.close()
    assert first is not None
    return {"epochs": [e for e, _ in dumps], "samples": int(first["features"].shape[0]),
            "features": int(first["features"].shape[1]), "weight": "weight" in first,
            "bias": "bias" in first}
