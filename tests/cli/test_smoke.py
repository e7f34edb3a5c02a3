import numpy as np

from ncanalyze.core.metrics import nc_metrics


def test_nc_metrics_runs_on_random_data(rng):
    y = np.repeat(np.arange(4), 25)
    h = rng.normal(size=(4, 8))[y] + 0.1 * rng.normal(size=(100, 8))
    out = nc_metrics(h, y)
    assert 0 < out["nc1"] < 1
    assert out["nc1_rank"] == 3
