"""Command-line numbers are parsed strictly and every parse error is one line (issue 16
item 17): ``1_0``, ``12.0``, non-ASCII digits and non-finite floats are refused with exit 2,
as are class counts written that way in a file's attributes."""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.io import RunWriter
from tests.conftest import run_cli
from tests.factories import valid_members, write_h5


def _one_line(result, code):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ncanalyze: error: "), lines[0]
    assert "╭" not in result.stderr and "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def run(tmp_path):
    return write_h5(tmp_path / "run.h5", valid_members())


@pytest.mark.parametrize("value", ["1_0", "12.0", "\u0661\u0662", " 12", "1e3", "0x10", "abc"])
def test_integer_options_take_ascii_decimal_integers_only(tmp_path, value):
    line = _one_line(run_cli("simulate", tmp_path / "s.h5", "--classes", value), 2)
    assert "--classes" in line
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize("value", ["1_0", "\u0661", "nan", "inf", "-inf", "1.5.2"])
def test_float_options_take_finite_ascii_numbers_only(run, value):
    line = _one_line(run_cli("snr", run, "--ridge", value, "-f", "json"), 2)
    assert "--ridge" in line


def test_strict_numbers_still_accept_ordinary_spellings(run):
    for ridge in ("1e-3", "0.5", ".5", "5.", "+1E-2"):
        assert run_cli("snr", run, "--ridge", ridge, "-f", "json").exit_code == 0, ridge
    assert run_cli("metrics", run, "--chunk-rows", "-7", "-f", "json").exit_code == 2
    assert run_cli("metrics", run, "--chunk-rows", "16", "-f", "json").exit_code == 0


@pytest.mark.parametrize("args", [["metrics"], ["metrics", "a", "b", "c"],
                                  ["nosuchcommand"], ["metrics", "x.h5", "--nosuch"],
                                  ["metrics", "x.h5", "--format"]])
def test_click_parse_errors_are_one_line(args):
    _one_line(run_cli(*args), 2)


@pytest.mark.parametrize("spec", ["\u0661", "1:\u0663", "\uff11", "1_0", "1:1_0"])
def test_epochs_take_ascii_digits_only(run, spec):
    line = _one_line(run_cli("metrics", run, "--epochs", spec, "-f", "json"), 2)
    assert "--epochs" in line


@pytest.mark.parametrize("value", ["1e3", "1_0", "\u0663", " 3", "3.0"])
def test_a_class_count_attribute_must_be_a_plain_integer(tmp_path, value):
    path = write_h5(tmp_path / "run.h5", valid_members(),
                    {"ncanalyze_format": 1, "num_classes": value})
    line = _one_line(run_cli("metrics", path, "-f", "json"), 3)
    assert "num_classes" in line


def test_a_numeric_class_count_attribute_still_reads(tmp_path):
    for value in (3, np.int32(3), "3"):
        path = write_h5(tmp_path / "run.h5", valid_members(),
                        {"ncanalyze_format": 1, "num_classes": value})
        assert run_cli("metrics", path, "-f", "json").exit_code == 0, value


def test_python_warnings_are_one_warning_line_and_silent_under_quiet():
    """Issue 16 item 15: a RuntimeWarning raised inside a command is one ``ncanalyze:
    warning:`` line, and nothing under --quiet."""
    import warnings

    import typer
    from typer.testing import CliRunner

    from ncanalyze.cli.boundary import command

    def noisy() -> int:
        warnings.warn("overflow encountered in multiply\nsecond line", RuntimeWarning)
        return 0

    app = typer.Typer()
    app.command("noisy")(command(noisy))
    app.command("other")(command(lambda: 0))
    loud = CliRunner().invoke(app, ["noisy"])
    assert loud.exit_code == 0
    assert loud.stderr.splitlines() == [
        "ncanalyze: warning: RuntimeWarning: overflow encountered in multiply\\nsecond line"]
    quiet = CliRunner().invoke(app, ["noisy", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_runtime_warnings_of_a_real_run_are_silent_under_quiet(tmp_path, monkeypatch):
    """A NumPy RuntimeWarning raised inside the metrics (an overflow here, provoked in the
    formula: values within the magnitude limit no longer make NumPy warn, see
    tests/robustness/test_magnitude.py): nothing on stderr under -q, and only
    ``ncanalyze: warning:`` lines without."""
    from ncanalyze import epoch as epoch_module

    formula = epoch_module.nc_metrics_from_stats

    def overflowing(*args, **kwargs):
        np.float64(1e308) * np.float64(10.0)  # NumPy: "overflow encountered in scalar multiply"
        return formula(*args, **kwargs)

    monkeypatch.setattr(epoch_module, "nc_metrics_from_stats", overflowing)
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    with RunWriter(tmp_path / "run.h5", y) as w:
        for e in (1, 2):
            w.add_epoch(e, rng.normal(size=(60, 5)), rng.normal(size=(3, 5)), np.zeros(3))
    quiet = run_cli("metrics", tmp_path / "run.h5", "-f", "json", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr
    loud = run_cli("metrics", tmp_path / "run.h5", "-f", "json")
    assert loud.exit_code == 0
    assert "overflow" in loud.stderr, loud.stderr  # the warning happened
    assert all(line.startswith("ncanalyze: warning: ") for line in loud.stderr.splitlines())