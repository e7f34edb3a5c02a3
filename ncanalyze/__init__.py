"""ncanalyze: measure Neural Collapse from saved training dumps.

Python API (docs/TUTORIAL.md)::

    import ncanalyze
    run = ncanalyze.open_run("run.h5")               # lazy, validated, read-only
    with ncanalyze.RunWriter("run.h5", labels) as w:  # from a training loop
        w.add_epoch(epoch, features, weight, bias, train_loss=loss)
    ncanalyze.nc_metrics(H, y, W, b)                  # §2.2 on arrays (NumPy, CuPy, torch)
    ncanalyze.decompose(H, y, W, b, weight_decay=λ)   # §2.3
    ncanalyze.snr(H, y)                               # §2.4
    ncanalyze.least_squares_classifier(H, y)          # W̃_LS of §2.3
    ncanalyze.report("run.h5")                        # = `ncanalyze report run.h5 -f json`
    ncanalyze.api.snr("run.h5", time="lr")            # likewise metrics / decompose / snr of a run

The in-memory functions compute on the device of ``H``, detach tensors that require grad and
return plain Python numbers. ``import ncanalyze`` never imports CuPy or PyTorch.
"""

from __future__ import annotations

from ._version import __version__  # noqa: E402
from .errors import BackendError, InputError, NcanalyzeError, OutputError, UsageError  # noqa: E402
from .io import RunWriter, open_run  # noqa: E402
from .core.metrics import nc_metrics  # noqa: E402
from .core.accumulator import class_stats  # noqa: E402
from .core.stats import ClassStats  # noqa: E402
from .analysis import Analysis, analyze  # noqa: E402
from . import api  # noqa: E402
from .api import report  # noqa: E402
from .settings import Settings  # noqa: E402

_LAZY = {
    "decompose": ("ncanalyze.core.decomposition", "decompose"),
    "least_squares_classifier": ("ncanalyze.core.decomposition", "least_squares_classifier"),
    "snr": ("ncanalyze.core.snr", "snr"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ncanalyze' has no attribute {name!r}")


__all__ = [
    "__version__", "open_run", "RunWriter", "nc_metrics", "decompose", "snr",
    "least_squares_classifier", "class_stats", "ClassStats", "Analysis", "Settings", "analyze",
    "report", "api",
    "NcanalyzeError", "InputError", "UsageError", "OutputError", "BackendError",
]
