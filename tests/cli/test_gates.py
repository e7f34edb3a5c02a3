"""--fail-if gates (docs/RELIABILITY.md §6): checked against the keys the command can produce
before any epoch is computed; list-valued keys are gated one element at a time (``key_j``)."""

from __future__ import annotations


import numpy as np
import pytest

from ncanalyze.analysis import Analysis

from ncanalyze.settings import Settings
from ncanalyze.errors import UsageError
from ncanalyze.gates import evaluate_gates, parse_gate, producible_keys, validate_gates
from ncanalyze.results import flatten

from tests.conftest import run_cli

from tests.factories import valid_members, write_h5


def cli(*args):
    return run_cli(*args)


@pytest.fixture
def run(tmp_path):
    return write_h5(tmp_path / "run.h5", valid_members())


def _count_epochs_computed(monkeypatch):
    calls = []
    original = Analysis.compute_epoch

    def counting(self, epoch):
        calls.append(epoch)
        return original(self, epoch)

    monkeypatch.setattr(Analysis, "compute_epoch", counting)
    return calls


@pytest.mark.parametrize("command,expr", [
    ("metrics", "no_such_key>1"),
    ("metrics", "snr_min>1"),            # an snr key: metrics cannot produce it
    ("snr", "nc1>0.05"),                 # and the other way round
    ("metrics", "scalars.nope<1"),
    ("metrics", "splits.test.accuracy<1"),
])
def test_unknown_key_exits_2_before_any_epoch_is_computed(run, monkeypatch, command, expr):
    calls = _count_epochs_computed(monkeypatch)
    result = cli(command, run, "--workers", "1", "--fail-if", expr, "-f", "json")
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert calls == []
    assert "unknown key" in result.stderr and result.stdout == ""


def test_prefix_key_is_an_error_naming_the_real_keys(run):
    result = cli("metrics", run, "--fail-if", "equinorm>1e300")
    assert result.exit_code == 2, result.stderr
    assert "equinorm_means" in result.stderr and "equinorm_weights" in result.stderr
    assert "FAILED" not in result.stderr


def test_list_key_without_index_is_a_clear_error(run):
    result = cli("snr", run, "--fail-if", "snr_singular_values>1e300")
    assert result.exit_code == 2, result.stderr
    assert "snr_singular_values_0" in result.stderr and "list" in result.stderr
    assert "FAILED" not in result.stderr


def test_list_key_with_index(run):
    ok = cli("snr", run, "--fail-if", "snr_singular_values_1>1e300", "-f", "json")
    assert ok.exit_code == 0, ok.stderr
    failed = cli("snr", run, "--fail-if", "snr_singular_values_0>0", "-f", "json")
    assert failed.exit_code == 1 and "FAILED" in failed.stderr, failed.stderr
    # C = 3: min(P, C − 1) = 2 values, 0..1 (ω_2 = 0 by construction is not reported)
    out_of_range = cli("snr", run, "--fail-if", "snr_singular_values_2>0")
    assert out_of_range.exit_code == 2 and "0..1" in out_of_range.stderr, out_of_range.stderr


@pytest.mark.parametrize("quantities,options,drop", [
    (("metrics",), {}, ()),
    (("metrics",), {}, ("weight", "bias")),
    (("metrics",), {}, ("bias",)),
    (("metrics", "decompose", "snr"), {}, ()),
    (("metrics", "decompose", "snr"), {}, ("weight", "bias")),
    (("decompose",), {}, ()),
    (("snr",), {}, ()),
    (("metrics",), {"layers": True, "splits": ("test",)}, ()),
])
def test_catalogue_is_exactly_what_the_analysis_produces(tmp_path, quantities, options, drop):
    members = valid_members()
    for key in drop:
        del members[key]
    rng = np.random.default_rng(3)
    y = np.arange(60) % 3
    members["layers/block1"] = rng.standard_normal((3, 60, 5)).astype(np.float32) + y[None, :, None]
    members["splits/test/labels"] = y[:30].astype(np.int64)
    members["splits/test/features"] = members["features"][:, :30, :]
    path = write_h5(tmp_path / "run.h5", members)
    settings = Settings(quantities, workers=1, **options)
    with Analysis(path, settings) as analysis:
        catalogue = producible_keys(settings, analysis.run.info)
        produced = flatten(analysis.compute_epoch(analysis.epochs[-1]).values)
    expected = set(catalogue.numbers)
    for key, length in catalogue.lists.items():
        expected.update(f"{key}_{j}" for j in range(length))
    assert set(produced) == expected


def test_validate_gates_api():
    from ncanalyze.gates import KeyCatalogue

    cat = KeyCatalogue(numbers=frozenset({"epoch", "nc1", "equinorm_means"}),
                       lists={"snr_singular_values": 4})
    validate_gates([parse_gate("nc1>1"), parse_gate("snr_singular_values_3<2")], cat)
    for expr, words in [("nc2>1", "unknown key 'nc2'"),
                        ("equinorm>1", "equinorm_means"),
                        ("snr_singular_values>1", "snr_singular_values_0"),
                        ("snr_singular_values_4>1", "0..3")]:
        with pytest.raises(UsageError, match=words):
            validate_gates([parse_gate(expr)], cat)


def test_evaluate_gates_list_element_and_null():
    epochs = [{"epoch": 1, "snr_singular_values": [3.0, 2.0, 0.0]},
              {"epoch": 2, "snr_singular_values": None}]
    (v,) = evaluate_gates([parse_gate("snr_singular_values_1<2.5")], epochs[:1], "last")
    assert v.holds and v.value == 2.0
    (v,) = evaluate_gates([parse_gate("snr_singular_values_1<2.5")], epochs, "last")
    assert v.holds and v.value is None and "missing" in v.describe()
