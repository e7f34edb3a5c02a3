"""PyTorch as a compute backend (CPU here; CUDA in tests/core/test_gpu.py), backend names and exit
codes, and the in-memory API on tensors that require grad.

The core suite itself runs on torch-CPU through the ``xp`` fixture of tests/conftest.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ncanalyze.backend import detach, get_backend, to_numpy, to_numpy_many
from ncanalyze.errors import BackendError, UsageError

from tests.factories import collapsing_features, labels

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.h5"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncanalyze", *args], capture_output=True,
                          text=True, timeout=300)


def _flat(value, prefix=""):
    """Every leaf of a JSON document as ``path -> value``."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


# ---------------------------------------------------------------------- names and exit codes


def test_backend_names():
    pytest.importorskip("torch")
    assert get_backend("torch:cpu").name == "torch:cpu"
    plain = get_backend("torch")  # CUDA device 0 when usable, else the CPU
    assert plain.name in ("torch:cpu", "torch:cuda:0")
    with pytest.raises(UsageError, match="unknown backend 'jax'"):
        get_backend("jax")
    with pytest.raises(UsageError):
        get_backend("torch:cpu:1")
    with pytest.raises(UsageError):
        get_backend("torch:gpu")


def test_unavailable_cuda_is_a_backend_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    for name in ("torch:cuda", "torch:cuda:1"):
        with pytest.raises(BackendError, match="no CUDA device"):
            get_backend(name)


@pytest.mark.parametrize("name,code", [("jax", 2), ("torch:tpu", 2), ("cupy", 4),
                                       ("torch:cuda:7", 4)])
def test_cli_exit_codes(name, code):
    """An unknown backend name is a usage error (2); a known one that cannot run here, 4."""
    if code == 4:
        from ncanalyze.backend import cupy_available, torch_cuda_available

        if cupy_available() or (name.startswith("torch") and torch_cuda_available()
                                and name != "torch:cuda:7"):
            pytest.skip("this backend is available here")
    r = _cli("metrics", str(EXAMPLE), "--backend", name, "--epochs", "last")
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and name in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_import_never_loads_torch_or_cupy():
    """Importing every module of the package (and choosing ``auto`` without a CUDA driver)
    imports neither PyTorch nor CuPy — except the training-framework callbacks, which a user
    imports only to train with that framework."""
    code = (
        "import importlib, pkgutil, sys, ncanalyze\n"
        "skip = ('ncanalyze.__main__', 'ncanalyze.integrations.hf',\n"
        "        'ncanalyze.integrations.lightning')\n"
        "for m in pkgutil.walk_packages(ncanalyze.__path__, 'ncanalyze.'):\n"
        "    if m.name not in skip: importlib.import_module(m.name)\n"
        "from ncanalyze.backend import _cuda_driver_present, get_backend\n"
        "print('torch' in sys.modules, 'cupy' in sys.modules)\n"
        "get_backend('auto')\n"
        "print(_cuda_driver_present() or 'torch' not in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["False", "False", "True"], out.stdout


# ---------------------------------------------------------------------- CLI end to end


def test_report_on_torch_equals_numpy():
    """`report --backend torch` on the bundled run equals NumPy's output to 1e-9 relative.

    Every number is compared; the SNR spectrum as a vector (each ω_j within 1e-9 of ω_1):
    its last value ω_C is 0 in exact arithmetic (M̄ has rank ≤ C − 1), a rounding residue
    (~1e-12 ω_1) whose own digits differ between any two summation orders.
    """
    pytest.importorskip("torch")
    docs = {}
    for backend in ("numpy", "torch"):
        r = _cli("report", str(EXAMPLE), "--backend", backend, "--format", "json")
        assert r.returncode == 0, r.stderr
        docs[backend] = json.loads(r.stdout)
    assert docs["torch"]["settings"]["backend"] in ("torch:cpu", "torch:cuda:0")
    a, b = _flat(docs["numpy"]["epochs"]), _flat(docs["torch"]["epochs"])
    assert a.keys() == b.keys() and len(a) > 100
    for ea, eb in zip(docs["numpy"]["epochs"], docs["torch"]["epochs"], strict=True):
        sa, sb = ea["snr_singular_values"], eb["snr_singular_values"]
        np.testing.assert_allclose(sb, sa, rtol=0, atol=1e-9 * max(sa))
    for key, x in a.items():
        y = b[key]
        if "snr_singular_values" in key:
            continue  # compared as a vector above
        if isinstance(x, float) and isinstance(y, float):
            assert math.isclose(y, x, rel_tol=1e-9, abs_tol=1e-300), f"{key}: {y!r} vs {x!r}"
        else:
            assert y == x, key


# ---------------------------------------------------------------------- in-memory API


@pytest.fixture
def grad_problem(rng):
    torch = pytest.importorskip("torch")
    C, P = 4, 6
    y = labels(C, [30, 25, 40, 35], rng)
    h = collapsing_features(y, rng.normal(size=(C, P)) * 3, 0.5, rng)
    w, b = rng.normal(size=(C, P)), rng.normal(size=C)
    tensors = (torch.tensor(h, dtype=torch.float32, requires_grad=True), torch.tensor(y),
               torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True))
    return (h.astype(np.float32), y, w, b), tensors


def _same(got: dict, want: dict):
    assert got.keys() == want.keys()
    for k, v in want.items():
        if k == "warnings":
            assert got[k] == v
        elif isinstance(v, float):
            assert type(got[k]) is float and math.isclose(got[k], v, rel_tol=1e-9), k
        elif isinstance(v, list):
            assert all(type(g) is float for g in got[k])
            np.testing.assert_allclose(got[k], v, rtol=1e-9, atol=1e-12, err_msg=k)
        else:
            assert got[k] == v, k


def test_api_accepts_tensors_that_require_grad(grad_problem):
    """nc_metrics/decompose/snr/least_squares_classifier on ``requires_grad`` tensors: no
    error, no warning, plain Python numbers equal to NumPy's, detached float64 tensors."""
    import ncanalyze

    (h, y, w, b), (th, ty, tw, tb) = grad_problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(ncanalyze.nc_metrics(th, ty, tw, tb), ncanalyze.nc_metrics(h, y, w, b))
        _same(ncanalyze.decompose(th, ty, tw, tb, weight_decay=1e-3),
              ncanalyze.decompose(h, y, w, b, weight_decay=1e-3))
        _same(ncanalyze.snr(th, ty), ncanalyze.snr(h, y))
        lw, lb = ncanalyze.least_squares_classifier(th, ty, weight_decay=1e-3)
    nw, nb = ncanalyze.least_squares_classifier(h, y, weight_decay=1e-3)
    assert not lw.requires_grad and not lb.requires_grad
    np.testing.assert_allclose(to_numpy(lw), nw, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(to_numpy(lb), nb, rtol=1e-9, atol=1e-12)
    assert th.grad is None  # nothing was traced back into the caller's graph


def test_api_mixes_tensor_features_with_numpy_weights(grad_problem):
    import ncanalyze

    (h, y, w, b), (th, _, _, _) = grad_problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(ncanalyze.nc_metrics(th, y, w, b), ncanalyze.nc_metrics(h, y, w, b))


def test_detach_and_host_copies_do_not_copy_cpu_memory():
    torch = pytest.importorskip("torch")
    t = torch.ones(3, 4, requires_grad=True)
    d = detach(t)
    assert not d.requires_grad and d.data_ptr() == t.data_ptr()
    host = to_numpy(t)
    assert host.ctypes.data == t.data_ptr()  # a view of the tensor's memory
    plain = torch.arange(5.0)
    assert detach(plain) is plain
    a, b = to_numpy_many(torch.zeros(2, 3, dtype=torch.float64),
                         torch.arange(4, dtype=torch.float64))
    assert a.shape == (2, 3) and b.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_to_numpy_handles_every_array_library():
    xs = pytest.importorskip("array_api_strict")
    on_other_device = xs.asarray([1.0, 2.0], device=xs.Device("device1"))
    assert to_numpy(on_other_device).tolist() == [1.0, 2.0]
    with pytest.raises(UsageError, match="cannot convert"):
        to_numpy(object())


# ---------------------------------------------------------------------- transfers


def test_two_host_transfers_per_epoch_whatever_the_chunking(tmp_path, monkeypatch, rng):
    """On a torch backend the statistics and the decision pass stay on the device: per epoch
    one transfer of the small statistics and one of the decision counts, however many chunks
    (every way back to the host — .numpy(), .item(), float()/int()/bool() — is counted)."""
    torch = pytest.importorskip("torch")
    from ncanalyze.analysis import Analysis
    from ncanalyze.settings import Settings

    from tests.factories import write_run

    y = labels(5, 300, rng)
    means = rng.normal(size=(5, 8)) * 3
    feats = [collapsing_features(y, means, s, rng) for s in (0.5, 0.1)]
    path = write_run(tmp_path / "r.h5", y, feats, [rng.normal(size=(5, 8)) for _ in feats],
                     [rng.normal(size=5) for _ in feats])
    # As on a GPU: no zero-copy host views (on the CPU the decision pass deliberately scores
    # float32 rows through a NumPy view of the tensor, docs/PERFORMANCE.md).
    import ncanalyze.core.decisions as decisions

    monkeypatch.setattr(decisions, "host_view", lambda a: None)
    calls: list[str] = []
    for name in ("numpy", "item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    per_chunking = {}
    for rows in (None, 50):  # 1 chunk vs 30 chunks per epoch
        calls.clear()
        s = Settings(("metrics", "decompose", "snr"), backend="torch:cpu", chunk_rows=rows,
                     workers=1)
        with Analysis(path, s) as a:
            assert len(list(a)) == 2
        per_chunking[rows] = list(calls)
    assert per_chunking[None] == per_chunking[50] == ["numpy"] * 4


def test_cholesky_failure_is_none_on_every_library(xp):
    """NumPy raises, PyTorch raises a RuntimeError subclass, CuPy returns NaN: the backend's
    cholesky turns the first two into None; checked_cholesky names every case singular."""
    from ncanalyze.backend import cholesky
    from ncanalyze.core.linalg import checked_cholesky

    indefinite = xp.asarray(np.array([[1.0, 2.0], [2.0, 1.0]]))
    lower, reason = checked_cholesky(indefinite)
    assert lower is None and "not positive definite" in reason
    if not xp.name.startswith("cupy"):
        assert cholesky(indefinite) is None
    spd = xp.asarray(np.array([[4.0, 2.0], [2.0, 3.0]]))
    lower, reason = checked_cholesky(spd)
    assert reason is None and xp.owns(lower)
    np.testing.assert_allclose(xp.to_numpy(lower), np.linalg.cholesky([[4.0, 2.0], [2.0, 3.0]]))
