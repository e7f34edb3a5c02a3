"""Every backend, GPUs included (CuPy, PyTorch on CUDA), gives NumPy's results on a file.

The tests run over the ``xp`` fixture of tests/conftest.py; its ``cupy`` and ``torch:cuda``
parameters are marked ``gpu``: run them with ``python -m pytest -m gpu`` on a GPU machine
(install ``.[cuda,torch,test]``, or ``bash benchmarks/gpu_check.sh``); elsewhere they are
deselected by default and, when selected, skip with the reason. ``test_compare_can_fail``
checks that :func:`_compare` can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze.analysis import Analysis
from ncanalyze.settings import Settings
from ncanalyze.backend import get_backend
from ncanalyze.errors import BackendError

from tests.reference import assert_values_close
from tests.factories import collapsing_features, labels, write_run

QUANTITIES = ("metrics", "decompose", "snr")


def _require(name: str):
    """The backend ``name``, or skip the test with the reason it is unavailable."""
    if name.startswith("torch"):
        pytest.importorskip("torch")
    try:
        return get_backend(name)
    except BackendError as exc:
        pytest.skip(str(exc))


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
        return a.backend.name, [r.values for r in a]


def _compare(a: list[dict], b: list[dict], rtol: float) -> None:
    """Every epoch and every value of ``a`` equals ``b``'s (floats and lists to ``rtol``)."""
    assert len(a) == len(b), f"{len(a)} epochs vs {len(b)}"
    for va, vb in zip(a, b, strict=True):
        assert_values_close(va, vb, rtol=rtol, atol=1e-9)


def test_compare_can_fail():
    one = [{"epoch": 1, "nc1": 0.5, "snr_singular_values": [2.0, 1.0]}]
    _compare(one, [dict(one[0])], rtol=1e-12)
    for other in ([], one + one, [{**one[0], "nc1": 0.6}], [{**one[0], "epoch": 2}],
                  [{"epoch": 1, "nc1": 0.5}], [{**one[0], "snr_singular_values": [2.0]}],
                  [{**one[0], "nc1": None}]):
        with pytest.raises(AssertionError):
            _compare(other, one, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backend_matches_numpy(run_file, xp, dtype):
    name, got = _values(run_file, xp.name, dtype)
    assert name == xp.name
    _compare(got, _values(run_file, "numpy", dtype)[1], rtol=1e-6)


def test_backend_chunking_independent(run_file, xp):
    a = _values(run_file, xp.name, "float64", chunk_rows=333)[1]
    b = _values(run_file, xp.name, "float64")[1]
    _compare(a, b, rtol=1e-12)


def test_statistics_stay_on_device(xp):
    from array_api_compat import device

    from ncanalyze.core.accumulator import class_stats

    be = xp.backend
    rng = np.random.default_rng(1)
    h = be.asarray(rng.normal(size=(5000, 16)), "float64")
    y = be.asarray(rng.integers(0, 5, 5000), "int64")
    st = class_stats(h, y, 5)
    for arr in (st.within_scatter, st.means, st.counts, st.class_scatter):
        assert type(arr) is type(h) and device(arr) == device(h)


@pytest.mark.gpu
def test_torch_cuda_api_returns_python_numbers():
    """The in-memory API on CUDA tensors that require grad: computed on the device, plain
    Python numbers back, equal to NumPy's."""
    import ncanalyze

    be = _require("torch:cuda")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    y = labels(5, 60, rng)
    h = collapsing_features(y, rng.normal(size=(5, 12)) * 2, 0.5, rng)
    w, b = rng.normal(size=(5, 12)), rng.normal(size=5)
    th = torch.tensor(h, device=be.device, requires_grad=True)
    ty = torch.tensor(y, device=be.device)
    tw = torch.tensor(w, device=be.device, requires_grad=True)
    tb = torch.tensor(b, device=be.device, requires_grad=True)
    for got, want in ((ncanalyze.nc_metrics(th, ty, tw, tb), ncanalyze.nc_metrics(h, y, w, b)),
                      (ncanalyze.decompose(th, ty, tw, tb), ncanalyze.decompose(h, y, w, b)),
                      (ncanalyze.snr(th, ty), ncanalyze.snr(h, y))):
        for k, v in want.items():
            if isinstance(v, float):
                assert type(got[k]) is float and got[k] == pytest.approx(v, rel=1e-9), k
    lw, lb = ncanalyze.least_squares_classifier(th, ty)
    assert lw.device == th.device and not lw.requires_grad
