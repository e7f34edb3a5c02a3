"""One writer at a time (docs/RELIABILITY.md §2): RunWriter holds an exclusive lock for its
lifetime, a second writer fails at construction, a writer whose file was replaced notices it,
and a SIGKILLed writer leaves no lock that blocks the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ncanalyze import open_run
from ncanalyze.errors import OutputError
from ncanalyze.io.writer import RunWriter

N, P, C = 40, 4, 2

CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from ncanalyze.io.writer import RunWriter
    path, go, tag, overwrite = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    while not os.path.exists(go):
        time.sleep(0.001)
    y = np.arange(40) % 2
    try:
        with RunWriter(path, y, overwrite=overwrite) as w:
            for e in range(1, 6):
                w.add_epoch(e, np.full((40, 4), tag * 100 + e, np.float32))
                time.sleep(0.05)
    except Exception as exc:
        print(f"error {type(exc).__name__}: {exc}", flush=True)
        sys.exit(3)
    print("ok", flush=True)
""")


def _race(tmp_path, trial: int, overwrite: bool):
    path = tmp_path / f"race{trial}.h5"
    go = tmp_path / f"go{trial}"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(go), str(tag),
                               "1" if overwrite else "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in (1, 2)]
    time.sleep(0.5)  # both children imported and waiting
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    return path, [(p.returncode, o[0].strip(), o[1]) for p, o in zip(procs, outs)]


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_concurrent_writers_one_wins_and_loses_nothing(tmp_path, overwrite):
    for trial in range(5):
        path, results = _race(tmp_path, trial, overwrite)
        winners = [tag for tag, (rc, out, _) in zip((1, 2), results) if out == "ok"]
        losers = [out for rc, out, _ in results if out != "ok"]
        assert len(winners) == 1, results  # today both "succeed" and one loses every epoch
        assert len(losers) == 1 and "OutputError" in losers[0] and str(path) in losers[0]
        assert "another RunWriter" in losers[0], losers
        with open_run(path) as run:  # the winner's epochs, all of them
            assert run.info.epochs.tolist() == [1, 2, 3, 4, 5]
            first = next(run.iter_chunks(1))[0]
            assert float(first[0, 0]) == winners[0] * 100 + 1
        assert not os.path.exists(tmp_path / f".race{trial}.h5.lock")


def test_second_writer_in_the_same_process_fails_at_construction(tmp_path):
    path = tmp_path / "r.h5"
    y = np.arange(N) % C
    with RunWriter(path, y) as w:
        w.add_epoch(1, np.ones((N, P)))
        with pytest.raises(OutputError, match=r"another RunWriter in this process \(close"):
            RunWriter(path, y, overwrite=True)
        link = tmp_path / "link.h5"
        os.symlink(path, link)
        with pytest.raises(OutputError, match="another RunWriter"):
            RunWriter(link, y, overwrite=True)  # the same file under another name
        w.add_epoch(2, np.ones((N, P)))
    with RunWriter(path, y, overwrite=True) as w2:  # free again after close
        w2.add_epoch(1, np.zeros((N, P)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.h5", "r.h5"]


@pytest.mark.parametrize("when", ["before the first epoch", "after the first epoch"])
def test_writer_notices_its_file_was_replaced(tmp_path, when):
    path = tmp_path / "r.h5"
    y = np.arange(N) % C
    w = RunWriter(path, y)
    if when == "after the first epoch":
        w.add_epoch(1, np.ones((N, P)))
    other = tmp_path / "other.h5"
    other.write_bytes(b"someone else's file")
    os.replace(other, path)
    with pytest.raises(OutputError, match="replaced"):
        w.add_epoch(2, np.ones((N, P)))
    assert path.read_bytes() == b"someone else's file"  # not clobbered by the old writer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]  # lock released, no temp


def test_writer_notices_its_file_was_removed(tmp_path):
    path = tmp_path / "r.h5"
    w = RunWriter(path, np.arange(N) % C)
    w.add_epoch(1, np.ones((N, P)))
    os.unlink(path)
    with pytest.raises(OutputError, match="removed"):
        w.add_epoch(2, np.ones((N, P)))


def test_sigkilled_writer_leaves_no_blocking_lock(tmp_path):
    path = tmp_path / "k.h5"
    code = textwrap.dedent(f"""
        import time
        import numpy as np
        from ncanalyze.io.writer import RunWriter
        w = RunWriter({str(path)!r}, np.arange(40) % 2)
        w.add_epoch(1, np.ones((40, 4)))
        print("holding", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        assert os.path.exists(tmp_path / ".k.h5.lock")
        with pytest.raises(OutputError, match=f"another RunWriter \\(process {proc.pid}\\)"):
            RunWriter(path, np.arange(N) % C, overwrite=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
    assert os.path.exists(tmp_path / ".k.h5.lock")  # stale file, but not locked
    with RunWriter(path, np.arange(N) % C, overwrite=True) as w:
        w.add_epoch(1, np.zeros((N, P)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.h5"]


@pytest.mark.parametrize("command", ["convert", "simulate"])
def test_convert_and_simulate_take_the_lock(tmp_path, command):
    from ncanalyze.convert import convert
    from ncanalyze.simulate import UFMConfig, simulate

    out = tmp_path / "o.h5"
    folder = tmp_path / "d"
    folder.mkdir()
    np.savez(folder / "e1.npz", features=np.ones((N, P), np.float32), labels=np.arange(N) % C)
    with RunWriter(out, np.arange(N) % C):
        with pytest.raises(OutputError, match="another RunWriter"):
            if command == "convert":
                convert(folder, out, overwrite=True)
            else:
                simulate(out, UFMConfig(epochs=5), overwrite=True)


# ---------------------------------------------------------------- planted lock files (issue 16 item 2)

def _plant(tmp_path, kind):
    """Put ``kind`` at the lock path of ``r.h5``; returns the victim file (or None)."""
    lock = tmp_path / ".r.h5.lock"
    victim = tmp_path / "victim.txt"
    if kind == "symlink":
        victim.write_text("precious\n")
        lock.symlink_to(victim)
    elif kind == "dangling":
        lock.symlink_to(victim)
    elif kind == "hardlink":
        victim.write_text("precious\n")
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock)
        return None
    elif kind == "directory":
        lock.mkdir()
        return None
    return victim


def _writer_in_child(path, timeout=60):
    """RunWriter(path) in a child (a FIFO at the lock path must not hang this process)."""
    code = textwrap.dedent(f"""
        import numpy as np
        from ncanalyze.errors import OutputError
        from ncanalyze.io.writer import RunWriter
        try:
            with RunWriter({str(path)!r}, np.arange(40) % 2) as w:
                w.add_epoch(1, np.ones((40, 4)))
        except OutputError as exc:
            print(exc.one_line())
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("kind", ["symlink", "dangling", "hardlink", "fifo", "directory"])
def test_a_planted_lock_file_is_refused_and_its_target_untouched(tmp_path, kind):
    victim = _plant(tmp_path, kind)
    before = victim.read_bytes() if victim is not None and victim.exists() else None
    line = _writer_in_child(tmp_path / "r.h5")
    assert ".r.h5.lock" in line and "not a lock file" in line, line
    assert "\n" not in line
    if kind == "dangling":
        assert not victim.exists() and os.path.islink(tmp_path / ".r.h5.lock")
    elif victim is not None:
        assert victim.read_bytes() == before
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("command", ["convert", "simulate"])
def test_cli_writers_refuse_a_planted_lock_symlink(tmp_path, command):
    from tests.conftest import run_cli

    victim = _plant(tmp_path, "symlink")
    folder = tmp_path / "d"
    folder.mkdir()
    np.savez(folder / "e1.npz", features=np.ones((N, P), np.float32), labels=np.arange(N) % C)
    args = ["convert", folder, tmp_path / "r.h5"] if command == "convert" else \
        ["simulate", tmp_path / "r.h5"]
    result = run_cli(*args)
    assert result.exit_code == 3 and "not a lock file" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert victim.read_text() == "precious\n"
    assert os.path.islink(tmp_path / ".r.h5.lock")
