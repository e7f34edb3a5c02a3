"""What an untrusted file may make the reader touch: links, external data, filters.

A run file is treated as hostile (docs/RELIABILITY.md, threat model). Before HDF5 opens
anything the reader resolves every path itself, link by link, with ``H5Lexists`` /
``H5Lget_info`` (which never follow the link they look at): soft links are expanded to a
*canonical* path made of hard links only, and an external link is refused without its target
being opened. Every dataset the reader will read is then checked with :func:`check_dataset`:
virtual-dataset sources are followed recursively through the same resolution (a source that
is itself virtual, external raw storage, an external link, another file, or a cycle back to a
dataset on the way), and compressed datasets must be decodable here with chunks of bounded
size. Virtual source names are resolved as HDF5 resolves them (:mod:`~ncanalyze.io.names`):
a printf-style name (``%b``) is checked block by block, as far as HDF5 will read.
``allow_external=True`` (the ``--allow-external`` option) lets HDF5 follow external links,
external raw storage and other files, and :func:`check_dataset` then reports every such file
(each is an input of the command: no output may replace it); cycles, link loops and a
dataset mapping itself are refused regardless.

Length: above the ~350-line guide; link resolution, virtual-source checks and the decoding
bounds are one trust decision over one file and share its state.
"""

from __future__ import annotations

import itertools
import math
import os
import stat
from dataclasses import dataclass

import h5py

from .h5 import MAX_FILTERED_CHUNK_BYTES, file_kind, gib
from .names import outside_files, printf_segments

#: Soft links expanded while resolving one path (POSIX uses 40 for symbolic links).
MAX_SOFT_LINKS = 40
#: Nesting depth of virtual datasets over virtual datasets.
MAX_VIRTUAL_DEPTH = 32
#: Virtual-dataset mappings examined for one dataset (all levels together).
MAX_VIRTUAL_MAPPINGS = 100_000
#: Chunk caches of one file's datasets, in all: every compressed dataset read gets one as
#: large as a row of its chunks (:func:`chunk_cache_bytes`), held while the file is open.
MAX_DECODE_BYTES = 4 * MAX_FILTERED_CHUNK_BYTES
#: Chunk-cache hash slots (HDF5 advises a prime about 100 × the chunks held).
_CACHE_SLOTS = 12_007


class Refused(Exception):
    """A path or dataset reaches outside the file, loops, or cannot be decoded safely.

    Attributes
    ----------
    external : bool
        True when ``--allow-external`` would let it be read.
    """

    def __init__(self, message: str, *, external: bool):
        super().__init__(message)
        self.external = external


@dataclass(frozen=True)
class Resolved:
    """Where a path leads.

    Attributes
    ----------
    path : str
        The canonical path (hard links only), or with ``allow_external`` the path as given
        when it crosses an external link (HDF5 then follows it).
    inside : bool
        Whether ``path`` is canonical in this file.
    link : tuple of str, optional
        ``(file, object)`` of the external link crossed (with ``allow_external``).
    """

    path: str
    inside: bool
    link: tuple[str, str] | None = None


def filters(obj: h5py.Dataset) -> list[tuple[int, str]]:
    """The HDF5 filter pipeline of ``obj`` as ``(code, name)`` pairs, in order."""
    dcpl = obj.id.get_create_plist()
    out = []
    for i in range(dcpl.get_nfilters()):
        code, _flags, _values, name = dcpl.get_filter(i)
        label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        out.append((int(code), label))
    return out


def link_info(f: h5py.File, path: str):
    """``(type, value)`` of the link at ``path`` (its parent must be canonical), or None.

    Neither call follows the link itself, so its target is never opened.
    """
    links, name = f.id.links, path.encode()
    if not links.exists(name):
        return None
    kind = links.get_info(name).type
    return kind, (None if kind == h5py.h5l.TYPE_HARD else links.get_val(name))


def resolve(f: h5py.File, name: str, *, allow_external: bool = False) -> Resolved | None:
    """Resolve ``name`` link by link without letting HDF5 follow any link.

    Returns
    -------
    Resolved or None
        None when a component is missing (or a soft link dangles).

    Raises
    ------
    Refused
        An external link (unless ``allow_external``), a soft-link loop, too many soft links,
        or a link of a user-defined class.
    """
    budget = [MAX_SOFT_LINKS]
    try:
        path = _resolve(f, name, "/", (), budget, name)
    except _External as exc:
        if allow_external:
            return Resolved(name, False, exc.target)
        raise Refused(str(exc), external=True) from None
    return None if path is None else Resolved(path, True)


class _External(Exception):
    def __init__(self, message: str, target: tuple[str, str]):
        super().__init__(message)
        self.target = target


def _resolve(f, name: str, base: str, stack: tuple, budget: list, asked: str) -> str | None:
    current = "/" if name.startswith("/") else base
    for part in name.split("/"):
        if part in ("", "."):
            continue
        candidate = current.rstrip("/") + "/" + part
        link = link_info(f, candidate)
        if link is None:
            return None
        kind, value = link
        if kind == h5py.h5l.TYPE_HARD:
            current = candidate
        elif kind == h5py.h5l.TYPE_SOFT:
            if candidate in stack:
                loop = " → ".join(stack[stack.index(candidate):] + (candidate,))
                raise Refused(f"soft links form a loop ({loop})", external=False)
            budget[0] -= 1
            if budget[0] < 0:
                raise Refused(f"more than {MAX_SOFT_LINKS} soft links to follow",
                              external=False)
            target = value.decode(errors="replace")
            current = _resolve(f, target, current, stack + (candidate,), budget, asked)
            if current is None:
                return None
        elif kind == h5py.h5l.TYPE_EXTERNAL:
            filename, objpath = (v.decode(errors="replace") for v in value)
            who = "is" if candidate == asked else f"{candidate} is"
            raise _External(f"{who} an external link to {filename}:{objpath}",
                            (filename, objpath))
        else:
            raise Refused(f"{candidate} is a link of user-defined class {kind}", external=False)
    return current


def check_dataset(f: h5py.File, path: Resolved, *, allow_external: bool = False,
                  reads: set[str] | None = None) -> h5py.Dataset:
    """Open the dataset at ``path`` after checking everything its data comes from.

    The returned dataset has a chunk cache large enough for one row read
    (:func:`chunk_cache_bytes`), so no compressed chunk is decoded twice in a pass over an
    epoch; with ``allow_external`` its external storage and virtual sources resolve beside
    the file (HDF5's default is the current directory).

    Virtual source names are resolved as HDF5 resolves them: ``%%`` is a literal ``%`` and a
    printf-style name (``%b``) is every block HDF5 will read, ``%b`` replaced by 0, 1, … up to
    the first missing source (the printf gap is pinned to 0); each block is checked like any
    other source.

    Parameters
    ----------
    reads : set of str, optional
        With ``allow_external``, the files outside ``f`` that the data may be read from are
        added to it (every place HDF5 may look for them that exists).

    Raises
    ------
    Refused
        Data outside the file (unless ``allow_external``), a virtual dataset mapping itself
        or a cycle of them, a filter not available here or compressed chunks too large.
    TypeError
        ``path`` is not a dataset.
    """
    reads = set() if reads is None else reads
    if not path.inside:
        note_link(f, path, reads)
    ds = _open(f, path.path, allow_external, cache=None)
    if path.inside:
        _Sources(f, allow_external, reads).check(ds, [path.path])
    else:
        _check_storage(f, ds, allow_external, "", reads)
    cache = chunk_cache_bytes(ds)
    if cache is None:
        return ds
    del ds  # HDF5 refuses a second open under different access properties
    return _open(f, path.path, allow_external, cache=cache)


def note_link(f: h5py.File, path: Resolved, reads: set[str]) -> None:
    """Add to ``reads`` the file an external link crossed by ``path`` leads to."""
    if path.link is not None:
        reads.update(regular_outside_files(f, path.link[0], "HDF5_EXT_PREFIX",
                                           "is an external link to"))


def regular_outside_files(f: h5py.File, name: str, env: str, what: str) -> list[str]:
    """:func:`~ncanalyze.io.names.outside_files`, refusing any that is not a regular file.

    Even with ``allow_external`` HDF5 must never open a FIFO (the open blocks until a writer
    appears), a device (``/dev/zero`` never ends) or a socket: ``what`` names the reference
    in the message (``"is an external link to"``).

    Raises
    ------
    Refused
        One of the files HDF5 may open for ``name`` is not a regular file.
    """
    found = outside_files(f, name, env)
    for real in found:
        mode = os.stat(real).st_mode
        if not stat.S_ISREG(mode):
            raise Refused(f"{what} {name!r}, which is not a regular file ({file_kind(mode)})",
                          external=False)
    return found


def _open(f, name: str, allow_external: bool, cache: int | None) -> h5py.Dataset:
    kind = f.get(name, getclass=True)
    if kind is not h5py.Dataset:
        raise TypeError(f"is a {getattr(kind, '__name__', 'missing object').lower()}, "
                        "expected a dataset")
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_virtual_printf_gap(0)  # the blocks _Sources checks: up to the first missing
    if allow_external:
        dapl.set_efile_prefix(b"${ORIGIN}")
        dapl.set_virtual_prefix(b"${ORIGIN}")
    if cache is not None:
        dapl.set_chunk_cache(_CACHE_SLOTS, cache, 1.0)
    return h5py.Dataset(h5py.h5d.open(f.id, name.encode(), dapl))


def _check_storage(f, ds: h5py.Dataset, allow_external: bool, via: str, reads: set) -> None:
    dcpl = ds.id.get_create_plist()
    count = dcpl.get_external_count()
    if count > 0 and not allow_external:
        raise Refused(f"{via}uses external raw storage (data in another file)", external=True)
    for i in range(count):
        name = dcpl.get_external(i)[0]
        name = name.decode(errors="surrogateescape") if isinstance(name, bytes) else name
        reads.update(regular_outside_files(f, name, "HDF5_EXTFILE_PREFIX",
                                           f"{via}uses external raw storage in"))
    problem = filter_problem(ds)
    if problem:
        raise Refused(f"{via}{problem}", external=False)


class _Sources:
    """Check a virtual dataset's sources, recursively (each source once)."""

    def __init__(self, f, allow_external: bool, reads: set):
        self.f, self.allow_external, self.reads = f, allow_external, reads
        self.done: set[str] = set()
        self.count = 0
        self.origin = os.path.realpath(f.filename)

    def check(self, ds, stack: list[str]) -> None:
        """Check ``ds`` (at canonical ``stack[-1]``; ``stack`` is the chain from the dataset
        read) and its sources."""
        via = "" if len(stack) == 1 else (
            f"is a virtual dataset over {' → '.join(stack[1:])}, which ")
        _check_storage(self.f, ds, self.allow_external, via, self.reads)
        if not ds.is_virtual:
            return
        if len(stack) > MAX_VIRTUAL_DEPTH:
            raise Refused(f"virtual datasets nest deeper than {MAX_VIRTUAL_DEPTH}",
                          external=False)
        for vs in ds.virtual_sources():
            try:
                files, names = printf_segments(vs.file_name), printf_segments(vs.dset_name)
            except ValueError as exc:
                raise Refused(f"{via}{exc}", external=False) from None
            printf = len(files) > 1 or len(names) > 1
            for block in itertools.count() if printf else (None,):
                self.count += 1
                if self.count > MAX_VIRTUAL_MAPPINGS:
                    raise Refused(f"maps more than {MAX_VIRTUAL_MAPPINGS} virtual sources",
                                  external=False)
                shown = "" if block is None else f" (block {block} of {vs.dset_name})"
                found = self._source(stack, str(block).join(files), str(block).join(names),
                                     vs.file_name, shown)
                if not found:
                    break  # HDF5 reads printf blocks up to the first missing one

    def _source(self, stack, file_name: str, dset_name: str, raw_file: str, shown: str
                ) -> bool:
        """Check one source; whether it exists (as far as can be told)."""
        if file_name != ".":
            if not self.allow_external:
                where = f"is a virtual dataset over {' → '.join(stack[1:])}, which is" \
                    if len(stack) > 1 else "is"
                raise Refused(f"{where} a virtual dataset mapping file {raw_file!r}",
                              external=True)
            where = f"is a virtual dataset over {' → '.join(stack[1:])}, which maps" \
                if len(stack) > 1 else "is a virtual dataset mapping"
            found = regular_outside_files(self.f, file_name, "HDF5_VDS_PREFIX", where)
            if self.origin not in found:
                self.reads.update(found)
                return bool(found)
            # The file maps itself by name: its sources are checked as this file's.
        try:
            source = resolve(self.f, dset_name, allow_external=self.allow_external)
        except Refused as exc:
            over = " → ".join(stack[1:] + [dset_name + shown])
            text = str(exc)
            joined = f"which {text}" if text.startswith("is ") else f"where {text}"
            raise Refused(f"is a virtual dataset over {over}, {joined}",
                          external=exc.external) from None
        if source is None:
            return False  # a missing source reads as the fill value
        if not source.inside:
            note_link(self.f, source, self.reads)  # allow_external: HDF5 follows the link
            return True
        if source.path in stack:
            if source.path == stack[0] and len(stack) == 1:
                raise Refused(f"is a virtual dataset that maps itself{shown}", external=False)
            cycle = " → ".join(stack[stack.index(source.path):] + [source.path])
            raise Refused(f"is in a cycle of virtual datasets ({cycle}){shown}",
                          external=False)
        if source.path in self.done:
            return True
        try:
            inner = _open(self.f, source.path, self.allow_external, cache=None)
        except TypeError as exc:
            raise Refused(f"is a virtual dataset over {source.path}{shown}, which {exc}",
                          external=False) from None
        self.check(inner, stack + [source.path])
        self.done.add(source.path)
        return True


def chunk_cache_bytes(ds: h5py.Dataset) -> int | None:
    """Chunk cache for one row read of a compressed dataset, or None (default suffices).

    A read of rows ``[a, b)`` of one epoch slot touches one row of chunks across the
    columns; holding that row in the cache makes every chunk decode once per pass however
    many reads it is split into.
    """
    if ds.chunks is None or not filters(ds):
        return None
    return _band_bytes(ds)


def _band_bytes(ds: h5py.Dataset) -> int:
    chunk = math.prod(ds.chunks) * ds.dtype.itemsize
    across = math.ceil(ds.shape[-1] / ds.chunks[-1]) if ds.ndim >= 2 and ds.shape[-1] else 1
    return chunk * across


def filter_problem(obj: h5py.Dataset) -> str | None:
    """Describe a filter of ``obj`` that cannot be decoded here, or compressed chunks too
    large to decode (one chunk, or one row of chunks across the columns, above
    :data:`~ncanalyze.io.h5.MAX_FILTERED_CHUNK_BYTES`)."""
    pipeline = filters(obj)
    for code, label in pipeline:
        if not h5py.h5z.filter_avail(code):
            return (f"needs HDF5 filter {code} ({label or 'unnamed'}), which is not available "
                    "here (install the plugin, e.g. hdf5plugin, or re-write the file with "
                    "h5repack -f NONE)")
    if pipeline and obj.chunks is not None:
        nbytes = math.prod(obj.chunks) * obj.dtype.itemsize
        band = _band_bytes(obj)
        if nbytes > MAX_FILTERED_CHUNK_BYTES:
            return (f"has compressed chunks of {gib(nbytes)}, which must be decoded whole "
                    f"(limit {gib(MAX_FILTERED_CHUNK_BYTES)}; re-chunk with h5repack -l)")
        if band > MAX_FILTERED_CHUNK_BYTES:
            return (f"has compressed chunks of {gib(nbytes)}: a row read must decode "
                    f"{band // nbytes} of them across the columns, {gib(band)} (limit "
                    f"{gib(MAX_FILTERED_CHUNK_BYTES)}; re-chunk with h5repack -l)")
    return None
