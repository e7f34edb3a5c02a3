"""Hostile but ordinary dumps (issue 16 items 7, 9, 15): each is one line naming the dump,
exit 3 (exit 2 for a bad option); the folder is never changed and no output is left.

Also: only the members convert uses are read, within one memory budget; torch's multi-line
errors are reduced to one line that never suggests ``weights_only=False``.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from ncanalyze.dumps import load_dump
from ncanalyze.errors import InputError
from tests.conftest import run_cli

torch = pytest.importorskip("torch")

N, P, C = 30, 4, 3
Y = np.arange(N) % C
F = np.random.default_rng(0).normal(size=(N, P)).astype(np.float32)


def _npz(folder, name="epoch_1.npz", **arrays):
    folder.mkdir(exist_ok=True)
    np.savez(folder / name, **({"features": F, "labels": Y} | arrays))
    return folder / name


def _pt(folder, obj, name="epoch_1.pt"):
    folder.mkdir(exist_ok=True)
    torch.save(obj, folder / name)
    return folder / name


def _patch_zip(path, *, flag=0, method=None):
    """Set general-purpose flag bits and/or the compression method of every zip entry."""
    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            old = struct.unpack_from("<H", data, i + flag_at)[0]
            struct.pack_into("<H", data, i + flag_at, old | flag)
            if method is not None:
                struct.pack_into("<H", data, i + method_at, method)
            start = i + 4
    path.write_bytes(bytes(data))


def _tensors(features, labels=None):
    return {"features": features, "labels": torch.tensor(Y) if labels is None else labels}


def _case_bfloat16(d):
    _pt(d, _tensors(torch.tensor(F).bfloat16()))  # readable: upcast to float32


def _case_float8(d):
    _pt(d, _tensors(torch.tensor(F).to(torch.float8_e4m3fn)))


def _case_sparse(d):
    _pt(d, _tensors(torch.tensor(F).to_sparse()))


def _case_meta(d):
    _pt(d, _tensors(torch.empty(N, P, device="meta")))


def _case_complex_pt(d):
    _pt(d, _tensors(torch.tensor(F).to(torch.complex64)))


def _case_empty_labels(d):
    _npz(d, features=np.zeros((0, P), np.float32), labels=np.zeros(0, np.int64))


def _case_p0(d):
    _npz(d, features=np.zeros((N, 0), np.float32))


def _case_string_features(d):
    _npz(d, features=np.full((N, P), "a"))


def _case_datetime_features(d):
    _npz(d, features=np.zeros((N, P), "datetime64[s]"))


def _case_complex_npz(d):
    _npz(d, features=F.astype(np.complex64))


def _case_nan_features(d):
    f = F.copy()
    f[3, 1] = np.nan
    _npz(d, features=f)


def _case_too_many_features(d):
    _npz(d, features=np.zeros((3, 23_001), np.float32), labels=np.array([0, 1, 1]))


def _case_encrypted(d):
    _patch_zip(_npz(d), flag=0x1)


def _case_deflate64(d):
    _patch_zip(_npz(d), method=9)


def _case_npy_with_zip_appended(d):
    path = _npz(d)
    head = io.BytesIO()
    np.save(head, F)
    path.write_bytes(head.getvalue() + path.read_bytes())


def _case_epoch_beyond_int64(d):
    _npz(d, name="epoch_" + "9" * 30 + ".npz")


def _case_pickled_pt(d):
    d.mkdir()
    torch.save({"features": torch.tensor(F), "labels": torch.tensor(Y), "obj": object()},
               d / "epoch_1.pt")


CASES = {name[len("_case_"):]: fn for name, fn in globals().items()
         if name.startswith("_case_")}
READABLE = {"bfloat16", "float8"}  # float types NumPy lacks: exactly upcast to float32


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_dump_is_one_line_exit_3(tmp_path, case):
    folder = tmp_path / "dumps"
    CASES[case](folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "run.h5"
    result = run_cli("convert", folder, out, "-q")
    lines = result.stderr.strip().splitlines()
    if case in READABLE:
        assert result.exit_code == 0, result.stderr
    else:
        assert result.exit_code == 3, (result.exit_code, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("ncanalyze: error: "), result.stderr
        assert str(folder) in lines[0], lines[0]  # the dump (or folder) is blamed, not OUT
        assert "weights_only=False" not in lines[0]
        assert not out.exists()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_num_classes_option_is_checked_as_an_option(tmp_path):
    _npz(tmp_path / "d")
    for value in ("0", "1", str(2**40)):
        result = run_cli("convert", tmp_path / "d", tmp_path / "run.h5", "--num-classes", value)
        assert result.exit_code == 2, (value, result.stderr)
        assert "--num-classes" in result.stderr and len(result.stderr.splitlines()) == 1


def test_members_not_used_are_not_loaded(tmp_path, monkeypatch):
    """A 10 MiB ignored member is described from its header, never read (item 9)."""
    path = _npz(tmp_path / "d", extra=np.zeros((1024, 1280), np.float64), lr=np.float64(0.1))
    reads = []
    real = np.lib.format.read_array

    def spy(fp, *a, **k):
        out = real(fp, *a, **k)
        reads.append(out.nbytes)
        return out

    monkeypatch.setattr(np.lib.format, "read_array", spy)
    arrays, scalars, ignored = load_dump(path)
    assert set(arrays) == {"features", "labels"} and scalars == {"lr": 0.1}
    assert "extra" in ignored and "1024×1280" in ignored["extra"]
    assert max(reads) < 2**20  # the 10 MiB member was not read


def test_used_members_share_one_budget(tmp_path, monkeypatch):
    import ncanalyze.dumps as conv

    path = _npz(tmp_path / "d", weight=np.zeros((C, P)), bias=np.zeros(C))
    monkeypatch.setattr(conv, "dump_budget", lambda: F.nbytes + Y.nbytes)  # no room for W, b
    with pytest.raises(InputError, match="budget"):
        load_dump(path)
    pt = _pt(tmp_path / "p", {"features": torch.tensor(F), "labels": torch.tensor(Y),
                              "weight": torch.zeros(C, P)})
    with pytest.raises(InputError, match="budget"):
        load_dump(pt)


def test_pt_errors_are_one_line_without_torch_advice(tmp_path):
    bad = tmp_path / "d"
    _case_pickled_pt(bad)
    with pytest.raises(InputError) as info:
        load_dump(bad / "epoch_1.pt")
    text = info.value.one_line()
    assert "\n" not in text and "weights_only=False" not in text and "unpickl" in text


def test_pt_with_compressed_or_encrypted_entries_is_refused(tmp_path):
    path = _pt(tmp_path / "d", _tensors(torch.tensor(F)))
    packed = tmp_path / "d" / "epoch_2.pt"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(packed, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(InputError, match="compressed"):
        load_dump(packed)
    _patch_zip(path, flag=0x1)
    with pytest.raises(InputError, match="encrypted"):
        load_dump(path)


def test_ignored_pt_tensor_is_not_read(tmp_path):
    """A 256 MiB tensor convert does not use is memory-mapped, never read (item 9); measured
    in a fresh process, whose peak resident memory is not that of earlier tests."""
    import subprocess
    import sys

    path = _pt(tmp_path / "d", _tensors(torch.tensor(F)) | {"big": torch.ones(2**26)})
    code = ("import resource, sys, torch; from pathlib import Path; "
            "from ncanalyze.dumps import load_dump; "
            "b = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "a, _, i = load_dump(Path(sys.argv[1])); assert 'big' in i, i; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - b)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True)
    assert int(out.stdout) < 64 * 1024, out.stdout  # KiB: far below the 256 MiB tensor


def test_epoch_numbers_in_file_names_are_ascii_digits():
    from ncanalyze.convert import epoch_of

    assert epoch_of("epoch_\u0663.npz") is None and epoch_of("epoch_3.npz") == 3
