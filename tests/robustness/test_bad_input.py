"""The bad-input corpus of docs/RELIABILITY.md: every case as a small generated file.

Each case asserts the exit code, the one stderr line (file, dataset, epoch, what is wrong)
and that no traceback is printed (only ``--debug`` prints one). The raw builders
``write_h5`` and ``valid_members`` are in ``tests/factories.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncanalyze import InputError, open_run
from ncanalyze.cli import app
from tests.conftest import run_cli

from tests.factories import C, E, N, P, valid_members, write_h5


def variant(tmp_path, attrs=None, drop=(), **changes) -> Path:
    members = valid_members()
    for key in drop:
        del members[key]
    members.update({k.replace("__", "/"): v for k, v in changes.items()})
    return write_h5(tmp_path / "bad.h5", members, attrs)


# ----------------------------------------------------------------------------- the corpus
def _missing(tmp_path):
    return tmp_path / "nope.h5"


def _not_hdf5(tmp_path):
    p = tmp_path / "notes.h5"
    p.write_text("epoch,loss\n1,0.5\n")
    return p


def _empty_file(tmp_path):
    p = tmp_path / "empty.h5"
    p.write_bytes(b"")
    return p


def _truncated(tmp_path):
    good = variant(tmp_path)
    data = good.read_bytes()
    p = tmp_path / "cut.h5"
    p.write_bytes(data[: len(data) // 2])
    return p


def _with(**kw):
    return lambda tmp_path: variant(tmp_path, **kw)


def _nan_features(tmp_path):
    m = valid_members()
    m["features"][1, [4, 9, 50], 2] = np.nan
    m["features"][1, 9, 0] = np.inf
    return write_h5(tmp_path / "nan.h5", m)


def _inf_features_chunked(tmp_path):
    # Bad rows spread over several read chunks: the count covers the whole epoch.
    m = valid_members()
    m["features"][2, [1, 25, 59], :] = -np.inf
    m["features"] = {"data": m["features"], "chunks": (1, 10, P)}
    return write_h5(tmp_path / "inf.h5", m)


def _nan_weight(tmp_path):
    m = valid_members()
    m["weight"][0, 2, 5] = np.nan
    return write_h5(tmp_path / "nanw.h5", m)


def _huge_p(tmp_path):
    m = valid_members()
    m["features"] = {"shape": (E, N, 10**6), "dtype": "f4", "chunks": (1, 1, 1024)}
    del m["weight"], m["bias"]
    return write_h5(tmp_path / "hugeP.h5", m)


def _huge_n(tmp_path):
    m = valid_members()
    m["labels"] = {"shape": (2**40,), "dtype": "i8", "chunks": (4096,)}
    return write_h5(tmp_path / "hugeN.h5", m)


def _huge_e(tmp_path):
    m = valid_members()
    m["epoch"] = {"shape": (2**40,), "dtype": "i8", "chunks": (4096,)}
    return write_h5(tmp_path / "hugeE.h5", m)


def _unavailable_filter(tmp_path):
    # HDF5 refuses to create a dataset with an unavailable filter, so write a gzip dataset
    # (object header v1: no checksum) and patch its filter id 1 (deflate) to 7, which no HDF5
    # build provides — as a file compressed with a plugin (blosc, zstd) looks elsewhere.
    m = valid_members()
    m["features"] = {"data": m["features"], "compression": "gzip", "chunks": (1, N, P)}
    p = write_h5(tmp_path / "filter.h5", m)
    data = bytearray(p.read_bytes())
    pattern = bytes.fromhex("0100 0800 0100 0100") + b"deflate\0"
    assert data.count(pattern) == 1
    i = data.find(pattern)
    data[i:i + 2] = (7).to_bytes(2, "little")
    p.write_bytes(bytes(data))
    return p


def _huge_filtered_chunks(tmp_path):
    # 512 MiB compressed chunks (declared only: nothing is written, the file stays tiny).
    m = valid_members()
    del m["weight"], m["bias"]
    m["features"] = {"shape": (E, 8192, 16384), "dtype": "f4", "chunks": (1, 8192, 16384),
                     "compression": "gzip"}
    m["labels"] = np.arange(8192) % C
    return write_h5(tmp_path / "bigchunk.h5", m)


def _header_only(tmp_path):
    from ncanalyze import RunWriter

    p = tmp_path / "started.h5"
    RunWriter(p, np.arange(N) % C).close()
    return p


CASES = [
    # id, builder, dataset in message (None: none), epoch in message, expected text
    ("missing-file", _missing, None, None, "no such file"),
    ("not-hdf5", _not_hdf5, None, None, "not an HDF5 file"),
    ("empty-file", _empty_file, None, None, "is empty (0 bytes)"),
    ("truncated", _truncated, None, None, "is truncated"),
    ("missing-labels", _with(drop=["labels"]), "/labels", None, "required dataset is missing"),
    ("missing-features", _with(drop=["features"]), "/features", None,
     "required dataset is missing"),
    ("missing-epoch", _with(drop=["epoch"]), "/epoch", None, "required dataset is missing"),
    ("no-complete-epoch", _header_only, "/epoch", None, "no complete epoch yet"),
    ("empty-epoch", _with(epoch=np.zeros(0, np.int64)), "/epoch", None,
     "no complete epoch yet"),
    ("labels-vs-N", _with(labels=np.arange(N - 6) % C), "/features", None,
     "has 60 rows but the labels have 54"),
    ("weight-P", _with(weight=np.ones((E, C, P - 1))), "/weight", None,
     "has P = 7 but /features has P = 8"),
    ("weight-rows-vs-C", _with(weight=np.ones((E, C + 1, P))), "/weight", None,
     "has 4 rows but C = 3"),
    ("bias-shape", _with(bias=np.ones((E, C + 2))), "/bias", None, "must be (E, C)"),
    ("labels-negative", _with(labels=np.r_[-1, np.arange(1, N) % C]), "/labels", None,
     "negative labels"),
    ("labels-ge-C", _with(attrs={"num_classes": 2}), "/labels", None,
     "label(s) ≥ C = 2"),
    ("labels-float", _with(labels=(np.arange(N) % C) + 0.5), "/labels", None,
     "must hold integers"),
    ("labels-2d", _with(labels=np.zeros((N, 2), np.int64)), "/labels", None, "must be 1-D"),
    ("nan-features", _nan_features, "/features", 2,
     "3 of 60 rows contain NaN or Inf (first bad row: 4)"),
    ("inf-features-chunked", _inf_features_chunked, "/features", 3,
     "3 of 60 rows contain NaN or Inf (first bad row: 1)"),
    ("nan-weight", _nan_weight, "/weight", 1, "1 of 3 rows contain NaN or Inf"),
    ("one-class", _with(labels=np.zeros(N, np.int64), drop=["weight", "bias"]), "/labels", None,
     "at least 2 classes"),
    ("num-classes-1", _with(attrs={"num_classes": 1}), "/", None, "at least 2 classes"),
    ("unknown-format", _with(attrs={"ncanalyze_format": 7}), "/", None,
     "unknown ncanalyze_format 7"),
    ("format-not-int", _with(attrs={"ncanalyze_format": "one"}), "/", None, "is not an integer"),
    ("huge-P", _huge_p, "/features", None, "declares P = 1000000"),
    ("huge-N", _huge_n, "/labels", None, "declares N = 1099511627776"),
    ("huge-E", _huge_e, "/epoch", None, "declares 1099511627776 epochs"),
    ("unavailable-filter", _unavailable_filter, "/features", None,
     "needs HDF5 filter 7 (deflate), which is not available"),
    ("huge-filtered-chunks", _huge_filtered_chunks, "/features", None,
     "compressed chunks of 0.5 GiB"),
    ("epochs-not-increasing", _with(epoch=np.array([1, 3, 3])), "/epoch", None,
     "strictly increasing"),
    ("features-2d", _with(features=np.ones((N, P), np.float32)), "/features", None,
     "must be 3-D"),
    ("features-int", _with(features=np.ones((E, N, P), np.int32)), "/features", None,
     "must hold float16/32/64"),
    ("features-group", _with(drop=["features"], features__x=np.ones(3)), "/features", None,
     "is a group, expected a dataset"),
    ("bias-without-weight", _with(drop=["weight"]), "/bias", None, "without /weight"),
    ("weight-decay-negative", _with(attrs={"ncanalyze_format": 1, "weight_decay": -1.0}), "/",
     None, "must be finite and ≥ 0"),
]

#: Problems in the bulk data, found only by commands that read it.
DATA_CASES = {"nan-features", "inf-features-chunked", "nan-weight"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(tmp_path, case):
    name, build, dataset, epoch, text = case
    path = build(tmp_path)
    before = path.read_bytes() if path.exists() else None
    for command in ("metrics", "inspect"):
        result = run_cli(command, path, *(["-f", "json"] if command == "inspect" else []))
        if command == "inspect" and name in DATA_CASES:
            # inspect reads no bulk data (it stays cheap on huge files): nothing to flag.
            assert result.exit_code == 0 and "Traceback" not in result.stderr
            continue
        assert result.exit_code == 3, (command, result.exit_code, result.stderr, result.stdout)
        assert "Traceback" not in result.stderr + result.stdout
        if command == "metrics":
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, lines
            expected = f"ncanalyze: error: {path}: "
            if dataset:
                expected += f"{dataset}: "
            if epoch is not None:
                expected += f"epoch {epoch}: "
            assert lines[0].startswith(expected), (lines[0], expected)
            assert text in lines[0], lines[0]
        elif result.stdout:  # inspect lists the problem
            assert any(text in p for p in json.loads(result.stdout)["problems"]), result.stdout
        else:  # or cannot open the file at all
            assert text in result.stderr
    assert (path.read_bytes() if path.exists() else None) == before


def test_corpus_cases_raise_input_error_from_the_api(tmp_path):
    for name, build, _, _, text in CASES:
        sub = tmp_path / name
        sub.mkdir()
        path = build(sub)
        with pytest.raises(InputError, match=None) as info:
            with open_run(path) as run:
                for e in run.epochs:
                    run.weight(e)
                    for _ in run.iter_chunks(e):
                        pass
        assert text in str(info.value), (name, str(info.value))


def test_debug_prints_the_traceback(tmp_path):
    path = _nan_features(tmp_path)
    plain = run_cli("metrics", path)
    debug = run_cli("metrics", path, "--debug")
    assert plain.exit_code == debug.exit_code == 3
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr and "contain NaN or Inf" in debug.stderr


def test_real_process_prints_one_line_and_no_traceback(tmp_path):
    path = _unavailable_filter(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "ncanalyze", "metrics", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "needs HDF5 filter 7" in proc.stderr


def test_usage_error_exit_2(tmp_path):
    path = variant(tmp_path)
    result = run_cli("metrics", path, "--epochs", "banana")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "--epochs" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_backend_unavailable_exit_4(tmp_path):
    result = run_cli("metrics", variant(tmp_path), "--backend", "cupy")
    assert result.exit_code == 4 and "Traceback" not in result.stderr
    assert "backend 'cupy' is unavailable" in result.stderr


def _as_unprivileged(args) -> tuple[int, str]:
    """Run ``ncanalyze ARGS`` so that file permissions apply: in this process for a normal
    user; as root (how CI runs) in a child without the capabilities that let root read any
    file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH dropped from the bounding set by setpriv)."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        result = run_cli(*args)
        return result.exit_code, result.stderr
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv (util-linux) cannot drop its read override")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search",
                           sys.executable, "-m", "ncanalyze", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("command", ["metrics", "inspect", "plot"])
def test_unreadable_file(tmp_path, command):
    """Exit 3 and one line from the reader (the option parser used to answer exit 2 with a
    usage box, unseen while this test skipped as root)."""
    path = variant(tmp_path)
    args = [command, path]
    if command == "plot":
        good = write_h5(tmp_path / "good.h5", valid_members())
        args = ["plot", good, "--compare", path, "-o", tmp_path / "fig.png"]
    path.chmod(0)
    try:
        code, stderr = _as_unprivileged(args)
    finally:
        path.chmod(0o644)
    assert code == 3 and "permission denied" in stderr, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_p_at_least_n_minus_c_is_a_warning_not_an_error(tmp_path):
    # Σ_W is singular; metrics are still defined (NC1 uses Σ_B^†), inspect lists a problem.
    rng = np.random.default_rng(3)
    y = np.arange(8) % C
    path = write_h5(tmp_path / "wide.h5", {
        "labels": y, "epoch": np.array([1]),
        "features": rng.standard_normal((1, 8, 8)).astype(np.float32)})
    result = run_cli("metrics", path, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("inspect", path, "-f", "json")
    assert result.exit_code == 3
    assert any("Σ_W is singular" in p for p in json.loads(result.stdout)["problems"])
    if "snr" in {c.name or c.callback.__name__ for c in app.registered_commands}:
        result = run_cli("snr", path, "-f", "json")
        assert result.exit_code == 0 and "Traceback" not in result.stderr
        assert "singular" in result.stderr
