"""The bundled run examples/digits_mlp.h5 (needs neither torch nor scikit-learn)."""

from __future__ import annotations

from pathlib import Path

from ncanalyze.analysis import analyze

BUNDLED = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"


def test_bundled_run_shows_collapse():
    _, res = analyze(BUNDLED, epochs="0,last")
    first, last = res[0].values, res[-1].values
    assert last["accuracy"] == 1.0
    assert last["nc1"] < first["nc1"] / 1000
    assert last["ncc_mismatch"] == 0.0
    assert BUNDLED.stat().st_size <= 5_000_000


def test_bundled_run_has_snr_on_every_epoch():
    """No dead penultimate units: Σ_W is invertible, so `ncanalyze report` warns about nothing."""
    _, res = analyze(BUNDLED, quantities=("metrics", "decompose", "snr"))
    assert len(res) >= 10
    for e in res:
        assert e.warnings == [], (e.epoch, e.warnings)
        assert e.values["snr_min"] is not None and e.values["snr_min"] > 0, e.epoch
    assert res[-1].values["snr_min"] > 10 * res[0].values["snr_min"]
