"""The result container of one epoch's formulas and the key tuples of the ``metrics`` command.

Every module of :mod:`ncanalyze.core` returns a :class:`MetricValues`; the key tuples fix the
output order (docs/METRICS.md lists the definitions in the same order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Keys computed from the features (and labels) alone.
FEATURE_KEYS = (
    "nc1", "nc1_rank", "cdnv", "coincident_pairs", "equinorm_means", "equiangle_means",
    "maxangle_means", "etf_distance_means", "of_distance_means", "ncc_accuracy",
    "nc1_trace_ratio", "gnc2", "gnc2_energy", "classes_present", "class_count_min",
    "class_count_max", "effective_classes",
)
#: Output order of the ``metrics`` keys (docs/METRICS.md order).
METRIC_KEYS = (
    "nc1", "nc1_rank", "cdnv", "coincident_pairs", "equinorm_means", "equinorm_weights",
    "equiangle_means", "equiangle_weights", "maxangle_means", "maxangle_weights",
    "etf_distance_means", "etf_distance_weights", "of_distance_means", "of_distance_weights",
    "self_duality", "nc3_etf", "nc3_of", "bias_collapse", "accuracy", "ncc_accuracy",
    "ncc_mismatch", "nc1_trace_ratio", "gnc2", "gnc2_energy", "gnc2_weights",
    "gnc2_energy_weights", "unc3", "duality_mean", "classes_present", "class_count_min",
    "class_count_max", "effective_classes",
)
#: Keys computed for every ``/layers/<name>`` (depth-wise collapse).
LAYER_KEYS = ("nc1", "nc1_rank", "cdnv", "coincident_pairs", "etf_distance_means",
              "of_distance_means", "equinorm_means")


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
