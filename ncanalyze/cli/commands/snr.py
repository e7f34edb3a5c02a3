"""``ncanalyze snr``: the SNR matrix' singular values per epoch and their dynamics fit."""

from __future__ import annotations

from ..options import (AllowExternalOpt, BackendOpt, ChunkRowsOpt, DaskOpt, DtypeOpt, EpochsOpt,
                       FailIfOpt, FollowOpt, FormatOpt, GateOpt, GlobalMeanOpt, KeysOpt,
                       OutputOpt, PlotOpt, RidgeOpt, RunFile, ShowAllOpt, TimeOpt, TimeoutOpt,
                       WorkersOpt, XscaleOpt)
from ..options import MemoryLimitOpt, RequireAllClassesOpt
from ..runner import run_command

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
    return run_command("snr", **locals())
