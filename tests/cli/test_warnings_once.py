"""Warnings once: identical per-epoch warnings are one line naming the epochs, and a terminal
shows each warning once, in one place (under the table; stderr for the file formats)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncanalyze.io.writer import RunWriter
from ncanalyze.results import merge_warnings
from tests.conftest import run_cli

EPOCHS = 30


@pytest.fixture(scope="module")
def absent_class_run(tmp_path_factory):
    """C = 3 with class 2 absent: equiangle_* and friends are undefined at every epoch."""
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 20)
    path = tmp_path_factory.mktemp("warn") / "absent.h5"
    with RunWriter(path, y, num_classes=3) as w:
        for e in range(1, EPOCHS + 1):
            w.add_epoch(e, rng.normal(size=(40, 4)) + 3 * np.eye(2, 4)[y],
                        rng.normal(size=(3, 4)), rng.normal(size=3))
    return path


def test_identical_epoch_warnings_are_one_line_naming_the_epochs(absent_class_run):
    res = run_cli("metrics", absent_class_run, "-f", "json")
    assert res.exit_code == 0, res.stderr
    warnings = json.loads(res.stdout)["warnings"]
    per_epoch = [w for w in warnings if w.startswith("epoch")]
    assert per_epoch and all(w.startswith(f"epochs 1–{EPOCHS}: ") for w in per_epoch)
    assert len(per_epoch) == len(set(per_epoch)) < 10
    stderr = [line for line in res.stderr.splitlines() if "warning" in line]
    assert len(stderr) == len(warnings)  # each once on stderr, none per epoch


def test_a_table_says_each_warning_once_under_the_table(absent_class_run):
    """Under the table: the run warning once, and each shown undefined key once with its
    reason (not once per epoch); nothing on stderr."""
    res = run_cli("metrics", absent_class_run)
    assert res.exit_code == 0
    assert res.stderr == ""
    out = res.stdout
    assert out.count("no samples") == 1
    assert out.count("equiangle_means: undefined: needs at least 3 classes") == 1
    assert "is undefined" not in out  # no per-epoch lines
    res = run_cli("metrics", absent_class_run, "--all")  # hidden keys said too, once each
    assert res.stdout.count("equiangle_weights: undefined") == 1


def test_merge_names_runs_of_computed_epochs():
    lines = ["run-level", "epoch 0: a", "epoch 0: b", "epoch 10: a", "epoch 20: a", "epoch 40: a"]
    assert merge_warnings(lines, [0, 10, 20, 30, 40]) == [
        "run-level", "epochs 0–20, 40: a", "epoch 0: b"]
