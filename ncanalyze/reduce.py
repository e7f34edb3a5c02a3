"""``ncanalyze convert --statistics IN.h5 OUT.h5``: reduce a features run to a statistics run.

Every epoch, the training data, each layer and each split are reduced by exactly the passes
the analysis makes (:class:`~ncanalyze.analysis.Analysis`: the class statistics in float64,
then the decision pass with the epoch's final training means, docs/PERFORMANCE.md "One epoch
in two passes"), and written with :meth:`~ncanalyze.io.writer.RunWriter.add_statistics`, so
every command gives on the output the keys it gives on the input. It is also how an archive
of runs shrinks: an epoch becomes O(C·P + P²) numbers whatever N is.

The output is written under a temporary name and renamed, so a failed reduction leaves
nothing behind; the input is only read.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .analysis import Analysis
from .atomic import check_outputs
from .errors import InputError, UsageError
from .io.publish import publish_when_done
from .io.reader import open_run
from .settings import Settings


#: Parameter names of ``add_statistics``: a scalar so named cannot be passed (it is skipped
#: and listed in the result).
RESERVED = ("self", "epoch", "stats", "decisions", "weight", "bias", "layers", "splits",
            "feature_dtype")


def reduce_run(source, out, *, overwrite: bool = False, allow_external: bool = False,
               backend: str = "auto") -> dict:
    """Write the statistics run of the features run ``source`` to ``out``.

    Parameters
    ----------
    source : str or os.PathLike
        A features run (docs/FORMAT.md).
    out : str or os.PathLike
    overwrite : bool, default False
    allow_external : bool, default False
        As for every command (docs/RELIABILITY.md).
    backend : str, default "auto"
        Where the passes run (``--backend``).

    Returns
    -------
    dict
        ``{"epochs", "classes", "samples", "features", "layers", "splits", "input_bytes",
        "output_bytes", "skipped_scalars"}``.

    Raises
    ------
    InputError
        ``source`` is not a valid features run (a statistics run is refused: it is reduced
        already), or an epoch holds NaN/Inf.
    UsageError
        ``out`` exists and ``overwrite`` is false, is ``source`` itself, or is not a regular
        file.
    """
    source, out = os.fspath(source), os.fspath(out)
    with publish_when_done(out, overwrite=overwrite) as tmp:
        check_outputs({"output": out}, [source])
        with open_run(source, allow_external=allow_external) as run:
            if run.kind == "statistics":
                raise InputError("is a statistics run already (nothing to reduce)", file=source)
            splits = tuple(run.info.splits)
            # Every file the run reads is an input (external links, raw storage, virtual
            # sources with --allow-external): the output replaces none of them.
            check_outputs({"output": out}, run.inputs)
        settings = Settings(layers=True, splits=splits, allow_external=allow_external,
                            backend=backend, workers=1)
        with Analysis(source, settings) as analysis:
            _write(analysis, tmp)
    info = analysis.run.info
    return {"epochs": [int(e) for e in info.epochs], "classes": info.num_classes,
            "samples": info.num_samples, "features": info.num_features,
            "layers": sorted(info.layers), "splits": list(splits),
            "input_bytes": os.path.getsize(source), "output_bytes": os.path.getsize(out),
            "skipped_scalars": [k for k in info.scalars if k in RESERVED]}


def _write(a: Analysis, tmp: str) -> None:
    from .io.writer import RunWriter

    run, info, be, passes = a.run, a.run.info, a.backend, a.passes
    dtypes = {"train": run.train.feature_dtype,
              **{f"layers/{n}": s.feature_dtype for n, s in info.layers.items()},
              **{f"splits/{n}": s.feature_dtype for n, s in info.splits.items()}}
    try:
        writer = RunWriter(tmp, run.labels(), num_classes=info.num_classes,
                           weight_decay=info.weight_decay, loss=info.loss,
                           splits={n: run.labels(s) for n, s in info.splits.items()},
                           steps_per_epoch=info.steps_per_epoch, statistics=True)
    except UsageError as exc:  # a value the writer refuses came from the input file
        raise InputError(exc.reason, file=info.path) from exc
    with writer:
        for epoch in info.epochs:
            weight, bias = run.weight(epoch), run.bias(epoch)
            w_dev = None if weight is None else be.asarray(np.asarray(weight, np.float64),
                                                           "float64")
            b_dev = None if bias is None else be.asarray(np.asarray(bias, np.float64),
                                                         "float64")
            stats, cache = passes.stats(epoch, run.train, keep=True)
            means = be.asarray(stats.means, "float64")
            decisions = passes.decisions(epoch, run.train, cache, means, stats.class_ids, w_dev,
                                         b_dev)
            del cache
            layers = {n: passes.stats(epoch, s, keep=False)[0] for n, s in info.layers.items()}
            splits = {}
            for n, s in info.splits.items():
                sstats, scache = passes.stats(epoch, s, keep=True)
                splits[n] = (sstats, passes.decisions(epoch, s, scache, means, stats.class_ids,
                                                      w_dev, b_dev))
            scalars = {k: (math.nan if v is None else v) for k, v in run.scalars(epoch).items()
                       if k not in RESERVED}
            try:
                writer.add_statistics(epoch, stats, decisions, weight, bias, layers=layers,
                                      splits=splits, feature_dtype=dtypes, **scalars)
            except UsageError as exc:  # statistics the reader would refuse: the input's fault
                raise InputError(exc.reason, file=info.path, epoch=int(epoch)) from exc
