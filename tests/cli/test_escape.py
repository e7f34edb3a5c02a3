"""One line means one line (docs/RELIABILITY.md §1): names from a file or the command line
are shown escaped in every message and table: no forged second line, no raw terminal escape
sequence, no rich markup interpreted."""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.errors import InputError, escape

from tests.conftest import run_cli

from tests.factories import valid_members, write_h5

FORGED = "ncanalyze: error: forged"
EVIL = f"evil\n{FORGED} \x1b]8;;http:x\x1b\\link\x1b]8;;\x1b\\ \x1b[31mred\u202eesrever\r"
MARKUP = ("[link=http:x]loss", "[bold red]acc")


def cli(*args):
    return run_cli(*args)


def _clean(text: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert FORGED not in text.replace(f"\\n{FORGED}", ""), text  # only inside an escaped name


def test_escape_helper():
    assert escape("a\nb\x1b[31m\tc\u202e\x85\x00") == "a\\nb\\x1b[31m\\tc\\u202e\\x85\\x00"
    assert escape("plain [bold]é ∑ 😀") == "plain [bold]é ∑ 😀"
    assert escape(escape(EVIL)) == escape(EVIL)
    assert "\n" not in escape(EVIL) and "\x1b" not in escape(EVIL)
    err = InputError("bad\nthing", file="a\nb.h5", dataset="/layers/x\ny")
    assert str(err).count("\n") == 0 and err.one_line() == "a\\nb.h5: /layers/x\\ny: bad\\nthing"


@pytest.fixture
def evil_layer(tmp_path):
    m = valid_members()
    m[f"layers/{EVIL}/x"] = np.zeros(3)  # a group where a dataset belongs: an error names it
    return write_h5(tmp_path / "evil.h5", m)


@pytest.mark.parametrize("command", [("metrics", "--layers"), ("inspect",), ("report", "--layers")])
def test_error_naming_a_hostile_layer_is_one_escaped_line(evil_layer, command):
    result = cli(command[0], evil_layer, *command[1:])
    assert result.exit_code == 3, result.stderr
    if command[0] != "inspect":
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ncanalyze: error: "), result.stderr
        assert "evil\\nncanalyze: error: forged" in lines[0]
    _clean(result.stderr)
    _clean(result.stdout)


def test_hostile_path_argument_is_one_escaped_line(tmp_path):
    result = cli("metrics", tmp_path / f"missing{EVIL}.h5")
    lines = result.stderr.splitlines()
    assert result.exit_code == 3 and len(lines) == 1, result.stderr
    _clean(result.stderr)


@pytest.fixture
def markup_run(tmp_path):
    m = valid_members()
    for name in MARKUP:
        m[f"scalars/{name}"] = np.linspace(1.0, 0.5, 3)
    m[f"scalars/ctl{EVIL}"] = np.linspace(1.0, 0.5, 3)
    return write_h5(tmp_path / "markup.h5", m)


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_table_cells_and_headers_are_literal(markup_run, fmt):
    result = cli("metrics", markup_run, "-f", fmt, "--epochs", "last", "--all")
    assert result.exit_code == 0, result.stderr
    for name in MARKUP:
        assert f"scalars.{name}" in result.stdout, result.stdout
    assert "scalars.ctlevil\\n" in result.stdout
    _clean(result.stdout)


def test_inspect_shows_names_literally(markup_run):
    result = cli("inspect", markup_run)
    assert result.exit_code == 0, result.stderr
    for name in MARKUP:
        assert f"/scalars/{name}" in result.stdout
    assert str(markup_run) in result.stdout
    _clean(result.stdout)


def test_warnings_are_escaped(tmp_path):
    m = valid_members()
    m[f"layers/{EVIL}"] = np.ones((3, 60, 2), np.float32)  # all means equal: null + warning
    path = write_h5(tmp_path / "warn.h5", m)
    result = cli("metrics", path, "--layers", "-f", "json", "--epochs", "last")
    assert result.exit_code == 0, result.stderr
    assert "warning: epoch 3: layer evil\\n" in result.stderr
    assert all(line.startswith("ncanalyze: ") for line in result.stderr.splitlines())
    _clean(result.stderr)
