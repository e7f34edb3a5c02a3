"""Crash safety of RunWriter (docs/RELIABILITY.md): SIGKILL during add_epoch loses nothing that was done.

A child process writes epochs in a loop and prints ``done E`` (flushed) after each
``add_epoch`` returns; the parent SIGKILLs it after a random delay, then opens the file with
:func:`ncanalyze.open_run` and checks that

* every epoch the child reported done is listed and reads back bit-identical;
* nothing beyond the in-flight epoch (last done + 1) is listed, and whatever is listed is a
  prefix ``1..k`` whose data is bit-identical too;
* a file killed before its first epoch completes gives a clear ``InputError``.

The child program is ``tests/writer_child.py``, also used by ``test_live_reading.py``.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.writer_child import C, LineReader, check_epoch, labels, start_child


def kill_and_check(path, delay: float) -> tuple[int, int]:
    """One kill; returns (epochs done, epochs listed by the reader)."""
    from ncanalyze import InputError, open_run

    proc = start_child(path)
    reader = LineReader(proc.stdout)
    reader.start()
    assert reader.ready.wait(30), proc.stderr.read()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    reader.join(30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"child ended by itself: {reader.lines}"
    done = reader.done()
    assert done == list(range(1, len(done) + 1))
    try:
        run = open_run(path)
    except InputError as exc:
        # Killed before the first epoch was complete: no file yet, or one with labels and no
        # /epoch; a clear error, never a crash nor a file HDF5 refuses to open.
        assert not done, f"lost {done}: {exc}"
        assert "no complete epoch yet" in str(exc) or str(exc).endswith("no such file"), exc
        return 0, 0
    with run:
        listed = [int(e) for e in run.epochs]
        assert listed == list(range(1, len(listed) + 1))
        # Every epoch whose add_epoch returned is there; at most the in-flight one more.
        assert len(done) <= len(listed) <= len(done) + 1, (done, listed)
        for e in listed:
            check_epoch(run, e)
    return len(done), len(listed)


def crash_campaign(tmp_path, kills: int, seed: int, max_delay: float) -> list[tuple[int, int]]:
    rnd = random.Random(seed)
    outcomes = []
    for i in range(kills):
        path = tmp_path / f"crash{i}.h5"
        outcomes.append(kill_and_check(path, rnd.uniform(0.0, max_delay)))
        path.unlink(missing_ok=True)
    return outcomes


def test_sigkill_during_add_epoch_loses_nothing_done(tmp_path):
    outcomes = crash_campaign(tmp_path, kills=50, seed=20240601, max_delay=0.5)
    # The campaign is meaningful only if kills land before the first epoch and mid-run.
    assert any(d == 0 for d, _ in outcomes)
    assert any(d >= 3 for d, _ in outcomes)
    print(f"kills={len(outcomes)} done-epochs={sum(d for d, _ in outcomes)} "
          f"in-flight-epochs-also-complete={sum(l - d for d, l in outcomes)}")


@pytest.mark.slow
def test_sigkill_many(tmp_path):
    outcomes = crash_campaign(tmp_path, kills=300, seed=7, max_delay=1.5)
    assert any(d >= 10 for d, _ in outcomes)
    print(f"kills={len(outcomes)} done-epochs={sum(d for d, _ in outcomes)} "
          f"in-flight-epochs-also-complete={sum(l - d for d, l in outcomes)}")


def test_killed_before_first_epoch_is_a_clear_error(tmp_path):
    from ncanalyze import InputError, RunWriter, open_run

    path = tmp_path / "empty.h5"
    # Simulate the state a kill right after RunWriter() leaves: labels, no /epoch.
    RunWriter(path, labels(), num_classes=C).close()
    with pytest.raises(InputError, match="no complete epoch"):
        open_run(path)
