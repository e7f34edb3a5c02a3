"""Hypothesis-generated hostile run files: virtual-dataset chains (fixed or unlimited
mappings), printf-style mappings (``%b`` blocks), self and cyclic references, soft-link
cycles and links to special files, layered on a valid run; planted lock files before a
writer; and outputs onto every kind of file a run reads.

Every path that leaves the file ends at a FIFO (external link, external raw storage, virtual
source in another file): if anything opens it, the command hangs and the worker's timeout
fails the test. ``metrics``, ``inspect`` and ``report`` must exit 0, 2 or 3 with one error
line when they fail (and nothing on stderr but ``ncanalyze:`` lines), no traceback, must refuse (exit 3) a file whose read data would come from
outside, and must leave the file's bytes unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cli_worker import Worker
from tests.factories import N, printf_virtual_dataset, write_h5
from tests.factories import hostile_members as _members, unlimited_vds as _unlimited_vds

#: Members ncanalyze reads (the layer and split are added to valid_members()).
READ = ["features", "labels", "weight", "bias", "scalars/train_loss", "layers/block",
        "splits/test/labels", "splits/test/features"]
GROUPS = ["scalars", "layers", "splits", "splits/test"]
OUTSIDE = ["storage", "elink", "soft-elink", "other-file"]
INSIDE = ["raw", "self", "cycle", "missing"]
SPECIAL = ["fifo", "/dev/zero", "/dev/null", ".", "run.h5"]

chain = st.tuples(st.just("chain"), st.sampled_from(READ), st.integers(1, 5),
                  st.sampled_from(OUTSIDE + INSIDE), st.booleans())
soft_cycle = st.tuples(st.just("softcycle"), st.sampled_from(READ + GROUPS), st.integers(1, 4))
special_link = st.tuples(st.just("special"), st.sampled_from(READ + GROUPS),
                         st.sampled_from(SPECIAL))
#: Members with an epoch axis (a printf mapping reads one epoch slot per block).
EPOCH_AXIS = ["features", "weight", "bias", "scalars/train_loss", "layers/block",
              "splits/test/features"]
BLOCKS = ["data", "data", "elink", "storage", "self", "missing"]
printf_mapping = st.tuples(st.just("printf"), st.sampled_from(EPOCH_AXIS),
                           st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=4))
construction = st.one_of(chain, soft_cycle, special_link, printf_mapping)

_WORKER = Worker()


@pytest.fixture(scope="module", autouse=True)
def _worker():
    yield
    _WORKER.close()


def _replace(f, name) -> bool:
    """Unlink ``name`` and create its parent groups; False (nothing done) when a component of
    the path is already a link (never traversed here: this process must not hang either)."""
    links, current = f.id.links, ""
    for part in name.split("/")[:-1]:
        current += "/" + part
        if links.exists(current.encode()):
            if links.get_info(current.encode()).type != h5py.h5l.TYPE_HARD:
                return False
        else:
            f.require_group(current)
    if links.exists(name.encode()):
        if links.get_info(name.encode()).type != h5py.h5l.TYPE_HARD:
            return False
        f.id.unlink(name.encode())
    return True


def _vds(f, name, target, shape, dtype, file="."):
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[...] = h5py.VirtualSource(file, target, shape=shape)
    f.create_virtual_dataset(name, layout)


def _apply(f, folder: Path, step, k: int) -> bool | None:
    """Apply one construction; returns whether read data at ``step[1]`` now reaches outside
    the file (None: the step was skipped)."""
    kind, name = step[0], step[1]
    if not _replace(f, name):
        return None
    if kind == "special":
        f[name] = h5py.ExternalLink(step[2], "/x")
        return name in READ or any(r.startswith(name + "/") for r in READ)
    if kind == "printf":
        return _printf(f, name, step[2], k)
    if kind == "softcycle":
        ring = [name] + [f"loop{k}/l{i}" for i in range(step[2] - 1)]
        for i, member in enumerate(ring):
            if i:
                f.require_group(f"loop{k}")
            f[member] = h5py.SoftLink("/" + ring[(i + 1) % len(ring)])
        return False
    depth, end, unlimited = step[2], step[3], step[4]
    data = _members().get(name)
    if data is None:  # a group: a dataset in its place
        data = np.zeros((3, N, 4), np.float32)
    shape, dtype = data.shape, data.dtype
    end_name = f"hidden{k}/end"
    outside = end in OUTSIDE
    if end == "raw":
        f[end_name] = data
    elif end == "storage":
        f.create_dataset(end_name, shape=shape, dtype=dtype,
                         external=[("fifo", 0, data.nbytes)])
    elif end == "elink":
        f[end_name] = h5py.ExternalLink("fifo", "/d")
    elif end == "soft-elink":
        f[f"hidden{k}/ext"] = h5py.ExternalLink("fifo", "/d")
        f[end_name] = h5py.SoftLink(f"/hidden{k}/ext")
    elif end == "other-file":
        _vds(f, end_name, "/d", shape, dtype, file="fifo")
    # name → v0 → v1 → … → the end (for "cycle" and "self": back to name).
    chain = [name] + ([] if end == "self" else [f"hidden{k}/v{i}" for i in range(depth - 1)])
    final = {"self": "/" + name, "cycle": "/" + name,
             "missing": f"/hidden{k}/nothing"}.get(end, "/" + end_name)
    for i in reversed(range(len(chain))):
        target = "/" + chain[i + 1] if i + 1 < len(chain) else final
        if unlimited and len(shape) == 3 and dtype == np.float32:
            _unlimited_vds(f, chain[i], target, shape)  # its shape makes HDF5 open sources
        else:
            _vds(f, chain[i], target, shape, dtype)
    return outside


def _printf(f, name, blocks, k) -> bool:
    """``name`` as a printf mapping over ``/p{k}/b%b``; block j is ``blocks[j]``. Returns
    whether a block HDF5 reads (those before the first missing one) is outside the file."""
    data = _members()[name]
    f.require_group(f"p{k}")
    outside = False
    for j, kind in enumerate(blocks):
        block = f"p{k}/b{j}"
        if kind == "missing":
            break
        if kind == "data":
            f[block] = data[j % len(data):j % len(data) + 1]
        elif kind == "elink":
            f[block] = h5py.ExternalLink("fifo", "/d")
        elif kind == "storage":
            f.create_dataset(block, shape=(1,) + data.shape[1:], dtype=data.dtype,
                             external=[("fifo", 0, data[:1].nbytes)])
        elif kind == "self":
            f[block] = h5py.SoftLink("/" + name)
        outside = outside or kind in ("elink", "storage")
    printf_virtual_dataset(f, name, f"/p{k}/b%b", data.shape, data.dtype)
    return outside


def _check(rc, out, err, cmd):
    assert rc in (0, 2, 3), (cmd, rc, err)
    lines = err.splitlines()
    # Warnings (exit 0) are one line each; an error is one line, the last.
    assert all(line.startswith(("ncanalyze: warning: ", "ncanalyze: error: "))
               for line in lines), (cmd, err)
    errors = sum(line.startswith("ncanalyze: error: ") for line in lines)
    # inspect lists the problems it found in its report (exit 3) rather than as an error line.
    assert errors <= 1 and (errors == (rc != 0) or cmd == "inspect"), (cmd, err)


@given(st.lists(construction, min_size=1, max_size=3))
def test_hostile_constructions_are_refused_without_hanging(steps):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.mkfifo(folder / "fifo")
        path = write_h5(folder / "run.h5", _members())
        reach: dict[str, bool] = {}  # member → whether its data now comes from outside
        with h5py.File(path, "a") as f:
            for k, step in enumerate(steps):
                result = _apply(f, folder, step, k)
                if result is not None:  # a later step replaces what an earlier one built
                    name = step[1]
                    reach = {m: v for m, v in reach.items()
                             if m != name and not m.startswith(name + "/")}
                    reach[name] = result
        outside = any(reach.values())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        for cmd in (["metrics", path, "-f", "json"], ["inspect", path, "-f", "json"],
                    ["report", path]):
            rc, out, err = _WORKER.run(*cmd, timeout=30)
            _check(rc, out, err, cmd[0])
            if outside:
                assert rc == 3, (cmd[0], steps, rc, err, out[:300])
            if cmd[0] == "inspect" and rc == 0:
                json.loads(out)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


# ---------------------------------------------------------------- planted lock files

PLANTED = ["symlink", "dangling", "hardlink", "fifo", "directory"]


@settings(max_examples=12)
@given(st.sampled_from(PLANTED), st.sampled_from(["convert", "simulate"]))
def test_a_planted_lock_file_is_refused_and_left_alone(planted, command):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out, lock, victim = folder / "r.h5", folder / ".r.h5.lock", folder / "victim"
        if planted in ("symlink", "hardlink"):
            victim.write_bytes(b"precious")
        if planted in ("symlink", "dangling"):
            lock.symlink_to(victim)
        elif planted == "hardlink":
            os.link(victim, lock)
        elif planted == "fifo":
            os.mkfifo(lock)
        else:
            lock.mkdir()
        dumps = folder / "dumps"
        dumps.mkdir()
        np.savez(dumps / "e1.npz", features=np.ones((N, 4), np.float32),
                 labels=np.arange(N) % 3)
        args = ["convert", dumps, out] if command == "convert" else ["simulate", out]
        rc, _, err = _WORKER.run(*args, timeout=60)
        assert rc == 3 and "not a lock file" in err and err.count("\n") == 1, (rc, err)
        assert not out.exists()
        if planted in ("symlink", "hardlink"):
            assert victim.read_bytes() == b"precious"
        if planted == "dangling":
            assert not victim.exists()
        assert os.path.lexists(lock)


# ---------------------------------------------------------------- outputs onto inputs

INPUTS = ["run", "elink", "group-elink", "storage", "vds-file", "printf-file"]
NAMINGS = ["same", "symlink", "hardlink", "dotdot"]


def _run_reading(folder: Path, kind: str) -> tuple[Path, Path]:
    """A run file whose reads (with --allow-external) open the file returned second."""
    m = _members()
    if kind == "run":
        path = write_h5(folder / "run.h5", m)
        return path, path
    if kind == "storage":
        feats = np.ascontiguousarray(m.pop("features"))
        (folder / "data.raw").write_bytes(feats.tobytes())
        path = write_h5(folder / "run.h5", m)
        with h5py.File(path, "a") as f:
            f.create_dataset("features", shape=feats.shape, dtype=feats.dtype,
                             external=[("data.raw", 0, feats.nbytes)])
        return path, folder / "data.raw"
    if kind == "printf-file":
        bias = m.pop("bias")
        for j in range(len(bias)):
            write_h5(folder / f"data{j}.h5", {"b": bias[j:j + 1]}, attrs={})
        path = write_h5(folder / "run.h5", m)
        with h5py.File(path, "a") as f:
            printf_virtual_dataset(f, "bias", "/b", bias.shape, bias.dtype, file="data%b.h5")
        return path, folder / f"data{len(bias) - 1}.h5"
    member = {"elink": "features", "group-elink": "scalars/train_loss",
              "vds-file": "weight"}[kind]
    data = m.pop(member)
    write_h5(folder / "data.h5", {"g/d": data}, attrs={})
    path = write_h5(folder / "run.h5", m)
    with h5py.File(path, "a") as f:
        if kind == "elink":
            f[member] = h5py.ExternalLink("data.h5", "/g/d")
        elif kind == "group-elink":
            f["scalars"] = h5py.ExternalLink("data.h5", "/g")
        else:
            layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
            layout[...] = h5py.VirtualSource("data.h5", "/g/d", shape=data.shape)
            f.create_virtual_dataset(member, layout)
    return path, folder / "data.h5"


@settings(max_examples=20)
@given(st.sampled_from(INPUTS), st.sampled_from(NAMINGS),
       st.sampled_from(["-o", "--plot", "convert"]), st.sampled_from(["snr", "decompose"]))
def test_no_output_replaces_a_file_the_run_reads(kind, naming, option, command):
    """-o and --plot of a reading command, and the output of convert --statistics."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sub").mkdir()
        path, read = _run_reading(folder, kind)
        ext = {"--plot": ".png", "-o": ".json", "convert": ".h5"}[option]
        target = {"same": read, "symlink": folder / f"link{ext}",
                  "hardlink": folder / f"hard{ext}",
                  "dotdot": folder / "sub" / ".." / read.name}[naming]
        if naming == "symlink":
            target.symlink_to(read)
        elif naming == "hardlink":
            os.link(read, target)
        if option == "--plot" and naming in ("same", "dotdot"):
            target = folder / f"named{ext}"  # --plot needs a figure extension: link it
            target.symlink_to(read)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
        args = (["convert", "--statistics", path, target, "--overwrite"] if option == "convert"
                else [command, path, option, target])
        rc, _, err = _WORKER.run(*args, "--allow-external", "-q", timeout=60)
        assert rc == 2 and "is the same file as the input" in err, (kind, naming, rc, err)
        assert err.count("\n") == 1
        assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == digest
        assert not [p for p in folder.rglob(".*")]
