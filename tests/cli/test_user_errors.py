"""User errors get exit 2 or 3 and one line, never exit 70 (internal error): non-finite
numeric options, corrupt or lying .npz dumps, and the --workers / --chunk-rows caps."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest


from tests.conftest import run_cli

from tests.factories import valid_members, write_h5


def cli(*args):
    return run_cli(*args)


def _one_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def run(tmp_path):
    return write_h5(tmp_path / "run.h5", valid_members())


@pytest.mark.parametrize("command,option", [("snr", "--ridge"), ("report", "--ridge"),
                                            ("decompose", "--weight-decay"),
                                            ("report", "--weight-decay")])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numeric_options_are_usage_errors(run, command, option, value):
    result = cli(command, run, option, value, "-f", "json")
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert option in _one_line(result) and "finite" in result.stderr


def _dumps(folder, epochs=(1, 2)):
    folder.mkdir(exist_ok=True)
    y = np.arange(30) % 3
    for e in epochs:
        np.savez(folder / f"epoch_{e}.npz",
                 features=np.ones((30, 4), np.float32) * e + y[:, None], labels=y)


def _corrupt(path):
    data = bytearray(path.read_bytes())
    data[10:40] = b"\xff" * 30  # inside the first local header
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_a_zip(path):
    path.write_bytes(b"this is not a zip archive at all" * 10)


def _npz_declaring(path, shape):
    """A valid zip whose features.npy header declares ``shape`` float32 but holds 64 bytes."""
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(b"\x00" * 64)
    y = io.BytesIO()
    np.save(y, np.arange(30) % 3)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("features.npy", buf.getvalue())
        z.writestr("labels.npy", y.getvalue())


def _huge_declared(path):
    """features.npy declares 384 GiB (2**24 × 6144 float32)."""
    _npz_declaring(path, (2**24, 6144))


def _lying_size(path):
    """features.npy declares 2 GiB (under the size limit) and holds 64 bytes."""
    _npz_declaring(path, (2**20, 512))


@pytest.mark.parametrize("damage", [_corrupt, _truncate, _not_a_zip, _huge_declared,
                                    _lying_size])
def test_convert_bad_npz_is_an_input_error(tmp_path, damage):
    folder = tmp_path / "d"
    _dumps(folder)
    bad = folder / "epoch_2.npz"
    damage(bad)
    result = cli("convert", folder, tmp_path / "o.h5")
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    line = _one_line(result)
    assert str(bad) in line
    if damage in (_huge_declared, _lying_size):  # refused from the header, before allocating
        assert "declares shape" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


# ---------------------------------------------------------------------- caps (item 6)
def test_workers_above_the_core_count_are_capped(tmp_path):
    from ncanalyze.analysis import Analysis
    from ncanalyze.settings import Settings
    from ncanalyze.io.writer import RunWriter

    cores = len(os.sched_getaffinity(0))
    path = tmp_path / "many.h5"
    y = np.arange(30) % 3
    with RunWriter(path, y) as w:
        for e in range(1, cores + 3):
            w.add_epoch(e, np.random.default_rng(e).standard_normal((30, 4)) + y[:, None])
    with Analysis(path, Settings(workers=cores + 1)) as a:
        assert a.workers()[0] == cores
        assert any("--workers" in w and str(cores) in w for w in a.run_warnings)
    result = cli("metrics", path, "--workers", 10**6, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert f"--workers 1000000: this machine gives ncanalyze {cores} core(s)" in result.stderr


def test_chunk_rows_whose_reads_exceed_the_limit_are_refused(tmp_path):
    members = valid_members()
    n, p = 2**15, 12000  # declared, never written: 1.5 GiB per epoch
    members["labels"] = np.arange(n) % 3
    members["features"] = {"shape": (3, n, p), "dtype": np.float32, "chunks": (1, 64, p)}
    del members["weight"], members["bias"]
    path = write_h5(tmp_path / "wide.h5", members)
    result = cli("metrics", path, "--chunk-rows", 10**11, "-f", "json")
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    line = _one_line(result)
    assert "--chunk-rows" in line and "GiB" in line


def test_chunk_rows_within_the_limit_work(run):
    assert cli("metrics", run, "--chunk-rows", 10**11, "-f", "json").exit_code == 0
