"""``ncanalyze metrics``: the per-epoch geometry of docs/METRICS.md."""

from __future__ import annotations

from ..options import (AllowExternalOpt, BackendOpt, CenterWeightsOpt, ChunkRowsOpt, DaskOpt,
                       DtypeOpt, EpochsOpt, FailIfOpt, FollowOpt, FormatOpt, GateOpt,
                       GlobalMeanOpt, KeysOpt, LayersOpt, OutputOpt, RunFile, ShowAllOpt,
                       SplitsOpt, TimeoutOpt, WorkersOpt)
from ..options import MemoryLimitOpt, RequireAllClassesOpt
from ...api import QUANTITIES
from ...settings import Settings
from ..runner import View, run_command

EPILOG = "Example: ncanalyze metrics run.h5 --epochs 10:200 --format json --fail-if 'nc1>0.05'"


def metrics(file: RunFile, epochs: EpochsOpt = None, backend: BackendOpt = "auto",
            dtype: DtypeOpt = "float64", fmt: FormatOpt = "table", output_path: OutputOpt = None,
            fail_if: FailIfOpt = None, gate: GateOpt = "last", splits: SplitsOpt = None,
            layers: LayersOpt = False, global_mean: GlobalMeanOpt = "samples",
            center_weights: CenterWeightsOpt = False, chunk_rows: ChunkRowsOpt = None,
            allow_external: AllowExternalOpt = False, workers: WorkersOpt = None,
            dask: DaskOpt = None,
            keys: KeysOpt = None, show_all: ShowAllOpt = False, follow: FollowOpt = False,
            timeout: TimeoutOpt = None,
            require_all_classes: RequireAllClassesOpt = False,
            memory_limit: MemoryLimitOpt = None) -> int:
    """NC1–NC4, equinorm/equiangle, ETF and orthogonal-frame distances per epoch
    (docs/METRICS.md)."""
    settings = Settings(
        quantities=QUANTITIES["metrics"],
        epochs=epochs, backend=backend, dtype=dtype, splits=tuple(splits) if splits else None,
        layers=layers, global_mean=global_mean, center_weights=center_weights,
        chunk_rows=chunk_rows, allow_external=allow_external, workers=workers, dask=dask,
        require_all_classes=require_all_classes, memory_limit=memory_limit)
    view = View(fmt=fmt, output_path=output_path, fail_if=fail_if, gate=gate, keys=keys,
                show_all=show_all)
    return run_command("metrics", file, settings, view, follow=follow, timeout=timeout)
