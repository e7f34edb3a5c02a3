"""docs/RELIABILITY.md states the limits the code enforces (issue 16 item 16): each constant
of ncanalyze/limits.py appears in its table, and the memory stated for P at its limit is the
memory plan's own figure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ncanalyze import limits
from ncanalyze.memory import estimate

DOC = (Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md").read_text()


def _spaced(n: int) -> str:
    return f"{n:,}".replace(",", " ")


@pytest.mark.parametrize("symbol,value", [("P", limits.MAX_FEATURES), ("C", limits.MAX_CLASSES),
                                          ("C·P", limits.MAX_CLASSES_X_FEATURES),
                                          ("N", limits.MAX_SAMPLES), ("E", limits.MAX_EPOCHS)])
def test_each_limit_is_stated_with_the_value_the_code_enforces(symbol, value):
    assert f"**{symbol} ≤ {_spaced(value)}" in DOC, f"{symbol} ≤ {_spaced(value)} not stated"


def test_the_magnitude_limit_is_stated():
    stated = f"{limits.MAX_MAGNITUDE:.0e}".replace("e+", "e")  # 1e60
    assert f"≤ {stated}** (`MAX_MAGNITUDE`" in DOC


def test_no_other_value_is_stated_for_the_class_limit():
    assert not re.search(r"C ≤ 100[  ,]?000", DOC)


def test_the_memory_stated_for_p_at_its_limit_is_the_plans():
    p = limits.MAX_FEATURES
    parts = estimate(classes=2, present=2, features=p, samples=1, chunk_bytes=0, cache_bytes=0)
    assert f"P = {_spaced(p)} needs about {parts['P×P matrices'] / 2**30:.1f} GiB" in DOC
