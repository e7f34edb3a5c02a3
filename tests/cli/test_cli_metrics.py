"""`ncanalyze metrics` and `inspect` from the command line: every option and exit code."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tests.conftest import run_cli
from ncanalyze.io import RunWriter

from tests.factories import collapsing_features, labels
from tests.reference import assert_close, reference_metrics



@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    C, P = 4, 6
    y = labels(C, [20, 25, 30, 15], rng)
    yt = labels(C, 8, rng)
    means = rng.normal(size=(C, P)) * 3
    path = tmp_path_factory.mktemp("cli") / "run.h5"
    data = {}
    with RunWriter(path, y, loss="mse", weight_decay=1e-3, splits={"test": yt}) as w:
        for e in (1, 5, 10, 20):
            H = collapsing_features(y, means, 1.0 / e, rng).astype(np.float32)
            Ht = collapsing_features(yt, means, 1.0 / e, rng).astype(np.float32)
            L = collapsing_features(y, rng.normal(size=(C, 3)), 1.0, rng).astype(np.float32)
            W = means + rng.normal(size=(C, P)) / e
            b = rng.normal(size=C) / e
            w.add_epoch(e, H, W, b, layers={"hidden": L}, splits={"test": Ht},
                        train_loss=1.0 / e)
            data[e] = (H, W, b)
    return path, y, data


def invoke(*args):
    return run_cli(*args)


def test_json_document_matches_spec_and_reference(run_file):
    path, y, data = run_file
    r = invoke("metrics", path, "--format", "json", "--backend", "numpy")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["command"] == "metrics" and doc["ncanalyze"]
    assert (doc["classes"], doc["samples"], doc["features"]) == (4, 90, 6)
    assert doc["file"] == str(path)
    assert isinstance(doc["settings"], dict) and isinstance(doc["warnings"], list)
    assert [e["epoch"] for e in doc["epochs"]] == [1, 5, 10, 20]
    for e in doc["epochs"]:
        H, W, b = data[e["epoch"]]
        assert_close(e, reference_metrics(H, y, W, b, 4))
        assert e["scalars"]["train_loss"] == pytest.approx(1.0 / e["epoch"])


@pytest.mark.parametrize("spec,expected", [
    ("last", [20]), ("1,10", [1, 10]), ("5:10", [5, 10]), (":5", [1, 5]), ("10:", [10, 20]),
    ("1, last", [1, 20]), ("all", [1, 5, 10, 20]),
])
def test_epoch_selection(run_file, spec, expected):
    r = invoke("metrics", run_file[0], "--epochs", spec, "-f", "jsonl")
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["epoch"] for x in lines] == expected


@pytest.mark.parametrize("spec", ["3", "30:40", "x", "1;2"])
def test_bad_epoch_selection_is_usage_error(run_file, spec):
    r = invoke("metrics", run_file[0], "--epochs", spec)
    assert r.exit_code == 2
    assert "--epochs" in r.stderr and "Traceback" not in r.stderr


def test_csv_output(run_file):
    r = invoke("metrics", run_file[0], "-f", "csv", "--layers", "--split", "test")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 4
    assert {"epoch", "nc1", "layers.hidden.nc1", "splits.test.accuracy",
            "scalars.train_loss"} <= set(rows[0])
    assert float(rows[-1]["nc1"]) < float(rows[0]["nc1"])


def test_table_output_and_markdown(run_file):
    r = invoke("metrics", run_file[0])
    assert r.exit_code == 0
    assert "nc1" in r.stdout and "epoch" in r.stdout and "20" in r.stdout
    md = invoke("metrics", run_file[0], "-f", "markdown", "--fail-if", "nc1>10")
    assert md.exit_code == 0
    assert "| `nc1` |" in md.stdout and "✅" in md.stdout


def test_dtype_float32_agrees(run_file):
    a = json.loads(invoke("metrics", run_file[0], "-f", "json").stdout)
    b = json.loads(invoke("metrics", run_file[0], "-f", "json", "--dtype", "float32").stdout)
    for ea, eb in zip(a["epochs"], b["epochs"]):
        assert eb["nc1"] == pytest.approx(ea["nc1"], rel=1e-4)
    assert invoke("metrics", run_file[0], "--dtype", "float16").exit_code == 2


def test_output_file_is_written_and_stdout_empty(run_file, tmp_path):
    out = tmp_path / "m.json"
    r = invoke("metrics", run_file[0], "-f", "json", "--output", out)
    assert r.exit_code == 0 and r.stdout == ""
    assert json.loads(out.read_text())["epochs"][-1]["epoch"] == 20
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary left behind


def test_fail_if_exit_codes(run_file):
    ok = invoke("metrics", run_file[0], "--fail-if", "nc1>100", "-q")
    assert ok.exit_code == 0
    bad = invoke("metrics", run_file[0], "--fail-if", "nc1<100", "-f", "json")
    assert bad.exit_code == 1
    assert "nc1<100" in bad.stderr and "FAILED" in bad.stderr
    json.loads(bad.stdout)  # the output is still complete
    # last epoch passes, an earlier one fails: --gate all catches it
    first = json.loads(invoke("metrics", run_file[0], "-f", "json").stdout)["epochs"]
    mid = (first[0]["nc1"] + first[-1]["nc1"]) / 2
    assert invoke("metrics", run_file[0], "--fail-if", f"nc1>{mid}").exit_code == 0
    assert invoke("metrics", run_file[0], "--fail-if", f"nc1>{mid}",
                  "--gate", "all").exit_code == 1
    assert invoke("metrics", run_file[0], "--fail-if", "splits.test.accuracy<2",
                  "--split", "test").exit_code == 1


@pytest.mark.parametrize("expr", ["nc1 >> 2", "nc1>abc", "nosuchkey>1"])
def test_bad_fail_if_is_usage_error(run_file, expr):
    r = invoke("metrics", run_file[0], "--fail-if", expr)
    assert r.exit_code == 2 and "--fail-if" in r.stderr


def test_global_mean_center_weights_and_chunk_rows(run_file):
    path, y, data = run_file
    r = invoke("metrics", path, "-f", "json", "--global-mean", "classes", "--center-weights",
               "--chunk-rows", "7", "--epochs", "last")
    assert r.exit_code == 0, r.stderr
    e = json.loads(r.stdout)["epochs"][0]
    H, W, b = data[20]
    assert_close(e, reference_metrics(H, y, W, b, 4, global_mean="classes",
                                      center_weights=True))
    assert invoke("metrics", path, "--global-mean", "median").exit_code == 2
    assert invoke("metrics", path, "--chunk-rows", "0").exit_code == 2


def test_unknown_split_and_missing_layers(run_file, tmp_path):
    r = invoke("metrics", run_file[0], "--split", "val")
    assert r.exit_code == 2 and "/splits/val" in r.stderr
    y = np.repeat([0, 1, 2], 5)
    with RunWriter(tmp_path / "plain.h5", y) as w:
        w.add_epoch(0, np.random.default_rng(0).normal(size=(15, 4)))
    r = invoke("metrics", tmp_path / "plain.h5", "--layers")  # the table says it below itself
    assert r.exit_code == 0 and "no /layers" in r.stdout and r.stderr == ""
    r = invoke("metrics", tmp_path / "plain.h5", "--layers", "-f", "csv")  # no place: stderr
    assert r.exit_code == 0 and "no /layers" in r.stderr
    q = invoke("metrics", tmp_path / "plain.h5", "--layers", "--quiet", "-f", "csv")
    assert q.exit_code == 0 and q.stderr == ""


def test_backend_options(run_file):
    from ncanalyze.backend import cupy_available

    assert invoke("metrics", run_file[0], "--backend", "numpy").exit_code == 0
    assert invoke("metrics", run_file[0], "--backend", "auto").exit_code == 0
    assert invoke("metrics", run_file[0], "--backend", "tpu").exit_code == 2  # not a backend
    if not cupy_available():
        r = invoke("metrics", run_file[0], "--backend", "cupy")
        assert r.exit_code == 4 and "cupy" in r.stderr and "Traceback" not in r.stderr


def test_input_errors_and_debug(tmp_path):
    r = invoke("metrics", tmp_path / "missing.h5")
    assert r.exit_code == 3 and "no such file" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "text.h5").write_text("hello")
    r = invoke("metrics", tmp_path / "text.h5")
    assert r.exit_code == 3 and "not an HDF5 file" in r.stderr
    r = invoke("metrics", tmp_path / "text.h5", "--debug")
    assert r.exit_code == 3 and "Traceback" in r.stderr


def test_format_and_usage_errors(run_file):
    assert invoke("metrics", run_file[0], "-f", "xml").exit_code == 2
    assert invoke("metrics").exit_code == 2
    assert invoke("metrics", run_file[0], "--no-such-option").exit_code == 2
    h = invoke("metrics", "--help")
    assert h.exit_code == 0 and "Example" in h.stdout


def test_inspect(run_file):
    r = invoke("inspect", run_file[0])
    assert r.exit_code == 0, r.stderr
    for text in ("/features", "float32", "C=4", "N=90", "no problems found", "hidden", "test"):
        assert text in r.stdout
    j = json.loads(invoke("inspect", run_file[0], "-f", "json").stdout)
    assert j["run"]["class_counts"] == [20, 25, 30, 15] and j["problems"] == []


def test_python_dash_m_entry_point(run_file):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "ncanalyze", "metrics", str(run_file[0]),
                        "-f", "jsonl", "--epochs", "last"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["epoch"] == 20
