"""Run files: the only package that touches h5py."""

from .run import Run, RunInfo, Source, open_run
from .writer import RunWriter, to_numpy

__all__ = ["Run", "RunInfo", "Source", "open_run", "RunWriter", "to_numpy"]
