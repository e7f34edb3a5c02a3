"""Array backends: the only module that imports CuPy, and only when asked to.

The computation core never imports an array library; it takes the namespace from its inputs
(array-api-compat). This module picks a backend by name and moves NumPy chunks read from a
file onto it and results back to NumPy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import BackendError

BACKENDS = ("auto", "numpy", "cupy")


@dataclass(frozen=True)
class Backend:
    """An array namespace with the two transfers the orchestration layer needs.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"cupy"`` or, for tests, ``"array_api_strict"``.
    xp : module
        The array-API namespace (array-api-compat wrapped where needed).
    asarray : callable
        NumPy array -> backend array of the given dtype name.
    to_numpy : callable
        Backend array -> NumPy array.
    """

    name: str
    xp: Any
    asarray: Callable[[np.ndarray, str], Any]
    to_numpy: Callable[[Any], np.ndarray]


def _numpy_backend() -> Backend:
    import array_api_compat.numpy as xnp

    return Backend(
        "numpy",
        xnp,
        lambda a, dtype: np.asarray(a, dtype=dtype),
        lambda a: np.asarray(a),
    )


def _strict_backend() -> Backend:
    try:
        import array_api_strict as xs
    except ImportError as exc:  # pragma: no cover - test-only backend
        raise BackendError("array_api_strict is not installed") from exc
    return Backend(
        "array_api_strict",
        xs,
        lambda a, dtype: xs.asarray(np.asarray(a, dtype=dtype)),
        lambda a: np.asarray(a),
    )


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cp = importlib.import_module("cupy")
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _cupy_backend() -> Backend:
    try:
        cp = importlib.import_module("cupy")
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise BackendError(
            f"backend 'cupy' is unavailable ({type(exc).__name__}: {exc}); "
            "install the 'cuda' extra on a machine with a CUDA GPU or use --backend numpy"
        ) from exc
    if count < 1:
        raise BackendError("backend 'cupy' is unavailable: no CUDA device found")
    import array_api_compat.cupy as xcp

    return Backend(
        "cupy",
        xcp,
        lambda a, dtype: cp.asarray(np.asarray(a), dtype=dtype),
        lambda a: cp.asnumpy(a),
    )


def get_backend(name: str = "auto") -> Backend:
    """Return the backend called ``name``.

    Parameters
    ----------
    name : {"auto", "numpy", "cupy", "array_api_strict"}
        ``"auto"`` picks CuPy when a CUDA device is usable, NumPy otherwise.

    Raises
    ------
    BackendError
        When the named backend cannot be used (exit code 4).
    """
    if name == "numpy":
        return _numpy_backend()
    if name == "cupy":
        return _cupy_backend()
    if name == "array_api_strict":
        return _strict_backend()
    if name == "auto":
        return _cupy_backend() if cupy_available() else _numpy_backend()
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
