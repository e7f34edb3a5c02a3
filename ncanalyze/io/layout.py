"""A tolerant walk over an HDF5 file's members, for ``ncanalyze inspect``."""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..errors import InputError


def describe_layout(path) -> dict:
    """List the groups, datasets, attributes and links of an HDF5 file without reading data.

    Returns
    -------
    dict
        ``{"file", "size_bytes", "attrs", "members": [{"path", "kind", ...}]}``; works on
        files that do not follow SPEC §1 (nothing is validated here).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("no such file", file=path)
    if not h5py.is_hdf5(path):
        raise InputError("not an HDF5 file", file=path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"cannot be read as HDF5 (truncated or damaged?): {exc}",
                         file=path) from exc
    members: list[dict] = []
    with f:
        names: list[str] = []
        f.visit_links(lambda name: names.append(name))
        for name in names:
            link = f.get(name, getlink=True)
            entry = {"path": "/" + name}
            if isinstance(link, h5py.ExternalLink):
                entry.update(kind="external link", target=f"{link.filename}:{link.path}")
            elif isinstance(link, h5py.SoftLink):
                entry.update(kind="soft link", target=link.path)
            else:
                obj = f.get(name)
                if isinstance(obj, h5py.Dataset):
                    filters = []
                    if obj.compression:
                        filters.append(str(obj.compression))
                    if obj.shuffle:
                        filters.append("shuffle")
                    entry.update(kind="dataset", shape=list(obj.shape), dtype=str(obj.dtype),
                                 chunks=None if obj.chunks is None else list(obj.chunks),
                                 filters=filters, virtual=bool(obj.is_virtual),
                                 nbytes=int(np.prod(obj.shape, dtype=np.int64)) * obj.dtype.itemsize)
                else:
                    entry.update(kind="group")
            members.append(entry)
        attrs = {}
        for k, v in f.attrs.items():
            v = v.decode(errors="replace") if isinstance(v, bytes) else v
            attrs[k] = v.item() if isinstance(v, np.generic) else (
                v.tolist() if isinstance(v, np.ndarray) else str(v) if not isinstance(
                    v, (int, float, str)) else v)
    return {"file": path, "size_bytes": os.path.getsize(path), "attrs": attrs,
            "members": members}
