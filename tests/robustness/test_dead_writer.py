"""A writer killed without closing its run: `--follow` ends non-zero saying where the writer
stopped, and `inspect` says the file is still open for writing and that nobody holds its lock
(issue 20 item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ncanalyze.io import RunWriter
from tests.conftest import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from ncanalyze.io import RunWriter
    y = np.repeat(np.arange(3), 6)
    w = RunWriter(sys.argv[1], y, loss="mse")
    rng = np.random.default_rng(0)
    for e in (1, 2):
        w.add_epoch(e, (np.eye(3, 4)[y] * 4 + rng.normal(size=(18, 4))).astype(np.float32),
                    np.eye(3, 4), np.zeros(3))
    os.kill(os.getpid(), signal.SIGKILL)  # a training job killed mid-run
""")


@pytest.fixture(scope="module")
def dead_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("dead") / "live.h5"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", WRITER, str(path)], env=env, timeout=120)
    assert proc.returncode == -9
    return path


def test_follow_timing_out_on_a_dead_writer_fails(dead_run):
    r = run_cli("metrics", dead_run, "--follow", "--timeout", "1", "-f", "json")
    assert r.exit_code == 3, r.stderr
    assert [e["epoch"] for e in json.loads(r.stdout)["epochs"]] == [1, 2]  # output kept
    assert "never closed" in r.stderr and "stopped at epoch 2" in r.stderr
    assert "gone without closing" in r.stderr


def test_inspect_reports_the_open_file_and_the_dead_writer(dead_run):
    r = run_cli("inspect", dead_run, "-f", "json")
    assert r.exit_code == 3, r.stderr  # a problem found
    doc = json.loads(r.stdout)
    assert doc["writing"]["open"] and doc["writing"]["lock"] == "stale"
    assert any("no writer holds its lock" in p for p in doc["problems"])
    table = run_cli("inspect", dead_run, env={"COLUMNS": "200"}).stdout
    assert "no problems found" not in table and "died without closing" in table


def test_inspect_reports_a_live_writer(tmp_path):
    path = tmp_path / "w.h5"
    y = np.repeat(np.arange(3), 6)
    with RunWriter(path, y) as w:
        w.add_epoch(0, np.random.default_rng(1).normal(size=(18, 4)).astype(np.float32))
        doc = json.loads(run_cli("inspect", path, "-f", "json").stdout)
        assert doc["writing"]["lock"] == "held" and doc["writing"]["pid"] == os.getpid()
        assert not doc["problems"]
    assert json.loads(run_cli("inspect", path, "-f", "json").stdout)["writing"] is None
