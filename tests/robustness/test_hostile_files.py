"""Hostile run files (docs/RELIABILITY.md, threat model): data from outside the file through
virtual-dataset chains and links, link loops, self-referencing virtual datasets, links to
special files, decompression bombs, and the smaller malformations of issue 10.

Every command runs in a subprocess under a timeout: a hang (an external link to a FIFO that
HDF5 opens) or a crash (a self-mapping virtual dataset segfaults inside HDF5) fails the test
instead of stopping the suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ncanalyze import InputError, open_run
from tests.cli_worker import Worker
from tests.factories import E, N, P, hostile_members as _members, unlimited_vds as _unlimited_vds, valid_members, write_h5

ALLOW = "pass --allow-external"


_WORKER = Worker()


@pytest.fixture(scope="module", autouse=True)
def _worker():
    yield
    _WORKER.close()


def ncanalyze(*args, timeout=60):
    """Run ``ncanalyze ARGS`` in the worker process with a timeout (a hang or a crash fails
    the test); returns (exit code, stdout, stderr)."""
    return _WORKER.run(*args, timeout=timeout)


def refused(path, *needles, commands=("metrics", "inspect", "report"), code=3, extra=()):
    """Every reading command exits ``code`` with one stderr line holding ``needles``; the file
    is unchanged. Returns the metrics line."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    lines = {}
    for cmd in commands:
        args = [cmd, path, *extra] + (["-f", "json"] if cmd != "report" else [])
        rc, out, err = ncanalyze(*args)
        assert rc == code, (cmd, rc, err)
        assert "Traceback" not in err and "Warning" not in err, err
        if cmd == "inspect":
            problems = json.loads(out)["problems"]
            text = " ".join(problems)
        else:
            assert err.count("\n") == 1 and err.startswith("ncanalyze: error: "), err
            text = err
        for needle in needles:
            assert needle in text, (cmd, needle, text)
        lines[cmd] = text
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
    return lines.get("metrics", "")


# ---------------------------------------------------------------- virtual-dataset chains

#: The datasets ncanalyze reads, with the member of valid_members() (plus a layer and a
#: split) that holds their data.
READ = ["features", "labels", "weight", "bias", "scalars/train_loss", "layers/block",
        "splits/test/labels", "splits/test/features"]


def _vds(f, name, target, shape, dtype):
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[...] = h5py.VirtualSource(".", target, shape=shape)
    f.create_virtual_dataset(name, layout)


def _chain_file(tmp_path, member, depth, end):
    """``member`` is a chain of ``depth`` same-file virtual datasets whose last source is
    ``end``: "storage" (external raw storage), "elink" (an external link), "soft-elink"
    (a soft link to an external link) or "fifo" (an external link to a FIFO)."""
    m = _members()
    data = np.ascontiguousarray(m.pop(member))
    (tmp_path / "raw.bin").write_bytes(data.tobytes())
    write_h5(tmp_path / "other.h5", {"d": data}, attrs={})
    if end == "fifo" and not (tmp_path / "fifo").exists():
        os.mkfifo(tmp_path / "fifo")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        if end == "storage":
            f.create_dataset("hidden/end", shape=data.shape, dtype=data.dtype,
                             external=[("raw.bin", 0, data.nbytes)])
        elif end == "elink":
            f["hidden/end"] = h5py.ExternalLink("other.h5", "/d")
        elif end == "fifo":
            f["hidden/end"] = h5py.ExternalLink("fifo", "/d")
        elif end == "soft-elink":
            f["hidden/ext"] = h5py.ExternalLink("other.h5", "/d")
            f["hidden/end"] = h5py.SoftLink("/hidden/ext")
        target = "/hidden/end"
        for level in range(depth - 1):
            _vds(f, f"hidden/v{level}", target, data.shape, data.dtype)
            target = f"/hidden/v{level}"
        _vds(f, member, target, data.shape, data.dtype)
    return path


@pytest.mark.parametrize("member", READ)
def test_virtual_dataset_over_external_raw_storage_is_refused(tmp_path, member):
    path = _chain_file(tmp_path, member, 1, "storage")
    refused(path, f"/{member}", "external raw storage", ALLOW)


@pytest.mark.parametrize("depth,end", [(1, "elink"), (3, "storage"), (4, "soft-elink"),
                                       (2, "fifo")])
@pytest.mark.parametrize("member", ["features", "scalars/train_loss", "splits/test/features"])
def test_virtual_dataset_chain_ending_outside_the_file_is_refused(tmp_path, member, depth, end):
    path = _chain_file(tmp_path, member, depth, end)
    refused(path, f"/{member}", "external", ALLOW)


def test_etc_passwd_behind_a_virtual_scalar_is_not_printed(tmp_path):
    # The reproducer of issue 10 item 1: scalar columns held /etc/passwd byte for byte.
    m = valid_members()
    m.pop("scalars/train_loss")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f.create_dataset("hidden", shape=(64,), dtype="u1", external=[("/etc/passwd", 0, 64)])
        layout = h5py.VirtualLayout(shape=(E,), dtype="u1")
        layout[...] = h5py.VirtualSource(".", "/hidden", shape=(64,))[0:E]
        f.create_virtual_dataset("scalars/s000", layout)
    rc, out, err = ncanalyze("metrics", path, "-f", "csv")
    assert rc == 3 and "/scalars/s000" in err and "external raw storage" in err, (rc, err)
    refused(path, "/scalars/s000", ALLOW)


def test_in_file_virtual_chain_is_read(tmp_path):
    m = _members()
    plain = write_h5(tmp_path / "plain.h5", m)
    feats = m.pop("features")
    m["raw/features"] = feats
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        _vds(f, "raw/v1", "/raw/features", feats.shape, feats.dtype)
        f["raw/alias"] = h5py.SoftLink("/raw/v1")
        _vds(f, "features", "/raw/alias", feats.shape, feats.dtype)
    ref = ncanalyze("metrics", plain, "-f", "json")
    got = ncanalyze("metrics", path, "-f", "json")
    assert got[0] == 0, got[2]
    assert json.loads(got[1])["epochs"] == json.loads(ref[1])["epochs"]


# ---------------------------------------------------------------- self and cyclic references

@pytest.mark.parametrize("allow", [False, True])
def test_self_mapping_virtual_dataset_is_refused_not_a_segfault(tmp_path, allow):
    m = valid_members()
    feats = m.pop("features")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        _vds(f, "features", "/features", feats.shape, feats.dtype)
    refused(path, "/features", "maps itself", extra=["--allow-external"] if allow else [])


def test_cyclic_virtual_datasets_are_refused(tmp_path):
    m = valid_members()
    feats = m.pop("features")
    w = m.pop("weight")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        _vds(f, "features", "/x/a", feats.shape, feats.dtype)
        _vds(f, "x/a", "/x/b", feats.shape, feats.dtype)
        f["x/link"] = h5py.SoftLink("/features")
        _vds(f, "x/b", "/x/link", feats.shape, feats.dtype)
        _vds(f, "weight", "/weight", w.shape, w.dtype)
    line = refused(path, "/features", "cycle")
    assert ALLOW not in line


@pytest.mark.parametrize("target", ["/features", "/ext"])
def test_unlimited_virtual_dataset_is_checked_before_its_shape_is_read(tmp_path, target):
    m = valid_members()
    shape = m.pop("features").shape
    os.mkfifo(tmp_path / "fifo")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f["ext"] = h5py.ExternalLink("fifo", "/d")
        _unlimited_vds(f, "features", target, shape)
    text = "maps itself" if target == "/features" else "external link to fifo:/d"
    refused(path, "/features", text)
    rc, out, err = ncanalyze("inspect", path, "-f", "json")
    rows = {m["path"]: m for m in json.loads(out)["members"]}
    assert text in rows["/features"]["target"], rows["/features"]


# ---------------------------------------------------------------- links

@pytest.mark.parametrize("where", ["splits/test", "features", "layers", "scalars/train_loss"])
def test_external_link_to_a_fifo_is_never_opened(tmp_path, where):
    m = _members()
    for key in [k for k in m if k == where or k.startswith(where + "/")]:
        del m[key]
    os.mkfifo(tmp_path / "fifo")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f[where] = h5py.ExternalLink("fifo", "/x")
    refused(path, f"/{where}", "external link to fifo:/x", ALLOW)


@pytest.mark.parametrize("how", ["link", "storage", "virtual"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_special_files_are_refused_even_with_allow_external(tmp_path, how, special):
    """--allow-external lets HDF5 read other files, never a FIFO or a device: opening a FIFO
    blocks for ever and a device has no end. Refused before HDF5 opens it (exit 3)."""
    m = valid_members()
    feats = np.ascontiguousarray(m.pop("features"))
    if special == "fifo":
        os.mkfifo(tmp_path / "fifo")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        if how == "link":
            f["features"] = h5py.ExternalLink(special, "/d")
        elif how == "storage":
            f.create_dataset("features", shape=feats.shape, dtype=feats.dtype,
                             external=[(special, 0, feats.nbytes)])
        else:
            layout = h5py.VirtualLayout(shape=feats.shape, dtype=feats.dtype)
            layout[...] = h5py.VirtualSource(special, "/d", shape=feats.shape)
            f.create_virtual_dataset("features", layout)
    refused(path, "/features", "not a regular file", extra=["--allow-external"])


@pytest.mark.parametrize("kind", ["self", "pair"])
def test_soft_link_loop_is_named_a_loop(tmp_path, kind):
    path = write_h5(tmp_path / "run.h5", valid_members())
    with h5py.File(path, "a") as f:
        if kind == "self":
            f["layers"] = h5py.SoftLink("/layers")
        else:
            f["layers"] = h5py.SoftLink("/other")
            f["other"] = h5py.SoftLink("/layers")
    line = refused(path, "/layers", "soft links form a loop")
    assert ALLOW not in line and "allow-external" not in line


def test_inspect_lists_links_without_opening_their_targets(tmp_path):
    m = valid_members()
    os.mkfifo(tmp_path / "fifo")
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f["extra/fifo"] = h5py.ExternalLink("fifo", "/x")
        f["extra/zero"] = h5py.ExternalLink("/dev/zero", "/x")
    rc, out, err = ncanalyze("inspect", path, "-f", "json")
    assert rc == 0, err
    kinds = {m["path"]: m for m in json.loads(out)["members"]}
    assert kinds["/extra/fifo"]["kind"] == "external link"
    assert kinds["/extra/fifo"]["target"] == "fifo:/x"


# ---------------------------------------------------------------- special input files

@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_special_file_as_input_is_named_for_what_it_is(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "in.h5"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    for cmd in ("metrics", "inspect", "report"):
        rc, out, err = ncanalyze(cmd, path, timeout=30)
        assert rc == 3, (cmd, rc, err)
        assert "not a regular file" in err and "empty" not in err, err


# ---------------------------------------------------------------- decompression bombs

def test_compressed_chunks_larger_than_a_read_are_decoded_once(tmp_path):
    m = valid_members()
    rows = 2**19  # chunks of 16 MiB, above h5py's default 8 MiB chunk cache
    feats = np.zeros((E, rows, P), np.float32)
    feats[0, :5000] = np.random.default_rng(0).standard_normal((5000, P))
    m["labels"] = np.arange(rows) % 3
    m["features"] = {"data": feats, "compression": "gzip", "chunks": (1, rows, P)}
    path = write_h5(tmp_path / "run.h5", m)
    with open_run(path) as run:
        ds = run._datasets["/features"]
        _slots, cache_bytes, _w0 = ds.id.get_access_plist().get_chunk_cache()
        chunk_bytes = rows * P * 4
        # A read of 10 rows must not decode the whole chunk again: the cache holds it.
        assert cache_bytes >= chunk_bytes
        got = np.concatenate([x for x, _ in run.iter_chunks(1, rows=2**15)])
    np.testing.assert_array_equal(got, feats[0])


def test_chunk_cache_holds_a_row_of_chunks_across_the_columns(tmp_path):
    m = valid_members()
    rows = 2**19  # four chunks of 4 MiB across the columns: 16 MiB
    m["labels"] = np.arange(rows) % 3
    m["features"] = {"shape": (E, rows, P), "dtype": "f4", "compression": "gzip",
                     "chunks": (1, rows, 2)}
    path = write_h5(tmp_path / "run.h5", m)
    with open_run(path) as run:
        cache = run._datasets["/features"].id.get_access_plist().get_chunk_cache()[1]
    assert cache >= (P // 2) * rows * 2 * 4


@pytest.mark.parametrize("chunks", [(1, 2**20, 65), (1, 2**20, 1)])
def test_compressed_chunks_above_the_limit_are_refused(tmp_path, chunks):
    # float32 (1, 2**20, 65): one chunk of 260 MiB; (1, 2**20, 1): chunks of 4 MiB, but a row
    # read decodes the 65 of them across the columns (260 MiB). The limit is 256 MiB. Nothing
    # is written: the file is small, the decoding would not be.
    rows, cols = 2**20, 65
    m = valid_members()
    m["labels"] = (np.arange(rows) % 3).astype(np.int8)
    m["features"] = {"shape": (E, rows, cols), "dtype": "f4", "compression": "gzip",
                     "chunks": chunks}
    m.pop("weight")
    m.pop("bias")
    path = write_h5(tmp_path / "run.h5", m)
    assert path.stat().st_size < 2 * 2**20
    refused(path, "/features", "compressed chunks", "limit 0.25 GiB", "h5repack")


# ---------------------------------------------------------------- smaller malformations

def test_fill_value_in_the_middle_of_epoch_is_an_error(tmp_path):
    m = valid_members()
    m["epoch"] = np.array([1, np.iinfo(np.int64).min, 3], dtype=np.int64)
    path = write_h5(tmp_path / "run.h5", m)
    refused(path, "/epoch", "slot 1")


def test_boolean_weight_decay_is_refused(tmp_path):
    path = write_h5(tmp_path / "run.h5", valid_members(),
                    attrs={"ncanalyze_format": 1, "weight_decay": True})
    refused(path, "weight_decay=True")


def test_complex_scalar_is_skipped_without_a_warning(tmp_path):
    m = valid_members()
    m["scalars/z"] = np.ones(E, dtype=np.complex64)
    path = write_h5(tmp_path / "run.h5", m)
    rc, out, err = ncanalyze("metrics", path, "-f", "json")
    assert rc == 0 and err == "", err
    assert "z" not in json.loads(out)["epochs"][0]


def test_split_missing_a_class_is_found_at_open(tmp_path):
    # Absent classes are valid (docs/METRICS.md); the run-level warning, or the error of
    # --require-all-classes, comes when the analysis opens the file, before any epoch.
    m = _members()
    m["splits/test/labels"] = np.arange(N // 2) % 2  # class 2 absent
    path = write_h5(tmp_path / "run.h5", m)
    open_run(path).close()
    code, _, err = ncanalyze("metrics", path, "--split", "test", "--require-all-classes")
    assert code == 3 and "/splits/test/labels" in err and "class(es) 2" in err, err
    code, out, err = ncanalyze("metrics", path, "--split", "test", "-f", "json")
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert warnings[0].startswith("/splits/test/labels: 1 of 3 classes have no samples")


@pytest.mark.parametrize("dtype", [">f4", ">f8"])
def test_big_endian_floats_are_read(tmp_path, dtype):
    m = valid_members()
    plain = write_h5(tmp_path / "plain.h5", {**m, "features": m["features"].astype(dtype[1:]),
                                              "weight": m["weight"].astype(dtype[1:])})
    path = write_h5(tmp_path / "be.h5", {**m, "features": m["features"].astype(dtype),
                                          "weight": m["weight"].astype(dtype),
                                          "bias": m["bias"].astype(">f8")})
    ref = ncanalyze("metrics", plain, "-f", "json")
    got = ncanalyze("metrics", path, "-f", "json")
    assert got[0] == 0, got[2]
    assert json.loads(got[1])["epochs"] == json.loads(ref[1])["epochs"]
    with open_run(path) as run:
        x, _ = next(run.iter_chunks(1))
        assert x.dtype.isnative


def test_float32_features_near_the_float32_limit_are_not_an_overflow(tmp_path):
    m = valid_members()
    m["features"] = (m["features"].astype(np.float64) * 1e37).astype(np.float32)
    path = write_h5(tmp_path / "run.h5", m)
    rc, out, err = ncanalyze("metrics", path, "-f", "json")
    assert rc == 0, err
    assert "overflow" not in err


def test_epochs_list_parsing_is_linear():
    from ncanalyze.settings import select_epochs

    available = np.arange(1, 20_001)
    spec = ",".join(str(e) for e in range(1, 20_001, 1)) + ",1:20000,last"
    assert len(spec) > 100_000
    start = time.perf_counter()
    chosen = select_epochs(spec, available)
    elapsed = time.perf_counter() - start
    assert chosen == list(range(1, 20_001))
    assert elapsed < 1.0, f"{elapsed:.2f} s for a {len(spec)}-character list"
