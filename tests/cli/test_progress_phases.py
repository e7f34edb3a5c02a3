"""The progress bar covers every phase of an epoch (issue 20 item 5): rows read, the decision
pass and the class-pair tiles all advance it, weighted by their arithmetic, so that with many
classes it does not reach 99% after the reading and freeze there."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from ncanalyze.io import RunWriter
from tests.conftest import run_cli


def test_every_phase_advances_the_bar(tmp_path, monkeypatch):
    from ncanalyze.cli import progress

    rng = np.random.default_rng(2)
    C, P = 400, 8  # many classes: the decisions and pairs are most of the work
    y = np.repeat(np.arange(C), 3)
    path = tmp_path / "many.h5"
    emb = rng.normal(size=(C, P))
    with RunWriter(path, y) as w:
        for e in (1, 2):
            w.add_epoch(e, (emb[y] + 0.1 * rng.normal(size=(y.size, P))).astype(np.float32),
                        emb, np.zeros(C))
    seen: list[tuple[str, float]] = []
    real = progress.EpochProgress.work

    def spy(self, phase, count, size):
        real(self, phase, count, size)
        seen.append((phase, self.bar.tasks[0].completed))

    monkeypatch.setattr(progress.EpochProgress, "work", spy)
    fake_tty = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr("ncanalyze.cli.runner.progress_console", lambda: fake_tty)
    r = run_cli("metrics", path, "--chunk-rows", "200", "-f", "json")
    assert r.exit_code == 0, r.stderr
    first = [(ph, c) for ph, c in seen if c < 1]  # the first epoch
    phases = [ph for ph, _ in first]
    assert {"rows", "decisions", "pairs"} <= set(phases)
    done_reading = max(c for ph, c in first if ph == "rows")
    assert done_reading < 0.5  # reading is a small part of this epoch's work
    assert max(c for ph, c in first if ph == "decisions") > done_reading
    assert max(c for ph, c in first if ph == "pairs") > 0.9
    assert all(b >= a for (_, a), (_, b) in zip(seen, seen[1:]))  # never goes back
    assert "class pairs" in fake_tty.file.getvalue() or "decisions" in fake_tty.file.getvalue()
