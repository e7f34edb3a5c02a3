"""Shared fixtures and the deterministic hypothesis profile."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("slow", derandomize=False, deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ---------------------------------------------------------------------- array libraries

#: Backends the core suite runs on. The two GPU ones are marked ``gpu`` (deselected by the
#: default ``-m 'not slow and not gpu'``); every one skips when its library or device is absent.
#: ``array_api_strict:device1`` is a second device of array-api-strict: arrays created
#: without ``device=`` land on the default device and mixing the two raises, as on a GPU.
XP_BACKENDS = [
    "numpy",
    "array_api_strict",
    "array_api_strict:device1",
    "torch:cpu",
    pytest.param("cupy", marks=pytest.mark.gpu),
    pytest.param("torch:cuda", marks=pytest.mark.gpu),
]


class ArrayLib:
    """One array library on one device, for tests: ``asarray`` uploads NumPy data.

    Attributes
    ----------
    name : str
        The backend name (``Settings(backend=...)``, ``--backend``).
    ns : module
        The array namespace.
    device : object or None
    """

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        self.ns = backend.xp
        self.device = backend.device

    def asarray(self, a, dtype=None):
        """``a`` (NumPy or nested lists) on this library's device, in ``dtype`` (default: its
        own)."""
        arr = np.asarray(a)
        return self.backend.asarray(arr, arr.dtype if dtype is None else dtype)

    @staticmethod
    def to_numpy(a):
        from ncanalyze.backend import to_numpy

        return to_numpy(a)

    def owns(self, a) -> bool:
        """Whether ``a`` is an array of this library on this device."""
        from array_api_compat import array_namespace, device

        same_ns = array_namespace(a).__name__ == self.ns.__name__
        return same_ns and (self.device is None or device(a) == self.device)

    def __repr__(self) -> str:
        return f"ArrayLib({self.name})"


@pytest.fixture(scope="session", params=XP_BACKENDS)
def xp(request) -> ArrayLib:
    """Each array library of :data:`XP_BACKENDS` in turn (skipped when unavailable)."""
    from ncanalyze.backend import get_backend
    from ncanalyze.errors import BackendError

    name = request.param
    if name.startswith("array_api_strict"):
        pytest.importorskip("array_api_strict")
    try:
        return ArrayLib(get_backend(name))
    except BackendError as exc:
        pytest.skip(f"backend {name} unavailable: {exc}")


def run_cli(*args, **kwargs):
    """Run ``ncanalyze ARGS…`` in this process; arguments are ``str()``-ed.

    Returns typer's ``Result`` (``exit_code``, ``stdout`` and ``stderr`` kept apart).
    ``kwargs`` go to ``CliRunner.invoke`` (e.g. ``input=``, ``env=``).
    """
    from typer.testing import CliRunner

    from ncanalyze.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


@pytest.fixture
def cli():
    """:func:`run_cli` as a fixture."""
    return run_cli


@pytest.fixture(scope="session")
def lm_run(tmp_path_factory):
    """A word-level language model trained on stdlib text with a final LayerNorm, recorded in
    float32 with ncanalyze's capture API (:func:`tests.factories.word_lm_run`; ~5 s, once per
    session)."""
    pytest.importorskip("torch")
    from tests.factories import word_lm_run

    return word_lm_run(tmp_path_factory.mktemp("lm") / "lm.h5")
