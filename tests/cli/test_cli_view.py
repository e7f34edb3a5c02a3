"""What a person sees: the table view fits 80 and 120 columns, help and behaviour agree, the
progress bar stays on stderr and disappears, and nothing the table cannot hold is dropped."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ncanalyze.io import RunWriter
from tests.conftest import run_cli

from tests.factories import collapsing_features, labels

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
COMMANDS = ("metrics", "decompose", "snr", "report")


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """C=10 with layers and a test split: many keys, 12 epochs."""
    rng = np.random.default_rng(7)
    C, P = 10, 12
    y = labels(C, 12, rng)
    yt = labels(C, 4, rng)
    means = rng.normal(size=(C, P)) * 3
    path = tmp_path_factory.mktemp("view") / "wide.h5"
    with RunWriter(path, y, loss="mse", weight_decay=1e-3, splits={"test": yt}) as w:
        for e in (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144):
            s = 1.0 / (1 + e)
            w.add_epoch(e, collapsing_features(y, means, s, rng), means + rng.normal(size=(C, P)) * s,
                        rng.normal(size=C) * s,
                        layers={"block": collapsing_features(y, means[:, :5], 1.0, rng)},
                        splits={"test": collapsing_features(yt, means, s, rng)},
                        train_loss=s, test_acc=1 - s)
    return path


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


CASES = [(c, extra) for c in COMMANDS for extra in ([], ["--all"])] + [
    (c, ["--layers", "--split", "test", "--all"]) for c in ("metrics", "report")]


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("command,extra", CASES)
def test_table_fits_the_width(wide_run, command, width, extra):
    r = run_cli(command, wide_run, *extra, env={"COLUMNS": str(width)})
    assert r.exit_code == 0, r.stderr
    widest = max(_lines(r.stdout), key=len)
    assert len(widest) <= width, widest


@pytest.mark.parametrize("width", [80, 120])
def test_bundled_run_first_screen(width):
    r = run_cli("report", EXAMPLE, env={"COLUMNS": str(width)})
    assert r.exit_code == 0, r.stderr
    lines = _lines(r.stdout)
    assert max(len(line) for line in lines) <= width
    assert len(lines) <= 40  # one screen
    # Epochs as columns: first and last always shown, numbers right-aligned in one block.
    head = next(line for line in lines if line.startswith("epoch"))
    assert head.split()[1] == "0" and head.split()[-1] == "600"
    block = lines[lines.index(head) + 1:]
    block = block[:block.index("")]
    rows = [line for line in block if line.startswith("  ")]
    assert len(rows) >= 10 and {len(line) for line in rows} == {len(head)}
    assert "shown:" in r.stdout and "--all" in r.stdout


def test_all_shows_every_key_and_epoch(wide_run):
    csv_keys = run_cli("report", wide_run, "-f", "csv").stdout.split("\n")[0].split(",")[1:]
    r = run_cli("report", wide_run, "--all", env={"COLUMNS": "80"})
    shown = {line.split()[0] for line in _lines(r.stdout) if line.startswith("  ")}
    assert set(csv_keys) <= shown
    epochs = {int(t) for line in _lines(r.stdout) if line.startswith("epoch")
              for t in line.split()[1:]}
    assert epochs == {0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144}


def test_keys_chooses_and_unknown_keys_are_usage_errors(wide_run):
    r = run_cli("report", wide_run, "--keys", "nc1,snr_*", "-k", "accuracy")
    keys = [line.split()[0] for line in _lines(r.stdout) if line.startswith("  ")]
    assert keys[0] == "nc1" and "accuracy" in keys and "snr_ratio" in keys
    assert "loss" not in keys and "cdnv" not in keys
    r = run_cli("report", wide_run, "--keys", "no_such_key")
    assert r.exit_code == 2 and "no_such_key" in r.stderr


def test_structural_zero_singular_value_is_not_reported():
    """ω_{C−1} = 0 by construction (M̄π = 0): the list holds min(P, C − 1) = 9 values."""
    r = run_cli("snr", EXAMPLE)
    assert "snr_singular_values_8" in r.stdout and "snr_singular_values_9" not in r.stdout
    md = run_cli("snr", EXAMPLE, "-f", "markdown").stdout
    assert "`snr_singular_values_8`" in md and "`snr_singular_values_9`" not in md


def test_bias_collapse_is_ranked_towards_one_over_sqrt_c_for_mse():
    md = run_cli("metrics", EXAMPLE, "-f", "markdown").stdout
    row = next(line for line in md.splitlines() if "`bias_collapse`" in line)
    best = row.split("|")[4]
    assert "1/√C = 0.3162" in best and best.strip().startswith("0.3162 (600")


def test_layers_missing_is_said_in_the_table(tmp_path):
    path = tmp_path / "plain.h5"
    rng = np.random.default_rng(0)
    y = labels(3, 5, rng)
    with RunWriter(path, y) as w:
        w.add_epoch(1, rng.normal(size=(15, 4)))
    r = run_cli("metrics", path, "--layers")
    assert r.exit_code == 0
    assert "no /layers group" in r.stdout  # in the table itself, not only on stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_dynamics_verdict_goes_to_stderr_for_line_formats(fmt):
    r = run_cli("snr", EXAMPLE, "-f", fmt)
    assert r.exit_code == 0
    assert "ncanalyze: dynamics:" in r.stderr
    assert "dynamics" not in r.stdout
    doc = json.loads(run_cli("snr", EXAMPLE, "-f", "json").stdout)
    assert doc["dynamics"]["verdict"].startswith("dynamics:")


def test_top_level_help_lists_every_exit_code():
    text = run_cli("--help", env={"COLUMNS": "200"}).stdout
    for code in ("0 ok", "1 a --fail-if", "2 usage", "3 input", "4 backend", "70 internal",
                 "130 interrupted"):
        assert code in text, code


def test_plot_output_errors_name_the_option(tmp_path):
    r = run_cli("plot", EXAMPLE, "-o", tmp_path / "x.h5")
    assert r.exit_code == 2 and "--output" in r.stderr and "--plot" not in r.stderr
    r = run_cli("snr", EXAMPLE, "--plot", tmp_path / "x.h5")
    assert r.exit_code == 2 and "--plot" in r.stderr


def _commands():
    from typer.main import get_command

    from ncanalyze import cli

    group = get_command(cli.app)
    modules = {m.__name__.rsplit(".", 1)[-1]: m for m in cli.COMMANDS}
    return group, modules


def _minimal_args(name: str, tmp_path: Path) -> list:
    if name in COMMANDS + ("inspect",):
        return [EXAMPLE, "--epochs", "0,600"] if name != "inspect" else [EXAMPLE]
    if name == "plot":
        return [EXAMPLE, "--epochs", "0,600", "-o", tmp_path / "p.png"]
    if name == "simulate":
        return [tmp_path / "s.h5", "--epochs", "20", "--saves", "3", "--overwrite"]
    return None


def test_every_documented_choice_of_every_command_is_accepted(tmp_path):
    """Each option that takes one of several values lists them all in its help, and each
    command accepts each of them (exit code neither 2 nor an internal error)."""
    from ncanalyze.cli.options import CHOICES

    group, modules = _commands()
    checked = 0
    for name, command in group.commands.items():
        choices = {**CHOICES, **getattr(modules[name], "CHOICES", {})}
        args = _minimal_args(name, tmp_path)
        for param in command.params:
            if param.name not in choices:
                continue
            help_text = " ".join((param.help or "").split())
            for value in choices[param.name]:
                assert value in help_text, (name, param.opts, value)
                if args is None:
                    continue
                extra = ["--plot", tmp_path / "f.png"] if (
                    param.name == "xscale" and name in ("decompose", "snr")) else []
                r = run_cli(name, *args, param.opts[0], value, *extra)
                assert r.exit_code in (0, 1, 3), (name, param.opts[0], value, r.stderr)
                assert "internal error" not in r.stderr
                checked += 1
            r = run_cli(name, *(args or []), param.opts[0], "no-such-value")
            assert r.exit_code == 2, (name, param.opts[0], r.stderr)
    assert checked >= 25


def test_readme_common_options_are_options_of_every_analysis_command():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("Common options:", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)", block))
    assert {"--epochs", "--format", "--fail-if", "--quiet", "--debug"} <= documented
    group, _ = _commands()
    for name in COMMANDS:
        opts = {o for p in group.commands[name].params for o in p.opts} | {"--help", "-h"}
        assert documented <= opts, (name, documented - opts)


def test_inspect_help_lists_only_what_it_accepts():
    text = " ".join(run_cli("inspect", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "table, json" in text and "jsonl" not in text and "markdown" not in text
    r = run_cli("inspect", EXAMPLE, "-f", "csv")
    assert r.exit_code == 2 and "table or json" in r.stderr


def test_progress_bar_is_transient_on_stderr_with_rows_per_second(monkeypatch):
    from rich.console import Console

    from ncanalyze.cli import progress

    stream = io.StringIO()
    fake_tty = Console(file=stream, force_terminal=True, width=100)
    monkeypatch.setattr(progress, "progress_console", lambda: fake_tty)
    monkeypatch.setattr("ncanalyze.cli.runner.progress_console", lambda: fake_tty)
    r = run_cli("metrics", EXAMPLE, "--epochs", "0:5", "--chunk-rows", "64", "-f", "json")
    assert r.exit_code == 0, r.stderr
    json.loads(r.stdout)  # stdout holds the document only
    drawn = stream.getvalue()
    assert "rows/s" in drawn and "epochs" in drawn
    # Transient: after the last frame the bar's line is erased (cursor up + erase line).
    tail = drawn[drawn.rindex("epochs"):]
    assert "\x1b[2K" in tail


def test_readme_first_screen_is_the_real_80_column_output():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    pasted = readme.split("$ ncanalyze report examples/digits_mlp.h5\n", 1)[1].split("```")[0]
    assert max(len(line) for line in pasted.splitlines()) <= 80
    real = run_cli("report", EXAMPLE, env={"COLUMNS": "80"}).stdout
    real = real.replace(f"file: {EXAMPLE}", "file: examples/digits_mlp.h5")
    # The table itself, verbatim (the verdict below it belongs to the dynamics fit's wording).
    assert pasted.split("\n\nshown:")[0] == real.split("\n\nshown:")[0]


def test_decompose_on_a_cross_entropy_run_says_once_what_the_numbers_mean(tmp_path):
    from ncanalyze.simulate import UFMConfig, simulate

    path = tmp_path / "ce.h5"
    simulate(path, UFMConfig(model="ce", epochs=60, saves=5))
    for command in ("decompose", "report"):
        r = run_cli(command, path, "-f", "json")
        assert r.exit_code == 0, r.stderr
        notes = [w for w in json.loads(r.stdout)["warnings"] if "cross-entropy" in w]
        assert len(notes) == 1 and "MSE loss" in notes[0]
        assert r.stderr.count("cross-entropy") == 1
    r = run_cli("metrics", path, "-f", "json")
    assert "cross-entropy" not in r.stderr  # only where the decomposition is computed
    mse = tmp_path / "mse.h5"
    simulate(mse, UFMConfig(model="mse", epochs=60, saves=5))
    assert "cross-entropy" not in run_cli("decompose", mse, "-f", "json").stderr
