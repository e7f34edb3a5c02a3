"""``ncanalyze decompose``: the MSE-loss decomposition of Han et al. (2022), Thm. 1–2."""

from __future__ import annotations

from ..options import (AllowExternalOpt, BackendOpt, ChunkRowsOpt, DaskOpt, DtypeOpt, EpochsOpt,
                       FailIfOpt, FollowOpt, FormatOpt, GateOpt, KeysOpt, OutputOpt, PlotOpt,
                       RunFile, ShowAllOpt, TimeoutOpt, WeightDecayOpt, WorkersOpt, XscaleOpt)
from ..options import MemoryLimitOpt, RequireAllClassesOpt
from ...api import QUANTITIES
from ...settings import Settings
from ..runner import View, run_command

EPILOG = ("Example: ncanalyze decompose run.h5 --weight-decay 5e-4 --plot loss.png "
          "--fail-if 'central_path_ratio>0.1'")


def decompose(file: RunFile, epochs: EpochsOpt = None, backend: BackendOpt = "auto",
              dtype: DtypeOpt = "float64", fmt: FormatOpt = "table",
              output_path: OutputOpt = None, fail_if: FailIfOpt = None, gate: GateOpt = "last",
              weight_decay: WeightDecayOpt = None, plot: PlotOpt = None,
              xscale: XscaleOpt = "auto", chunk_rows: ChunkRowsOpt = None,
              allow_external: AllowExternalOpt = False, workers: WorkersOpt = None,
              dask: DaskOpt = None, keys: KeysOpt = None, show_all: ShowAllOpt = False,
              follow: FollowOpt = False, timeout: TimeoutOpt = None,
              require_all_classes: RequireAllClassesOpt = False,
              memory_limit: MemoryLimitOpt = None) -> int:
    """MSE loss = L_NC1 + L_NC2/3 + L⊥_LS per epoch (Han et al. Thm. 1–2,
    docs/CENTRAL_PATH.md)."""
    settings = Settings(
        quantities=QUANTITIES["decompose"],
        epochs=epochs, backend=backend, dtype=dtype, weight_decay=weight_decay,
        chunk_rows=chunk_rows, allow_external=allow_external, workers=workers, dask=dask,
        require_all_classes=require_all_classes, memory_limit=memory_limit)
    view = View(fmt=fmt, output_path=output_path, fail_if=fail_if, gate=gate, plot=plot,
                xscale=xscale, keys=keys, show_all=show_all)
    return run_command("decompose", file, settings, view, follow=follow, timeout=timeout)
