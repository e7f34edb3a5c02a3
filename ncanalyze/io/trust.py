"""What an untrusted file may make the reader touch: links, external data, filters.

A run file is treated as hostile (docs/RELIABILITY.md, threat model): external links,
external raw storage and virtual datasets mapping other files are refused unless the user
passes ``--allow-external``, and a compressed dataset must be decodable here with chunks of
bounded size.
"""

from __future__ import annotations

import math

import h5py

from .h5 import MAX_FILTERED_CHUNK_BYTES, gib


def filters(obj: h5py.Dataset) -> list[tuple[int, str]]:
    """The HDF5 filter pipeline of ``obj`` as ``(code, name)`` pairs, in order."""
    dcpl = obj.id.get_create_plist()
    out = []
    for i in range(dcpl.get_nfilters()):
        code, _flags, _values, name = dcpl.get_filter(i)
        label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        out.append((int(code), label))
    return out


def external_problem(obj: h5py.Dataset) -> str | None:
    """Describe how a dataset's data lives outside the file, or ``None``."""
    if obj.is_virtual:
        for vs in obj.virtual_sources():
            if vs.file_name not in (".", ""):
                return f"is a virtual dataset mapping file {vs.file_name!r}"
    if obj.id.get_create_plist().get_external_count() > 0:
        return "uses external raw storage (data in another file)"
    return None


def filter_problem(obj: h5py.Dataset) -> str | None:
    """Describe a filter of ``obj`` that cannot be decoded here, or a too-large filtered chunk."""
    pipeline = filters(obj)
    for code, label in pipeline:
        if not h5py.h5z.filter_avail(code):
            return (f"needs HDF5 filter {code} ({label or 'unnamed'}), which is not available "
                    "here (install the plugin, e.g. hdf5plugin, or re-write the file with "
                    "h5repack -f NONE)")
    if pipeline and obj.chunks is not None:
        nbytes = math.prod(obj.chunks) * obj.dtype.itemsize
        if nbytes > MAX_FILTERED_CHUNK_BYTES:
            return (f"has compressed chunks of {gib(nbytes)}, which must be decoded whole "
                    f"(limit {gib(MAX_FILTERED_CHUNK_BYTES)}; re-chunk with h5repack -l)")
    return None


def link_problem(f: h5py.File, name: str, depth: int = 0) -> str | None:
    """Describe an external link met while resolving ``name`` (each component), or None."""
    if depth > 16:
        return "soft links nest too deeply"
    current = ""
    for part in [p for p in name.split("/") if p]:
        parent, current = current or "/", f"{current}/{part}"
        link = f.get(current, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            who = "is" if current == name and depth == 0 else f"{current} is"
            return f"{who} an external link to {link.filename}:{link.path}"
        if isinstance(link, h5py.SoftLink):
            target = link.path if link.path.startswith("/") else \
                f"{parent.rstrip('/')}/{link.path}"
            problem = link_problem(f, target, depth + 1)
            if problem:
                return problem
    return None


def open_beside_file(f: h5py.File, name: str) -> h5py.Dataset:
    """Open dataset ``name`` so that its external storage / virtual sources resolve beside the
    file (HDF5's default is the current directory). Used only with ``--allow-external``."""
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_efile_prefix(b"${ORIGIN}")
    dapl.set_virtual_prefix(b"${ORIGIN}")
    return h5py.Dataset(h5py.h5d.open(f.id, name.encode(), dapl))
