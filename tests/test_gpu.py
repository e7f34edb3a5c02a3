"""CuPy backend: the same results as NumPy (tests marked ``gpu``: need CuPy and a CUDA GPU).

Run them with ``python -m pytest -m gpu tests/test_gpu.py`` on a GPU machine; they are
skipped elsewhere. The first test needs no GPU: ``import ncanalyze`` must not import CuPy.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ncanalyze.analysis import Analysis, Settings
from ncanalyze.backend import cupy_available

from .factories import collapsing_features, labels, write_run

QUANTITIES = ("metrics", "decompose", "snr")


def test_import_does_not_load_cupy():
    code = "import sys, ncanalyze, ncanalyze.analysis, ncanalyze.parallel, ncanalyze.cli; " \
           "print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


needs_gpu = pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    rng = np.random.default_rng(8)
    C, P = 7, 40
    y = labels(C, [900, 1200, 700, 1000, 1100, 800, 1300], rng)  # 7000 rows, imbalanced
    means = rng.normal(size=(C, P)) * 3 + 2
    feats = [collapsing_features(y, means, s, rng) for s in (1.0, 1e-3)]
    Ws = [means - means.mean(0) + 0.1 * rng.normal(size=(C, P)) for _ in feats]
    bs = [0.05 * rng.normal(size=C) for _ in feats]
    return write_run(tmp_path_factory.mktemp("gpu") / "run.h5", y, feats, Ws, bs,
                     weight_decay=1e-3)


def _values(path, backend, dtype, chunk_rows=None):
    s = Settings(QUANTITIES, backend=backend, dtype=dtype, chunk_rows=chunk_rows, workers=1)
    with Analysis(path, s) as a:
        assert a.backend.name == backend
        return [r.values for r in a]


def _compare(a, b, rtol):
    for va, vb in zip(a, b):
        assert va.keys() == vb.keys()
        for k, x in vb.items():
            y = va[k]
            if isinstance(x, float):
                assert abs(y - x) <= 1e-9 + rtol * abs(x), f"{k}: {y} vs {x}"
            elif isinstance(x, list):
                np.testing.assert_allclose(y, x, rtol=rtol, atol=1e-9, err_msg=k)
            else:
                assert y == x, k


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cupy_matches_numpy(run_file, dtype):
    _compare(_values(run_file, "cupy", dtype), _values(run_file, "numpy", dtype), rtol=1e-6)


@pytest.mark.gpu
@needs_gpu
def test_cupy_chunking_independent(run_file):
    a = _values(run_file, "cupy", "float64", chunk_rows=333)
    b = _values(run_file, "cupy", "float64")
    _compare(a, b, rtol=1e-12)


@pytest.mark.gpu
@needs_gpu
def test_cupy_statistics_stay_on_device(run_file):
    import cupy

    from ncanalyze.core.stats import class_stats

    rng = np.random.default_rng(1)
    h = cupy.asarray(rng.normal(size=(5000, 16)))
    y = cupy.asarray(rng.integers(0, 5, 5000))
    st = class_stats(h, y, 5)
    assert isinstance(st.within_scatter, cupy.ndarray) and isinstance(st.means, cupy.ndarray)
