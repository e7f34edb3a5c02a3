"""Crash safety of RunWriter (docs/RELIABILITY.md): SIGKILL during add_epoch loses nothing that was done.

A child process writes epochs in a loop and prints ``done E`` (flushed) after each
``add_epoch`` returns; the parent SIGKILLs it after a random delay, then opens the file with
:func:`ncanalyze.open_run` and checks that

* every epoch the child reported done is listed and reads back bit-identical;
* nothing beyond the in-flight epoch (last done + 1) is listed, and whatever is listed is a
  prefix ``1..k`` whose data is bit-identical too;
* a file killed before its first epoch completes gives a clear ``InputError``.

This file doubles as the child program (``python test_writer_crash.py child PATH ...``), also
used by ``test_live_reading.py``.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

N, P, C, P_LAYER = 3000, 48, 6, 16
HERE = os.path.abspath(__file__)


@functools.lru_cache(maxsize=1)
def _base() -> tuple:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((N, P)).astype(np.float32), rng.standard_normal((C, P)),
            rng.standard_normal(C).astype(np.float32),
            rng.standard_normal((N, P_LAYER)).astype(np.float16))


def epoch_data(epoch: int) -> dict:
    """Deterministic, distinct content of one epoch (features, weight, bias, layer, scalar).

    Cheap to make (an offset of fixed random arrays), so that the writer spends its time in
    ``add_epoch`` and the random kills land there.
    """
    feats, weight, bias, layer = _base()
    return {
        "features": feats + np.float32(epoch),
        "weight": weight * epoch,
        "bias": bias - np.float32(epoch),
        "layer": layer + np.float16(epoch % 512),
        "train_loss": float(epoch) / 7.0,
    }


def labels() -> np.ndarray:
    return np.arange(N) % C


def child(path: str, epochs: int, pause: float) -> None:
    from ncanalyze import RunWriter

    print("ready", flush=True)
    with RunWriter(path, labels(), num_classes=C, loss="mse", weight_decay=5e-4) as w:
        for e in range(1, epochs + 1):
            d = epoch_data(e)
            w.add_epoch(e, d["features"], d["weight"], d["bias"],
                        layers={"block3": d["layer"]}, train_loss=d["train_loss"])
            print(f"done {e}", flush=True)
            if pause:
                time.sleep(pause)


def start_child(path, epochs=1000, pause=0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, HERE, "child", str(path), str(epochs), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class LineReader(threading.Thread):
    """Collect a child's stdout lines as they arrive."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines, self.ready = stream, [], threading.Event()

    def run(self):
        for line in self.stream:
            line = line.strip()
            if line == "ready":
                self.ready.set()
            self.lines.append(line)
        self.ready.set()

    def done(self) -> list[int]:
        return [int(x.split()[1]) for x in list(self.lines) if x.startswith("done ")]


def check_epoch(run, epoch: int) -> None:
    d = epoch_data(epoch)
    got = np.concatenate([c for c, _ in run.iter_chunks(epoch)])
    assert got.dtype == d["features"].dtype and np.array_equal(got, d["features"])
    w, b = run.weight(epoch), run.bias(epoch)
    assert w.dtype == d["weight"].dtype and np.array_equal(w, d["weight"])
    assert b.dtype == d["bias"].dtype and np.array_equal(b, d["bias"])
    layer = np.concatenate([c for c, _ in run.iter_chunks(epoch, run.info.layers["block3"])])
    assert layer.dtype == np.float16 and np.array_equal(layer, d["layer"])
    assert run.scalars(epoch) == {"train_loss": d["train_loss"]}


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


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
