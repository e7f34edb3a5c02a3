"""Run files: the only package that touches h5py.

h5.py opens files and holds the size limits, trust.py the untrusted-file rules (links,
external data, filters), schema.py the format and its validation, reader.py lazy reading,
writer.py :class:`RunWriter`, describe.py the tolerant walk behind ``ncanalyze inspect``.
"""

from .reader import Run, open_run
from .schema import RunInfo, Source
from .writer import RunWriter, to_numpy

__all__ = ["Run", "RunInfo", "Source", "open_run", "RunWriter", "to_numpy"]
