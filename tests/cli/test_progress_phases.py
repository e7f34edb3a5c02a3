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


def test_the_first_epoch_is_sized_by_the_classes_present(tmp_path, monkeypatch):
    """A vocabulary run has many classes without samples: the means, their pairs and the
    nearest-centre scores cover the K present only. Sized with C, the first epoch's estimate
    was 42% too large on a Zipf run of C = 20,000 (K = 14,180) and the bar jumped at its end;
    here the reported work of the epoch is the estimate to within 15% (9% measured)."""
    from ncanalyze.analysis import Analysis
    from ncanalyze.cli import progress
    from ncanalyze.settings import Settings

    rng = np.random.default_rng(3)
    C, K, P = 600, 60, 8  # one class in ten present
    y = np.repeat(np.arange(0, C, C // K), 4)
    emb = rng.normal(size=(C, P))
    path = tmp_path / "vocab.h5"
    with RunWriter(path, y, num_classes=C) as w:
        w.add_epoch(1, (emb[y] + 0.1 * rng.normal(size=(y.size, P))).astype(np.float32),
                    emb, np.zeros(C))
    reported = []
    with Analysis(path, Settings(quantities=("metrics",), workers=1),
                  progress=lambda phase, count, size: reported.append(
                      progress.work_cost(phase, count, size, P))) as analysis:
        expected = progress.epoch_cost(analysis)
        analysis.compute_epoch(1)
    assert abs(expected / sum(reported) - 1) < 0.15, (expected, sum(reported))
