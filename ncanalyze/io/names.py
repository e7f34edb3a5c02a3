"""How HDF5 names what lies outside an object: other files, and virtual-source blocks.

:mod:`~ncanalyze.io.trust` uses these to check a read the way HDF5 will perform it:
:func:`outside_files` lists where HDF5 may look for a file named by an external link,
external raw storage or a virtual source; :func:`printf_segments` parses a virtual source
name (``%b`` is the block number of an unlimited mapping, ``%%`` a literal ``%``).
"""

from __future__ import annotations

import os

import h5py


def outside_files(f: h5py.File, name: str, env: str) -> list[str]:
    """The existing files HDF5 may open for ``name``, named from inside ``f``.

    HDF5 tries an absolute name, then (the name, or its last component when absolute) under
    each folder of the environment variable ``env``, the folder of ``f`` (``${ORIGIN}``) and
    the current folder; every one that exists is returned, as a real path.
    """
    folders = [d for d in os.environ.get(env, "").split(os.pathsep) if d]
    folders += [os.path.dirname(os.path.realpath(f.filename)), os.getcwd()]
    tail = os.path.basename(name) if os.path.isabs(name) else name
    names = ([name] if os.path.isabs(name) else []) + [os.path.join(d, tail) for d in folders]
    return sorted({os.path.realpath(n) for n in names if os.path.exists(n)})


def printf_segments(name: str) -> list[str]:
    """A virtual source name split at its ``%b`` (``%%`` read as ``%``), as HDF5 parses it.

    One segment: a plain name; more: block ``j`` is ``str(j).join(segments)``.

    Raises
    ------
    ValueError
        A ``%`` followed by anything but ``b`` or ``%`` (HDF5 cannot parse the name).
    """
    segments, current, i = [], [], 0
    while i < len(name):
        if name[i] != "%":
            current.append(name[i])
            i += 1
            continue
        spec = name[i + 1:i + 2]
        if spec == "b":
            segments.append("".join(current))
            current = []
        elif spec == "%":
            current.append("%")
        else:
            raise ValueError(f"has a virtual source name HDF5 cannot parse ({name!r})")
        i += 2
    segments.append("".join(current))
    return segments
