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
