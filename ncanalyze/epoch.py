"""All requested quantities of one epoch, from the passes over its sources.

:class:`EpochComputer` turns one epoch of an open run into an
:class:`~ncanalyze.settings.EpochResult`: the training statistics (and decision counts) feed
the ``metrics`` formulas, the decomposition and the SNR; the layers and splits get their own
passes. How a pass is run is pluggable (:class:`Passes`): in this process
(:class:`~ncanalyze.passes.EpochPasses`) or split over row ranges on workers
(:class:`ncanalyze.tasks.RowSplit`).

Nothing here opens a file or decides run-level questions (which splits exist, absent
classes, the memory plan): :class:`~ncanalyze.analysis.Analysis` does that once per run, and a
worker computing whole epochs receives the outcome (:class:`ncanalyze.tasks.EpochJob`).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from .backend import Backend
from .core.decisions import DecisionCounts
from .core.pairs import TILE_PROGRESS
from .core.metrics import ETF_IMPOSSIBLE, feature_metrics, nc_metrics_from_stats
from .core.stats import ClassStats
from .core.values import LAYER_KEYS
from .io.protocol import RunReader
from .io.schema import Source
from .settings import EpochResult, Settings


class Passes(Protocol):
    """How the two passes of one source are run (in process, or split over workers)."""

    def epoch_stats(self, epoch: int, source: Source, keep: bool) -> tuple[ClassStats, Any]:
        """Host statistics of ``source`` and the cache handed to :meth:`epoch_decisions`."""

    def epoch_decisions(self, epoch: int, source: Source, cache, train: ClassStats, means_dev,
                        w_dev, b_dev) -> DecisionCounts:
        """Decision counts of ``source`` with the training centres ``train`` (``means_dev`` on
        the device) and the classifier on the device."""


class LocalPasses:
    """:class:`Passes` computed in this process by :class:`~ncanalyze.passes.EpochPasses`."""

    def __init__(self, passes):
        self.passes = passes

    def epoch_stats(self, epoch, source, keep):
        return self.passes.stats(epoch, source, keep)

    def epoch_decisions(self, epoch, source, cache, train, means_dev, w_dev, b_dev):
        return self.passes.decisions(epoch, source, cache, means_dev, train.class_ids, w_dev,
                                     b_dev)


class EpochComputer:
    """Compute the quantities of ``settings`` for single epochs of an open run.

    Parameters
    ----------
    reader : RunReader
    settings : Settings
    backend : Backend
    tile_bytes : int
        From the memory plan.
    weight_decay : float
        λ of the decomposition (the option, else the run's attribute, else 0).
    passes : Passes
        How the passes are run.
    progress : callable, optional
        ``progress("pairs", count, size)`` as class-pair tiles are done (the passes report
        rows and decisions themselves).
    """

    def __init__(self, reader: RunReader, settings: Settings, backend: Backend,
                 tile_bytes: int, weight_decay: float, passes: Passes,
                 progress: Callable[[str, int, int], None] | None = None):
        self.reader = reader
        self.settings = settings
        self.backend = backend
        self.tile_bytes = tile_bytes
        self.weight_decay = weight_decay
        self.passes = passes
        self.progress = progress

    def compute(self, epoch: int) -> EpochResult:
        """All requested quantities of ``epoch`` (warnings prefixed ``epoch N:``)."""
        if self.progress is None:
            return self._compute(epoch)
        size, progress = self.reader.info.num_features, self.progress
        token = TILE_PROGRESS.set(lambda pairs: progress("pairs", pairs, size))
        try:
            return self._compute(epoch)
        finally:
            TILE_PROGRESS.reset(token)

    def _compute(self, epoch: int) -> EpochResult:
        s, run, be = self.settings, self.reader, self.backend
        weight = run.weight(epoch)
        bias = run.bias(epoch)
        # The formulas take the host statistics and W, b; the decision pass runs on the device.
        w = None if weight is None else np.asarray(weight, dtype=np.float64)
        b = None if bias is None else np.asarray(bias, dtype=np.float64)
        w_dev = None if w is None else be.asarray(w, "float64")
        b_dev = None if b is None else be.asarray(b, "float64")
        want_metrics = "metrics" in s.quantities
        train = run.train
        stats, cache = self.passes.epoch_stats(epoch, train, keep=want_metrics)
        means_dev = be.asarray(stats.means, "float64")
        values: dict[str, Any] = {"epoch": epoch}
        warnings: list[str] = []

        def take(res, prefix: str = "") -> None:
            values.update(res.values)
            warnings.extend(prefix + m for m in res.warnings)

        if want_metrics:
            pred = self.passes.epoch_decisions(epoch, train, cache, stats, means_dev, w_dev,
                                               b_dev)
            take(nc_metrics_from_stats(stats, w, b, pred, global_mean=s.global_mean,
                                       center_weights=s.center_weights, rtol=s.rtol,
                                       tile_bytes=self.tile_bytes))
        del cache
        if "decompose" in s.quantities and w is not None:  # no /weight: one run warning
            from .core.decomposition import decompose_from_stats

            take(decompose_from_stats(stats, w, b, weight_decay=self.weight_decay,
                                      tile_bytes=self.tile_bytes))
        if "snr" in s.quantities:
            from .core.snr import snr_from_stats

            take(snr_from_stats(stats, ridge=s.ridge, global_mean=s.global_mean))
        if want_metrics and s.layers and run.info.layers:
            values["layers"] = self._layers(epoch, warnings)
        if want_metrics and s.splits:
            values["splits"] = self._splits(epoch, stats, means_dev, w, b, w_dev, b_dev,
                                            warnings)
        scalars = run.scalars(epoch)
        if scalars:
            values["scalars"] = scalars
        # C − 1 > P is a fact of the run, said once among the run's warnings (run_checks).
        return EpochResult(epoch, values, [f"epoch {epoch}: {m}" for m in warnings
                                           if ETF_IMPOSSIBLE not in m])

    def _layers(self, epoch: int, warnings: list[str]) -> dict[str, dict[str, Any]]:
        """The depth-wise keys (``--layers``) of every layer."""
        s, layers = self.settings, {}
        for name, source in self.reader.info.layers.items():
            lstats, _ = self.passes.epoch_stats(epoch, source, keep=False)
            res = feature_metrics(lstats, global_mean=s.global_mean, rtol=s.rtol,
                                  keys=LAYER_KEYS, tile_bytes=self.tile_bytes)
            layers[name] = {k: res.values[k] for k in LAYER_KEYS if k in res.values}
            warnings.extend(f"layer {name}: {m}" for m in res.warnings)
        return layers

    def _splits(self, epoch, train, means_dev, w, b, w_dev, b_dev, warnings):
        """The metrics of every ``--split``, NCC taken with the training class means."""
        s, splits = self.settings, {}
        for name in s.splits:
            source = self.reader.info.splits[name]
            sstats, scache = self.passes.epoch_stats(epoch, source, keep=True)
            spred = self.passes.epoch_decisions(epoch, source, scache, train, means_dev, w_dev,
                                                b_dev)
            res = nc_metrics_from_stats(sstats, w, b, spred, global_mean=s.global_mean,
                                        center_weights=s.center_weights, rtol=s.rtol,
                                        tile_bytes=self.tile_bytes)
            splits[name] = res.values
            warnings.extend(f"split {name}: {m}" for m in res.warnings)
        return splits
