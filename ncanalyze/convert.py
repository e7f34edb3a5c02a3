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
the result (``"ignored"``), so nothing is dropped silently. Reading one dump, within one
memory budget and without loading the entries not used, is :mod:`ncanalyze.dumps`.

Labels must be identical in every file; shapes must agree across epochs; every file has
weight (bias) or none has. The output is written through :class:`RunWriter` to a temporary
name and renamed, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .atomic import check_outputs
from .dumps import load_dump
from .errors import InputError, UsageError

SUFFIXES = (".npz", ".pt", ".pth")
_NUMBER = re.compile(r"([0-9]+)", re.ASCII)


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
    from .io.publish import publish_when_done

    out = os.fspath(out)
    with publish_when_done(out, overwrite=overwrite) as tmp:
        dumps = find_dumps(folder)
        check_outputs({"output": out}, [path for _, path in dumps])
        return _convert(dumps, tmp, num_classes, weight_decay, loss)


def _convert(dumps, tmp: str, num_classes, weight_decay, loss) -> dict:
    """Write ``dumps`` to the new run file ``tmp`` (published by the caller)."""
    from .io.writer import RunWriter

    first: dict[str, np.ndarray] | None = None
    names: list[str] = []
    ignored: dict[str, str] = {}
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
