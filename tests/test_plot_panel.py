"""plot: the NC panel is drawn from a run (and overlays with --compare)."""

import pytest
from typer.testing import CliRunner

from ncanalyze.cli.app import app
from ncanalyze.plots.panel import PANELS, load_series, plot_runs
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
    s = load_series(runs[0])
    for _, _, _, curves in PANELS:
        for key, _ in curves:
            if key != "test_accuracy":
                assert s.get(key) is not None, key
    assert s.epochs[0] == 0 and s.epochs[-1] == 300


@pytest.mark.parametrize("ext,magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                       (".svg", b"<?xml")])
def test_formats(runs, tmp_path, ext, magic):
    out = tmp_path / f"fig{ext}"
    plot_runs([runs[0]], out)
    assert out.read_bytes().startswith(magic)


def test_cli_compare(runs, tmp_path):
    out = tmp_path / "cmp.png"
    r = CliRunner().invoke(app, ["plot", str(runs[0]), "--compare", str(runs[1]), "--label",
                                 "MSE", "--label", "CE", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["cmp.png"]


def test_cli_errors(runs, tmp_path):
    r = CliRunner().invoke(app, ["plot", str(runs[0]), "-o", str(tmp_path / "x.gif")])
    assert r.exit_code == 2 and ".gif" in r.stderr
    r = CliRunner().invoke(app, ["plot", str(runs[0]), "--label", "a", "--label", "b", "-o",
                                 str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "--label" in r.stderr
    r = CliRunner().invoke(app, ["plot", str(tmp_path / "missing.h5"), "-o",
                                 str(tmp_path / "x.png")])
    assert r.exit_code == 3
    assert not (tmp_path / "x.png").exists()
    r = CliRunner().invoke(app, ["plot", "--help"])
    assert "Example" in r.stdout
