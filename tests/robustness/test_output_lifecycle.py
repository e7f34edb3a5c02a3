"""Outputs from the first byte to the last (issue 16 item 11, docs/RELIABILITY.md §5).

``-o /dev/stdout`` into a pipe, a signal that ends the process while an output is being
written (no hidden temporary file may stay behind), a legal name as long as the file system
allows (the temporary and lock names must fit too), and ``-o`` onto a FIFO nobody reads yet
(it is opened only when there is something to write). Real processes: signals, pipes and
FIFOs are what is tested.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ncanalyze.io.writer import RunWriter
from tests.factories import valid_members, write_h5

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def ncanalyze(*args, timeout=60, **kwargs):
    return subprocess.run([sys.executable, "-m", "ncanalyze", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=ENV, **kwargs)


def _hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


def test_dev_stdout_into_a_pipe(tmp_path):
    path = write_h5(tmp_path / "run.h5", valid_members())
    out = ncanalyze("metrics", path, "-f", "json", "-o", "/dev/stdout", "-q")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["command"] == "metrics"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminating_signal_leaves_no_temporary_file(tmp_path, sig):
    path = tmp_path / "live.h5"
    y = np.arange(40) % 2
    with RunWriter(path, y) as w:  # a live run: --follow waits for more epochs
        w.add_epoch(1, np.eye(2, 4)[y] + 0.1 * np.random.default_rng(0).standard_normal((40, 4)))
        out = tmp_path / "out" / "metrics.json"
        out.parent.mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "ncanalyze", "metrics", str(path),
                                 "--follow", "-f", "json", "-o", str(out), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV)
        try:
            deadline = time.monotonic() + 60
            while not _hidden(out.parent) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _hidden(out.parent), "the output's temporary file never appeared"
            time.sleep(0.3)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert _hidden(out.parent) == [] and not out.exists()


NAME_MAX = 255


@pytest.mark.parametrize("ext", [".json", ".csv"])
def test_an_output_name_of_the_longest_legal_length(tmp_path, ext):
    path = write_h5(tmp_path / "run.h5", valid_members())
    out = tmp_path / ("m" * (NAME_MAX - len(ext)) + ext)
    result = ncanalyze("metrics", path, "-f", ext[1:], "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert out.exists() and _hidden(tmp_path) == []


def test_a_run_file_name_of_the_longest_legal_length(tmp_path):
    out = tmp_path / ("r" * (NAME_MAX - 3) + ".h5")
    result = ncanalyze("simulate", out, "-q")
    assert result.returncode == 0, result.stderr
    assert out.exists() and _hidden(tmp_path) == []
    again = RunWriter(tmp_path / ("w" * (NAME_MAX - 3) + ".h5"), np.arange(10) % 2)
    again.add_epoch(1, np.ones((10, 3)))
    again.close()
    assert _hidden(tmp_path) == []


def test_a_fifo_without_a_reader_does_not_block_before_the_work(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    # Nothing to write (the input is bad): the error comes at once, the FIFO is never opened.
    result = ncanalyze("metrics", tmp_path / "missing.h5", "-o", fifo, timeout=30)
    assert result.returncode == 3 and "no such file" in result.stderr, result.stderr
    # A valid run: the work is done first, then the FIFO is opened for its reader.
    path = write_h5(tmp_path / "run.h5", valid_members())
    proc = subprocess.Popen([sys.executable, "-m", "ncanalyze", "metrics", str(path),
                             "-f", "json", "-o", str(fifo), "-q"], stderr=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        with open(fifo) as reader:
            text = reader.read()
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    assert len(json.loads(text)["epochs"]) == 3
