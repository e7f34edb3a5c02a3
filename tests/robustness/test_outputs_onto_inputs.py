"""``-o``/``--plot`` onto a file the run reads (issue 16 item 3, docs/RELIABILITY.md §5).

With ``--allow-external`` a run reads other files too: the target of an external link, an
external raw-storage file, a virtual-dataset source file (named plainly or printf-style).
Every one of them is an input, and no output may replace it: exit 2, one line, before any
output is written, and every file keeps its bytes.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.factories import printf_virtual_dataset
from tests.factories import valid_members, write_h5


def _elink(tmp_path):
    m = valid_members()
    write_h5(tmp_path / "data.h5", {"features": m.pop("features")}, attrs={})
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f["features"] = h5py.ExternalLink("data.h5", "/features")
    return path, tmp_path / "data.h5"


def _group_elink(tmp_path):
    m = valid_members()
    write_h5(tmp_path / "data.h5", {"s/train_loss": m.pop("scalars/train_loss")}, attrs={})
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f["scalars"] = h5py.ExternalLink("data.h5", "/s")
    return path, tmp_path / "data.h5"


def _storage(tmp_path):
    m = valid_members()
    feats = np.ascontiguousarray(m.pop("features"))
    (tmp_path / "features.raw").write_bytes(feats.tobytes())
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        f.create_dataset("features", shape=feats.shape, dtype=feats.dtype,
                         external=[("features.raw", 0, feats.nbytes)])
    return path, tmp_path / "features.raw"


def _vds_file(tmp_path):
    m = valid_members()
    w = m.pop("weight")
    write_h5(tmp_path / "data.h5", {"w": w}, attrs={})
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        layout = h5py.VirtualLayout(shape=w.shape, dtype=w.dtype)
        layout[...] = h5py.VirtualSource("data.h5", "/w", shape=w.shape)
        f.create_virtual_dataset("weight", layout)
    return path, tmp_path / "data.h5"


def _printf_file(tmp_path):
    m = valid_members()
    b = m.pop("bias")
    for j in range(len(b)):
        write_h5(tmp_path / f"data{j}.h5", {"b": b[j:j + 1]}, attrs={})
    path = write_h5(tmp_path / "run.h5", m)
    with h5py.File(path, "a") as f:
        printf_virtual_dataset(f, "bias", "/b", b.shape, b.dtype, file="data%b.h5")
    return path, tmp_path / "data1.h5"


@pytest.mark.parametrize("build", [_elink, _group_elink, _storage, _vds_file, _printf_file])
@pytest.mark.parametrize("option", ["-o", "--plot"])
def test_output_onto_a_file_the_run_reads_is_refused(tmp_path, build, option):
    path, read = build(tmp_path)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()
              if p.is_file()}
    ok = run_cli("snr", path, "--allow-external", "-f", "json", "-q")
    assert ok.exit_code == 0, ok.stderr  # the run is readable with --allow-external
    target = read
    if option == "--plot":
        target = read.with_suffix(".png")  # --plot must name a figure: link the name
        target.symlink_to(read.name)
    result = run_cli("snr", path, "--allow-external", option, target, "-q")
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert result.stderr.count("\n") == 1 and "is the same file as the input" in result.stderr
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_plot_onto_a_file_the_run_reads_is_refused(tmp_path):
    path, read = _elink(tmp_path)
    target = tmp_path / "figure.png"
    target.symlink_to(read.name)
    before = hashlib.sha256(read.read_bytes()).hexdigest()
    result = run_cli("plot", path, "--allow-external", "-o", target, "-q")
    assert result.exit_code == 2 and "is the same file as the input" in result.stderr, \
        result.stderr
    assert hashlib.sha256(read.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("build", [_elink, _group_elink, _storage, _vds_file, _printf_file])
def test_convert_statistics_onto_a_file_the_run_reads_is_refused(tmp_path, build):
    """`convert --statistics IN OUT --overwrite` replaced the external-link target IN reads
    (its check compared OUT with IN only)."""
    path, read = build(tmp_path)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()
              if p.is_file()}
    result = run_cli("convert", "--statistics", path, read, "--allow-external", "--overwrite")
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert result.stderr.count("\n") == 1 and "is the same file as the input" in result.stderr
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
