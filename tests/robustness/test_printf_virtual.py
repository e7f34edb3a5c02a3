"""printf-style virtual-dataset mappings (issue 16 item 1, docs/RELIABILITY.md threat model).

A virtual source name may hold ``%b`` (HDF5 reads block ``j`` from the source named with ``j``
in its place, j = 0, 1, … until one is missing) or ``%%`` (a literal ``%``). The trust check
must resolve the names as HDF5 will: a block that is an external link, external raw storage,
a FIFO or the dataset itself is refused like any other source, and in-file blocks are read.
Every command runs in the worker under a timeout (a FIFO hangs, a self-block segfaults).
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from tests.cli_worker import Worker
from tests.factories import printf_virtual_dataset
from tests.factories import E, valid_members, write_h5

ALLOW = "pass --allow-external"
_WORKER = Worker()


@pytest.fixture(scope="module", autouse=True)
def _worker():
    yield
    _WORKER.close()


def ncanalyze(*args, timeout=60):
    return _WORKER.run(*args, timeout=timeout)


def _build(tmp_path, member, blocks, *, source="/blk/b%b"):
    """``member`` as a printf mapping over blocks named by ``source``; ``blocks[j]`` says what
    block j is: "data" (in-file data), "elink" (external link to another HDF5 file),
    "fifo" (external link to a FIFO), "storage" (external raw storage), "self" (a soft link
    back to ``member``)."""
    m = valid_members()
    data = np.ascontiguousarray(m.pop(member))
    write_h5(tmp_path / "other.h5", {"d": data[:1] + 1000}, attrs={})
    if "fifo" in blocks and not (tmp_path / "fifo").exists():
        os.mkfifo(tmp_path / "fifo")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f.require_group("blk")
        for j, kind in enumerate(blocks):
            name = source.replace("%%", "\0").replace("%b", str(j)).replace("\0", "%")
            if kind == "data":
                f[name] = data[j:j + 1]
            elif kind == "elink":
                f[name] = h5py.ExternalLink("other.h5", "/d")
            elif kind == "fifo":
                f[name] = h5py.ExternalLink("fifo", "/d")
            elif kind == "storage":
                raw = tmp_path / f"raw{j}.bin"
                raw.write_bytes(data[j:j + 1].tobytes())
                f.create_dataset(name, shape=(1,) + data.shape[1:], dtype=data.dtype,
                                 external=[(str(raw), 0, data[j:j + 1].nbytes)])
            elif kind == "self":
                f[name] = h5py.SoftLink("/" + member)
        printf_virtual_dataset(f, member, source, data.shape, data.dtype)
    return path


def _refused(path, *needles, extra=()):
    for cmd in ("metrics", "inspect", "report"):
        args = [cmd, path, *extra] + (["-f", "json"] if cmd != "report" else [])
        rc, out, err = ncanalyze(*args, timeout=30)
        assert rc == 3, (cmd, rc, err, out[:400])
        text = " ".join(json.loads(out)["problems"]) if cmd == "inspect" else err
        if cmd != "inspect":
            assert err.count("\n") == 1 and err.startswith("ncanalyze: error: "), err
        for needle in needles:
            assert needle in text, (cmd, needle, text)


@pytest.mark.parametrize("member", ["scalars/train_loss", "features", "weight"])
@pytest.mark.parametrize("kind,needle", [("elink", "external link to other.h5"),
                                         ("fifo", "external link to fifo"),
                                         ("storage", "external raw storage")])
def test_a_block_outside_the_file_is_refused(tmp_path, member, kind, needle):
    blocks = ["data"] * E
    blocks[E - 1] = kind  # the last block: only a check of every block finds it
    path = _build(tmp_path, member, blocks)
    _refused(path, f"/{member}", needle, ALLOW)


def test_metrics_does_not_print_another_files_data(tmp_path):
    # The reproducer: every block an external link; csv printed the other file with exit 0.
    path = _build(tmp_path, "scalars/train_loss", ["elink"] * E)
    rc, out, err = ncanalyze("metrics", path, "-f", "csv")
    assert rc == 3 and "1000" not in out, (rc, out, err)
    rc, out, _ = ncanalyze("inspect", path)
    assert rc == 3 and "no problems found" not in out


@pytest.mark.parametrize("allow", [False, True])
def test_a_block_that_is_the_dataset_itself_is_refused_not_a_segfault(tmp_path, allow):
    path = _build(tmp_path, "features", ["self", "data", "data"])
    _refused(path, "/features", "itself", extra=["--allow-external"] if allow else [])


def test_in_file_blocks_are_read(tmp_path):
    plain = write_h5(tmp_path / "plain.h5", valid_members())
    ref = ncanalyze("metrics", plain, "-f", "json")
    for member in ("scalars/train_loss", "features"):
        folder = tmp_path / member.replace("/", "_")
        folder.mkdir()
        path = _build(folder, member, ["data"] * E)
        got = ncanalyze("metrics", path, "-f", "json")
        assert got[0] == 0, got[2]
        assert json.loads(got[1])["epochs"] == json.loads(ref[1])["epochs"]


def test_percent_escape_is_resolved_as_hdf5_does(tmp_path):
    # "%%" reads the dataset named with one "%": looking up the literal name misses it.
    m = valid_members()
    data = m.pop("bias")
    write_h5(tmp_path / "other.h5", {"d": data}, attrs={})
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f["x%"] = h5py.ExternalLink("other.h5", "/d")
        layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
        layout[...] = h5py.VirtualSource(".", "/x%%", shape=data.shape)
        f.create_virtual_dataset("bias", layout)
    _refused(path, "/bias", "external link to other.h5", ALLOW)


def test_printf_file_name_is_another_file(tmp_path):
    m = valid_members()
    data = m.pop("bias")
    write_h5(tmp_path / "other0.h5", {"d": data[:1]}, attrs={})
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        printf_virtual_dataset(f, "bias", "/d", data.shape, data.dtype, file="other%b.h5")
    _refused(path, "/bias", "other%b.h5", ALLOW)
