"""Splits held in the file are computed by default; `--split` chooses; a key of a split that is
not computed is refused with a message naming the option (issue 20 item 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncanalyze.io import RunWriter
from tests.conftest import run_cli
from tests.factories import collapsing_features, labels


@pytest.fixture(scope="module")
def two_splits(tmp_path_factory):
    rng = np.random.default_rng(5)
    C, P = 3, 5
    y, yt, yv = labels(C, 12, rng), labels(C, 6, rng), labels(C, 5, rng)
    means = rng.normal(size=(C, P)) * 3
    path = tmp_path_factory.mktemp("splits") / "run.h5"
    with RunWriter(path, y, loss="mse", splits={"test": yt, "val": yv}) as w:
        for e in (1, 2):
            w.add_epoch(e, collapsing_features(y, means, 1.0, rng), means, np.zeros(C),
                        splits={"test": collapsing_features(yt, means, 1.0, rng),
                                "val": collapsing_features(yv, means, 1.0, rng)})
    return path


@pytest.mark.parametrize("command", ["metrics", "report"])
def test_every_split_is_computed_by_default(two_splits, command):
    r = run_cli(command, two_splits, "-f", "json")
    assert r.exit_code == 0, r.stderr
    epochs = json.loads(r.stdout)["epochs"]
    assert set(epochs[-1]["splits"]) == {"test", "val"}
    assert 0 <= epochs[-1]["splits"]["test"]["accuracy"] <= 1


def test_split_option_chooses_and_none_computes_none(two_splits):
    doc = json.loads(run_cli("metrics", two_splits, "-f", "json", "--split", "val").stdout)
    assert set(doc["epochs"][0]["splits"]) == {"val"}
    doc = json.loads(run_cli("metrics", two_splits, "-f", "json", "--split", "none").stdout)
    assert "splits" not in doc["epochs"][0]


def test_tutorial_keys_and_gate_work_without_split_option(two_splits):
    r = run_cli("metrics", two_splits, "--keys", "nc1,splits.*.accuracy")
    assert r.exit_code == 0, r.stderr
    assert "splits.test.accuracy" in r.stdout and "splits.val.accuracy" in r.stdout
    r = run_cli("metrics", two_splits, "--fail-if", "splits.test.accuracy>2")
    assert r.exit_code == 0, r.stderr


def test_key_of_a_split_not_computed_names_the_option(two_splits):
    r = run_cli("metrics", two_splits, "--split", "val", "--fail-if", "splits.test.accuracy<1")
    assert r.exit_code == 2
    assert "split 'test' is not computed" in r.stderr and "--split test" in r.stderr
    r = run_cli("metrics", two_splits, "--split", "val", "--keys", "splits.test.*")
    assert r.exit_code == 2 and "--split test" in r.stderr
    r = run_cli("metrics", two_splits, "--keys", "splits.holdout.nc1")
    assert r.exit_code == 2 and "no such split" in r.stderr and "test, val" in r.stderr


def test_keys_usage_error_prints_nothing_on_stdout(two_splits):
    r = run_cli("metrics", two_splits, "--keys", "nc1,no_such_key")
    assert r.exit_code == 2 and "no_such_key" in r.stderr
    assert r.stdout == ""
