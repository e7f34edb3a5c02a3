"""The result container of one epoch's formulas (and, re-exported from the key catalogue
:mod:`ncanalyze.core.keys`, the key tuples of the ``metrics`` command).

Every module of :mod:`ncanalyze.core` returns a :class:`MetricValues`; the key tuples fix the
output order (docs/METRICS.md lists the definitions in the same order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# The key tuples are derived from the catalogue (one row per key, core/keys.py).
from .keys import FEATURE_KEYS, LAYER_KEYS, METRIC_KEYS  # noqa: F401  (re-exported)


@dataclass
class MetricValues:
    """Values of one epoch: ``values[key]`` is a float, an int or ``None`` (undefined).

    ``warnings`` holds one line per undefined value (why it is ``None``) and per caveat.
    """

    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def set(self, key: str, value, undefined_reason: str | None = None) -> None:
        """Store ``value``; a ``None`` or non-finite value becomes ``None`` plus a warning."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            self.values[key] = None
            self.warnings.append(f"{key} is undefined: {undefined_reason or 'not finite'}")
        else:
            self.values[key] = value
