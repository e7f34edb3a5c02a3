"""plot: the NC panel is drawn from a run (and overlays with --compare)."""

import pytest

from tests.conftest import run_cli
from ncanalyze.cli.commands.plot import read_series
from ncanalyze.analysis import Settings
from ncanalyze.plots.panel import PANELS, draw_panel
from ncanalyze.simulate import UFMConfig, simulate

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("panel")
    a, b = d / "mse.h5", d / "ce.h5"
    simulate(a, UFMConfig(model="mse", bias="free", epochs=300, saves=12))
    simulate(b, UFMConfig(model="ce", bias="free", epochs=300, saves=12))
    return a, b


def test_series_has_every_panel_key(runs):
    s = read_series(runs[0], Settings())
    for _, _, _, curves in PANELS:
        for key, _ in curves:
            if key != "test_accuracy":
                assert s.get(key) is not None, key
    assert s.epochs[0] == 0 and s.epochs[-1] == 300


@pytest.mark.parametrize("ext,magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                       (".svg", b"<?xml")])
def test_formats(runs, tmp_path, ext, magic):
    out = tmp_path / f"fig{ext}"
    draw_panel([read_series(runs[0], Settings())], out)
    assert out.read_bytes().startswith(magic)


def test_cli_compare(runs, tmp_path):
    out = tmp_path / "cmp.png"
    r = run_cli("plot", runs[0], "--compare", runs[1], "--label", "MSE", "--label", "CE",
                "-o", out)
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.png"]


def test_cli_errors(runs, tmp_path):
    r = run_cli("plot", runs[0], "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and ".gif" in r.stderr
    r = run_cli("plot", runs[0], "--label", "a", "--label", "b", "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and "--label" in r.stderr
    r = run_cli("plot", tmp_path / "missing.h5", "-o", tmp_path / "x.png")
    assert r.exit_code == 3
    assert not (tmp_path / "x.png").exists()
    r = run_cli("plot", "--help")
    assert "Example" in r.stdout
