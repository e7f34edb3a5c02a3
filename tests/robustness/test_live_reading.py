"""Live reading (docs/RELIABILITY.md): ncanalyze reads a run file while a RunWriter appends to it.

A writer process (the child program ``tests/writer_child.py``) appends epochs with a short
pause; meanwhile ``ncanalyze metrics`` reads the file over and over. Every read must report a
prefix 1..k of the epochs written, and each epoch's values must equal the values computed
once the writer has finished.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from ncanalyze import open_run
from tests.conftest import run_cli

from tests import writer_child as crash

EPOCHS = 20


def _read_cli(path):
    result = run_cli("metrics", str(path), "-f", "json", "--quiet")
    if result.exit_code == 0:
        return json.loads(result.stdout)["epochs"]
    # Before the first epoch is complete the file is absent or has no /epoch yet.
    assert result.exit_code == 3, result.stderr
    assert "no complete epoch yet" in result.stderr or "no such file" in result.stderr, \
        result.stderr
    return None


def _read_subprocess(path):
    proc = subprocess.run([sys.executable, "-m", "ncanalyze", "metrics", str(path), "-f", "json",
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 3), proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)["epochs"] if proc.returncode == 0 else None


def test_metrics_while_a_writer_appends(tmp_path):
    path = tmp_path / "live.h5"
    # 0.5 s an epoch: enough reads overlap the writer even on a loaded 2-core machine.
    proc = crash.start_child(path, epochs=EPOCHS, pause=0.5)
    reader = crash.LineReader(proc.stdout)
    reader.start()
    reads = []  # (epochs done before the read started, epochs done after it, result)
    i = 0
    while proc.poll() is None:
        before = len(reader.done())
        result = (_read_subprocess if i % 5 == 4 else _read_cli)(path)
        after = len(reader.done())
        reads.append((before, after, result, proc.poll() is None))
        i += 1
    proc.wait(60)
    reader.join(30)
    assert proc.returncode == 0, proc.stderr.read()
    assert reader.done() == list(range(1, EPOCHS + 1))

    final = {e["epoch"]: e for e in _read_cli(path)}
    assert sorted(final) == list(range(1, EPOCHS + 1))
    concurrent = 0
    for before, after, result, alive in reads:
        if result is None:
            assert before == 0, "an error after an epoch had been completed"
            continue
        got = [e["epoch"] for e in result]
        # A prefix; at least what was done when the read began, at most one beyond the end.
        assert got == list(range(1, len(got) + 1))
        assert before <= len(got) <= after + 1, (before, got, after)
        for e in result:
            assert e == final[e["epoch"]]
        concurrent += alive and len(got) < EPOCHS
    assert concurrent >= 8, f"only {concurrent} reads overlapped the writer"
    print(f"concurrent reads checked: {concurrent} of {len(reads)}")


def test_open_run_snapshot_stays_consistent_while_writer_appends(tmp_path):
    path = tmp_path / "live_api.h5"
    proc = crash.start_child(path, epochs=EPOCHS, pause=0.02)
    reader = crash.LineReader(proc.stdout)
    reader.start()
    while len(reader.done()) < 3:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    checked = 0
    with open_run(path) as run:
        seen = [int(e) for e in run.epochs]
        assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 3
        # Read the snapshot's epochs while later epochs are being appended.
        while proc.poll() is None or checked < len(seen):
            crash.check_epoch(run, seen[checked % len(seen)])
            checked += 1
            if checked > 4 * EPOCHS:
                break
    proc.wait(60)
    reader.join(30)
    assert proc.returncode == 0
    with open_run(path) as run:
        assert [int(e) for e in run.epochs] == list(range(1, EPOCHS + 1))
        for e in run.epochs:
            crash.check_epoch(run, int(e))
    assert np.all(np.diff(seen) == 1)
