"""The library does what the CLI does: ``ncanalyze.report(path, **options)`` returns the
document ``ncanalyze report PATH -f json`` prints, dynamics fit and verdict included, and
``ncanalyze.api`` does the same for the other commands (docs/TUTORIAL.md, "From Python")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ncanalyze
from ncanalyze.errors import UsageError
from tests.conftest import run_cli

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5")
EPOCHS = "0,10,43,133,283,600"


def _cli(*args) -> dict:
    res = run_cli(*args, "-f", "json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_report_is_the_cli_json_document():
    doc = ncanalyze.report(EXAMPLE, epochs=EPOCHS, layers=True, time="epoch")
    assert doc == _cli("report", EXAMPLE, "--epochs", EPOCHS, "--layers", "--time", "epoch")
    assert doc["dynamics"]["verdict"] and doc["command"] == "report"
    json.dumps(doc, allow_nan=False)  # plain data, finite or None


@pytest.mark.parametrize("command", ["metrics", "decompose", "snr"])
def test_every_command_is_reachable_and_equal_to_the_cli(command):
    doc = getattr(ncanalyze.api, command)(EXAMPLE, epochs="0,600")
    assert doc == _cli(command, EXAMPLE, "--epochs", "0,600")
    assert ("dynamics" in doc) == (command == "snr")


def test_in_memory_functions_keep_their_names(rng):
    y = np.repeat(np.arange(3), 10)
    h = rng.normal(size=(30, 4)) + 3 * np.eye(3, 4)[y]
    assert "snr_singular_values" in ncanalyze.snr(h, y)  # arrays, not a run
    assert "loss" in ncanalyze.decompose(h, y, np.eye(3, 4), None)


def test_a_misnamed_option_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown option.*epoch\\b"):
        ncanalyze.report(EXAMPLE, epoch="last")


def test_follow_of_a_closed_run_is_the_cli_document():
    doc = ncanalyze.report(EXAMPLE, epochs="last", follow=True, timeout=30)
    assert doc == _cli("report", EXAMPLE, "--epochs", "last", "--follow", "--timeout", "30")
    assert [e["epoch"] for e in doc["epochs"]] == [600]
