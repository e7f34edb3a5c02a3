"""Atomic outputs (docs/RELIABILITY.md §5): --output and plot files appear whole or not at all.

A failure while writing (an error in the middle of the epochs, a crashing figure writer, a
SIGKILL) must leave any previous file untouched and no temporary file behind (a SIGKILL can
leave a hidden temporary, never a damaged target).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ncanalyze.atomic import atomic_path, atomic_text
from ncanalyze.cli import app
from tests.conftest import run_cli

from tests.factories import valid_members, write_h5

OLD = "previous report — must survive\n"


def cli(*args):
    return run_cli(*args)


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _fails_at_epoch_3(tmp_path):
    m = valid_members()
    m["features"][2, 5, 1] = np.nan  # epochs 1 and 2 are fine, epoch 3 fails
    return write_h5(tmp_path / "late_nan.h5", m)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "markdown", "table"])
def test_failure_mid_output_leaves_previous_file(tmp_path, fmt):
    run = _fails_at_epoch_3(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "metrics.out"
    target.write_text(OLD)
    result = cli("metrics", run, "-f", fmt, "-o", target)
    assert result.exit_code == 3 and "epoch 3" in result.stderr, result.stderr
    assert target.read_text() == OLD
    assert _leftovers(out_dir, {"metrics.out"}) == []


def test_success_replaces_with_normal_permissions(tmp_path):
    run = write_h5(tmp_path / "ok.h5", valid_members())
    target = tmp_path / "new.jsonl"
    result = cli("metrics", run, "-f", "jsonl", "-o", target)
    assert result.exit_code == 0, result.stderr
    assert len(target.read_text().splitlines()) == 3
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    old = tmp_path / "old.csv"
    old.write_text(OLD)
    old.chmod(0o640)
    assert cli("metrics", run, "-f", "csv", "-o", old).exit_code == 0
    assert old.read_text() != OLD and stat.S_IMODE(old.stat().st_mode) == 0o640
    assert _leftovers(tmp_path, {"ok.h5", "new.jsonl", "old.csv"}) == []


@pytest.mark.parametrize("command", ["decompose", "snr", "plot"])
def test_failing_figure_writer_leaves_previous_plot(tmp_path, monkeypatch, command):
    import matplotlib.figure

    run = write_h5(tmp_path / "ok.h5", valid_members())
    fig_dir = tmp_path / "figs"
    fig_dir.mkdir()
    target = fig_dir / "fig.png"
    target.write_bytes(b"previous figure")

    calls = []

    def half_then_fail(self, fname, *args, **kwargs):
        calls.append(fname)
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG half a figure")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_fail)
    args = ["plot", run, "-o", target] if command == "plot" else [command, run, "--plot", target]
    result = cli(*args)
    # The figure writer ran and failed: a missing command or option (exit 2) fails here.
    assert len(calls) == 1 and result.exit_code == 3, (result.exit_code, result.stderr)
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert str(target) in line and "No space left" in line and ".tmp" not in line, line
    assert target.read_bytes() == b"previous figure"
    assert _leftovers(fig_dir, {"fig.png"}) == []


def test_atomic_helpers_on_exceptions(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text(OLD)
    for exc in (ValueError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_text(target) as fh:
                fh.write("half")
                raise exc
        assert target.read_text() == OLD
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".txt")
            with open(tmp, "w") as fh:
                fh.write("half")
            raise RuntimeError
    assert target.read_text() == OLD
    assert _leftovers(tmp_path, {"t.txt"}) == []
    with atomic_text(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n"


def test_sigkill_mid_write_leaves_previous_file(tmp_path):
    target = tmp_path / "report.md"
    target.write_text(OLD)
    code = textwrap.dedent(f"""
        import sys, time
        from ncanalyze.atomic import atomic_text
        with atomic_text({str(target)!r}) as fh:
            fh.write("partial " * 1000)
            fh.flush()
            print("mid", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "mid"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    assert target.read_text() == OLD
    stray = _leftovers(tmp_path, {"report.md"})
    assert len(stray) == 1 and stray[0].startswith(".report.md.")  # hidden temp only
