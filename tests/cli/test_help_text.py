"""Help reads well in an 80-column terminal (issue 20 item 9): no ``<bool>``/``<list[str]>``
placeholders, command descriptions that end where their sentence does, ``report --help``
grouped and under 110 lines."""

from __future__ import annotations

import pytest

from ncanalyze.cli import COMMANDS
from tests.conftest import run_cli

NAMES = [m.__name__.rsplit(".", 1)[-1] for m in COMMANDS]


@pytest.mark.parametrize("args", [[]] + [[name] for name in NAMES])
def test_no_type_placeholders_in_help(args):
    text = run_cli(*args, "--help", env={"COLUMNS": "80"}).stdout
    for placeholder in ("<bool>", "<list[str]>", "<str>", "<int>", "<float>"):
        assert placeholder not in text, (args, placeholder)


@pytest.mark.parametrize("command,option,word", [
    ("simulate", "--classes", "N"), ("simulate", "--lr", "X"), ("convert", "--num-classes", "N"),
    ("metrics", "--output", "FILE"), ("plot", "--compare", "FILE"), ("simulate", "--model", "TEXT"),
])
def test_options_say_what_they_take(command, option, word):
    """Numbers are N (integers) or X (reals), paths FILE — on every typer the package allows
    (the strict number parsers made typer call them TEXT)."""
    text = run_cli(command, "--help", env={"COLUMNS": "100"}).stdout
    line = next(line for line in text.splitlines() if f"{option} " in line)
    words = [w for w in line.split(option, 1)[1].split() if not w.startswith("-")]
    assert words[0] == word, line


def test_command_list_has_one_sentence_per_command():
    text = run_cli("--help", env={"COLUMNS": "200"}).stdout
    rows = {line.split()[1]: line for line in text.splitlines()
            if line.startswith("│ ") and len(line.split()) > 2 and line.split()[1] in NAMES}
    assert set(rows) == set(NAMES)
    from ncanalyze.cli import _helps

    for module in COMMANDS:  # one line each at 200 columns: the whole first sentence
        name = module.__name__.rsplit(".", 1)[-1]
        first = _helps(getattr(module, name))[1]
        assert rows[name].split(None, 2)[2].rstrip(" │") == first, rows[name]
        assert not first.endswith((",", ";", "(")) and len(first.split()) > 3, first


def test_report_help_is_grouped_and_short():
    text = run_cli("report", "--help", env={"COLUMNS": "80"}).stdout
    assert len(text.splitlines()) < 110
    for panel in ("What to compute", "Computing", "Output", "Gates and live runs"):
        assert panel in text


def test_inspect_fits_80_columns_without_cutting_cells():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
    text = run_cli("inspect", example, env={"COLUMNS": "80"}).stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    table = [line for line in text.splitlines() if line.startswith(" /")]
    assert table and not any("…" in line for line in table)
    assert any("18×1347×32" in line and "float16" in line and "1.5 MiB" in line
               for line in table)
    wide = run_cli("inspect", example, env={"COLUMNS": "120"}).stdout
    assert "chunks" in wide and "1×1347×32" in wide


def test_the_cli_runs_without_click_where_typer_vendors_it():
    """typer ≥ 0.26 carries its own click and does not install it: a plain `pip install
    ncanalyze` then has no `click`, and `import click` in the CLI broke every command (the
    README's first command failed with ModuleNotFoundError in a fresh venv)."""
    import os
    import subprocess
    import sys
    from importlib.metadata import version
    from pathlib import Path

    if tuple(int(x) for x in version("typer").split(".")[:2]) < (0, 26):
        pytest.skip("typer < 0.26 is built on click")
    hide_click = ("import sys\n"
                  "class Hide:\n"
                  "    def find_spec(self, name, path=None, target=None):\n"
                  "        if name == 'click' or name.startswith('click.'):\n"
                  "            raise ModuleNotFoundError(name)\n"
                  "sys.meta_path.insert(0, Hide())\n"
                  "sys.argv = ['ncanalyze', 'simulate', '--help']\n"
                  "from ncanalyze.cli import main\n"
                  "main()\n")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, COLUMNS="100",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", hide_click], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--classes" in out.stdout and " N " in out.stdout
