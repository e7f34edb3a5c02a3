"""Figures draw what the analysis says (issue 20 item 3): a single epoch gets a sensible x axis,
a symmetric-log axis says so, a long list of SNR singular values shows the largest and
smallest few, decompose --plot says where it wrote."""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.plots import central_path
from tests.conftest import run_cli


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plotting functions would save."""
    saved = []
    monkeypatch.setattr(central_path, "_save", lambda fig, path: saved.append(fig))
    return saved


def test_a_single_epoch_gets_one_tick_at_that_epoch(figures):
    central_path.plot_decompose("x.png", [{"epoch": 600, "loss": 1.0, "loss_nc1": 0.5,
                                           "loss_nc23": 0.2, "loss_ls_perp": 0.3}])
    ax = figures[0].axes[0]
    assert list(ax.get_xticks()) == [600] and ax.get_xlim() == (599, 601)


def test_log_epoch_axes_are_log_or_say_that_they_are_symlog(figures):
    rows = [{"epoch": e, "loss": 1.0 / (1 + e), "loss_nc1": 0.1, "loss_nc23": 0.1,
             "loss_ls_perp": 0.1} for e in (0, 1, 10, 100, 1000)]
    central_path.plot_decompose("x.png", rows)
    central_path.plot_decompose("y.png", rows[1:])
    with_zero, without = figures[0].axes[0], figures[1].axes[0]
    assert with_zero.get_xscale() == "symlog" and "linear from 0 to 1" in with_zero.get_xlabel()
    assert without.get_xscale() == "log" and without.get_xlabel() == "epoch (log scale)"


def test_many_singular_values_show_the_largest_and_smallest_few(figures):
    rows = [{"epoch": e, "snr_singular_values": list(np.linspace(50, 1, 64) * (1 + e))}
            for e in (1, 2, 3)]
    central_path.plot_snr("x.png", rows, None, num_classes=4097)
    labels = figures[0].axes[0].get_legend_handles_labels()[1]
    assert labels == [f"j = {j}" for j in (0, 1, 2, 3, 60, 61, 62, 63)]
    assert "of 64" in figures[0].axes[0].get_title()


def test_dropped_directions_are_neither_curves_nor_the_spread(figures):
    """A language model's last ω_j is 0 when a LayerNorm direction is dropped
    (snr_dropped_dims): it was listed in the legend without a curve, and the spread panel
    divided by it and came out empty (tiny_lm's snr --plot)."""
    rows = [{"epoch": e, "snr_singular_values": [*np.linspace(50, 20, 31) * (1 + e), 0.0],
             "snr_dropped_dims": 1} for e in (0, 2, 4)]
    central_path.plot_snr("x.png", rows, None, num_classes=4097)
    values, spread = figures[0].axes[:2]
    labels = values.get_legend_handles_labels()[1]
    assert labels == [f"j = {j}" for j in (0, 1, 2, 3, 27, 28, 29, 30)]
    assert "of 31; 1 dropped" in values.get_title()
    measured = [line for line in spread.get_lines() if line.get_label().startswith("measured")]
    assert len(measured[0].get_xdata()) == 3
    np.testing.assert_allclose(measured[0].get_ydata(), 50 / 20)


def test_decompose_figure_of_a_cross_entropy_run_says_what_its_terms_are(figures):
    rows = [{"epoch": e, "loss": 1e4, "loss_nc1": 0.01, "loss_nc23": 0.5, "loss_ls_perp": 1e4}
            for e in (0, 2, 4)]
    central_path.plot_decompose("x.png", rows, cross_entropy=True)
    central_path.plot_decompose("y.png", rows)
    assert "cross-entropy run" in figures[0].axes[0].get_title()
    assert "cross-entropy" not in figures[1].axes[0].get_title()


def test_decompose_plot_says_where_it_wrote(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"
    fig = tmp_path / "loss.png"
    r = run_cli("decompose", example, "--plot", fig, "--epochs", "last", "-f", "csv")
    assert r.exit_code == 0, r.stderr
    assert f"ncanalyze: wrote {fig}" in r.stderr and fig.read_bytes()[:4] == b"\x89PNG"
