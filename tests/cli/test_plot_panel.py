"""plot: the NC panel is drawn from a run (and overlays with --compare)."""

import pytest

from tests.conftest import run_cli
from ncanalyze.api import panel_series
from ncanalyze.settings import Settings
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
    s = panel_series(runs[0], Settings())
    for _, _, _, curves in PANELS:
        for key, _ in curves:
            if key != "test_accuracy":
                assert s.get(key) is not None, key
    assert s.epochs[0] == 0 and s.epochs[-1] == 300


@pytest.mark.parametrize("ext,magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                       (".svg", b"<?xml")])
def test_formats(runs, tmp_path, ext, magic):
    out = tmp_path / f"fig{ext}"
    draw_panel([panel_series(runs[0], Settings())], out)
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


def _capture_figures(monkeypatch):
    import matplotlib.figure

    figures = []
    real = matplotlib.figure.Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return figures


def test_panel_frame_distances_linear_with_weights_and_test_split(monkeypatch, tmp_path):
    from ncanalyze.plots.panel import series_from_epochs

    rows = [{"epoch": e, "accuracy": 0.5, "etf_distance_means": 1.0 - e / 1000,
             "of_distance_means": 0.9, "etf_distance_weights": 0.8, "of_distance_weights": 0.7,
             "splits": {"test": {"accuracy": 0.4 + e / 2000}},
             "scalars": {"test_acc": 0.1}} for e in (0, 1, 10, 100, 600)]
    s = series_from_epochs(rows, "run", "mse")
    # a measured test split wins over the loop's own record of it
    assert s.get("test_accuracy").tolist() == [0.4 + e / 2000 for e in (0, 1, 10, 100, 600)]
    figures = _capture_figures(monkeypatch)
    draw_panel([s], tmp_path / "p.png")
    ax = figures[0].axes[7]
    assert "orthogonal-frame" in ax.get_title()
    assert ax.get_yscale() == "linear"
    assert len(ax.get_lines()) == 4  # ETF and OF of the means and of the classifier rows
    assert figures[0].axes[0].get_xscale() == "symlog"  # 0..600: log epochs, 0 at the edge


@pytest.mark.parametrize("xscale,expected", [("auto", "symlog"), ("log", "symlog"),
                                             ("linear", "linear")])
def test_decompose_and_snr_figures_use_a_log_epoch_axis(monkeypatch, tmp_path, xscale,
                                                        expected):
    from pathlib import Path

    figures = _capture_figures(monkeypatch)
    example = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
    for command in ("decompose", "snr"):
        r = run_cli(command, example, "--plot", tmp_path / f"{command}.png", "--xscale", xscale,
                    "-q")
        assert r.exit_code == 0, r.stderr
    assert len(figures) == 2
    for fig in figures:
        assert {ax.get_xscale() for ax in fig.axes} == {expected}


MARKUP = "x$\\foo{$ a_b ^c"


def test_figures_draw_user_and_file_text_literally(runs, tmp_path):
    """Issue 16 item 12: matplotlib math markup in a file name, --title or --label (or the
    file's loss attribute) is drawn as typed, never parsed (it raised ValueError: exit 70)."""
    import shutil

    from ncanalyze.plots.text import literal

    hostile = tmp_path / f"{MARKUP}.h5"
    shutil.copy(runs[0], hostile)
    cases = [["plot", hostile, "-o", tmp_path / "a.png"],
             ["plot", runs[0], "--title", MARKUP, "--label", "$\\x$", "-o", tmp_path / "b.svg"],
             ["snr", hostile, "--plot", tmp_path / "c.png", "-f", "json"],
             ["decompose", hostile, "--plot", tmp_path / "d.png", "-f", "json"]]
    for args in cases:
        r = run_cli(*args)
        assert r.exit_code == 0, (args, r.stderr)
    assert literal(MARKUP) == "x\\$\\foo{\\$ a_b ^c"


def test_literal_text_renders_as_typed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ncanalyze.plots.text import literal

    fig = plt.figure()
    t = fig.text(0.1, 0.5, literal(MARKUP))
    fig.savefig(tmp_path / "t.png")
    # Drawn as text, not mathtext: the rendered string is the typed one.
    assert t._preprocess_math(t.get_text()) == (MARKUP, False)
    plt.close(fig)
