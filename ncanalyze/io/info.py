"""What a run file declares, once validated (:mod:`ncanalyze.io.schema`): its sources and facts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Source:
    """One feature matrix family of a run: the training split, a layer or an extra split.

    Attributes
    ----------
    kind : {"train", "layer", "split"}
    name : str
        ``"train"``, the layer name or the split name.
    path : str
        HDF5 path of the ``(E, n, p)`` features dataset.
    labels_path : str
        HDF5 path of the ``(n,)`` labels dataset.
    num_samples, num_features : int
    feature_dtype : str
        The precision the features had: ``"float16"``, ``"bfloat16"``, ``"float32"`` or
        ``"float64"`` (a statistics run records it; rank cut-offs derive from it).

    In a statistics run (docs/FORMAT.md, "Statistics runs") ``path`` is the HDF5 group of the
    source's statistics and ``labels_path`` is ``None`` when the file stores no labels.
    """

    kind: str
    name: str
    path: str
    labels_path: str | None
    num_samples: int
    num_features: int
    feature_dtype: str = "float32"


@dataclass
class RunInfo:
    """What a run file declares, validated (no bulk data read)."""

    path: str
    num_classes: int
    num_samples: int
    num_features: int
    epochs: np.ndarray
    features_dtype: np.dtype
    has_weight: bool
    has_bias: bool
    weight_decay: float | None
    loss: str | None
    format_version: int | None
    scalars: list[str] = field(default_factory=list)
    #: Optimiser steps per epoch (root attribute), for the SNR dynamics' time axis.
    steps_per_epoch: int | None = None
    layers: dict[str, Source] = field(default_factory=dict)
    splits: dict[str, Source] = field(default_factory=dict)
    #: ``"features"`` (per-sample features) or ``"statistics"`` (docs/FORMAT.md).
    kind: str = "features"
    #: The training data as a :class:`Source`.
    train: Source | None = None
