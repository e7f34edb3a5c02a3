"""Crash safety of a statistics run (docs/RELIABILITY.md): SIGKILL during add_statistics
loses nothing whose call had returned — the writer's one append protocol (``_commit``)
serves both kinds of run. The child prints ``done E`` after each call; the parent kills it
at a random moment and reads every reported epoch back, checked by the reader's rules."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
C, P = 6, 96

CHILD = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
from ncanalyze.io import RunWriter
from tests.robustness.test_statistics_crash import epoch_stats
with RunWriter(sys.argv[1], None, num_classes={c}, statistics=True) as w:
    print("ready", flush=True)
    for e in range(1, 100000):
        s, d = epoch_stats(e)
        w.add_statistics(e, s, d, feature_dtype="float16", loss=1.0 / e)
        print("done", e, flush=True)
"""


def epoch_stats(epoch: int) -> tuple[dict, dict]:
    """Distinct, consistent statistics of epoch ``epoch`` (features scaled by ``epoch``)."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=(600, P))
    y = np.arange(600) % C
    means = np.stack([h[y == c].mean(0) for c in range(C)])
    z = h - means[y]
    stats = {"counts": np.bincount(y, minlength=C), "means": means * epoch,
             "within_scatter": z.T @ z * epoch**2,
             "class_scatter": np.bincount(y, weights=(z * z).sum(1), minlength=C) * epoch**2}
    return stats, {"ncc_correct": 500}


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_during_add_statistics(tmp_path, seed):
    from ncanalyze.errors import InputError
    from ncanalyze.io import open_run

    path = tmp_path / "run.h5"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=ROOT, c=C), str(path)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(random.Random(seed).uniform(0.05, 0.6))
    os.kill(child.pid, signal.SIGKILL)
    out, _ = child.communicate(timeout=60)
    done = [int(line.split()[1]) for line in out.splitlines() if line.startswith("done")]
    try:
        run = open_run(path)
    except InputError as exc:  # killed before the first epoch completed
        assert not done and "no complete epoch" in str(exc)
        return
    with run:
        listed = run.info.epochs.tolist()
        assert listed[:len(done)] == done and len(listed) <= len(done) + 1
        for e in listed:
            stored = run.statistics(e)  # every rule of the reader holds
            want, _ = epoch_stats(e)
            np.testing.assert_array_equal(stored.means, want["means"])
            assert stored.decisions["ncc_correct"] == 500
