"""A tolerant walk over an HDF5 file's members, for ``ncanalyze inspect``."""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..errors import InputError
from .h5 import H5_ERRORS, open_file
from .trust import Refused, Resolved, check_dataset, filters, link_info


def describe_layout(path) -> dict:
    """List the groups, datasets, attributes and links of an HDF5 file without reading data.

    Returns
    -------
    dict
        ``{"file", "size_bytes", "attrs", "members": [{"path", "kind", ...}]}``; works on
        files that do not follow docs/FORMAT.md (nothing is validated here).
    """
    path = os.fspath(path)
    f = open_file(path)
    try:
        with f:
            return _describe(f, path)
    except H5_ERRORS as exc:
        raise InputError(f"is damaged: cannot list its members (HDF5: {exc})", file=path) from exc


def _describe(f: h5py.File, path: str) -> dict:
    members: list[dict] = []
    names: list[str] = []
    f.visit_links(lambda name: names.append(name))
    for name in names:
        # The link's own record only: its target is never opened.
        kind, value = link_info(f, "/" + name) or (None, None)
        entry = {"path": "/" + name}
        if kind == h5py.h5l.TYPE_EXTERNAL:
            filename, target = (v.decode(errors="replace") for v in value)
            entry.update(kind="external link", target=f"{filename}:{target}")
        elif kind == h5py.h5l.TYPE_SOFT:
            entry.update(kind="soft link", target=value.decode(errors="replace"))
        elif kind != h5py.h5l.TYPE_HARD:
            entry.update(kind="user-defined link")
        else:
            try:
                entry.update(_describe_object(f, "/" + name))
            except H5_ERRORS as exc:
                entry.update(kind="unreadable", error=str(exc))
        members.append(entry)
    attrs = {}
    for k in f.attrs.keys():
        try:
            v = f.attrs[k]
        except H5_ERRORS as exc:
            attrs[k] = f"<unreadable: {exc}>"
            continue
        attrs[k] = _plain(v)
    return {"file": path, "size_bytes": os.path.getsize(path), "attrs": attrs,
            "members": members}


def _plain(value):
    """An attribute value as JSON-safe Python (strings for anything exotic or non-finite)."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        if value.size > 16:
            return f"<array {value.shape} {value.dtype}>"
        return [_plain(v) for v in value.ravel().tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _describe_object(f: h5py.File, name: str) -> dict:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        return {"kind": "group" if isinstance(obj, h5py.Group) else type(obj).__name__.lower()}
    if obj.is_virtual:
        # Its shape can make HDF5 open the sources (an unlimited mapping): check them first.
        try:
            check_dataset(f, Resolved(name, True))
        except Refused as exc:
            return {"kind": "refused virtual dataset", "target": str(exc)}
    dcpl = obj.id.get_create_plist()
    nbytes = int(np.prod(obj.shape, dtype=np.float64)) * obj.dtype.itemsize if obj.shape else \
        obj.dtype.itemsize
    return {"kind": "dataset", "shape": list(obj.shape or ()), "dtype": str(obj.dtype),
            "chunks": None if obj.chunks is None else list(obj.chunks), "filters": [label or str(code) for code, label in filters(obj)],
            "virtual": bool(obj.is_virtual),
            "external": dcpl.get_external_count() > 0, "nbytes": nbytes}
