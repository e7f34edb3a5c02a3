"""``ncanalyze snr``: the SNR matrix' singular values per epoch and their dynamics fit."""

from __future__ import annotations

from ..options import (AllowExternalOpt, BackendOpt, ChunkRowsOpt, DaskOpt, DtypeOpt, EpochsOpt,
                       FailIfOpt, FollowOpt, FormatOpt, GateOpt, GlobalMeanOpt, KeysOpt,
                       OutputOpt, PlotOpt, RidgeOpt, RunFile, ShowAllOpt, TimeOpt, TimeoutOpt,
                       WorkersOpt, XscaleOpt)
from ..options import MemoryLimitOpt, RequireAllClassesOpt
from ...api import QUANTITIES
from ...settings import Settings
from ..runner import View, run_command

EPILOG = "Example: ncanalyze snr run.h5 --plot snr.png --format json --time lr"


def snr(file: RunFile, epochs: EpochsOpt = None, backend: BackendOpt = "auto",
        dtype: DtypeOpt = "float64", fmt: FormatOpt = "table", output_path: OutputOpt = None,
        fail_if: FailIfOpt = None, gate: GateOpt = "last", ridge: RidgeOpt = None,
        global_mean: GlobalMeanOpt = "samples", time: TimeOpt = "auto", plot: PlotOpt = None,
        xscale: XscaleOpt = "auto", chunk_rows: ChunkRowsOpt = None,
        allow_external: AllowExternalOpt = False, workers: WorkersOpt = None,
        dask: DaskOpt = None, keys: KeysOpt = None, show_all: ShowAllOpt = False,
        follow: FollowOpt = False, timeout: TimeoutOpt = None,
        require_all_classes: RequireAllClassesOpt = False,
        memory_limit: MemoryLimitOpt = None) -> int:
    """Singular values of the SNR matrix Σ_W^{-1/2} M̄ per epoch and their dynamics across
    epochs (Han et al. §3.2–3.3, docs/CENTRAL_PATH.md)."""
    settings = Settings(
        quantities=QUANTITIES["snr"],
        epochs=epochs, backend=backend, dtype=dtype, ridge=ridge, global_mean=global_mean,
        chunk_rows=chunk_rows, allow_external=allow_external, workers=workers, dask=dask,
        require_all_classes=require_all_classes, memory_limit=memory_limit)
    view = View(fmt=fmt, output_path=output_path, fail_if=fail_if, gate=gate, plot=plot,
                xscale=xscale, keys=keys, show_all=show_all)
    return run_command("snr", file, settings, view, time=time, follow=follow, timeout=timeout)
