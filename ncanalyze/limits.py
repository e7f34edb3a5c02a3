"""The size limits of a run, shared by every layer that creates or reads one
(docs/RELIABILITY.md §1, "Size limits").

The reader (``io/schema.py``) refuses a file beyond them, the writer (``io/writer.py``),
``convert`` and ``simulate`` refuse to create one, and the Python API applies the class-count
limit to in-memory labels. Constants, not options: a run beyond them is split or re-chunked.
This module imports nothing.
"""

#: Largest P accepted: Σ_W is P×P float64 (3.94 GiB at this limit). An analysis plans ten such
#: matrices (ncanalyze/memory.py): at this limit it needs a machine with ~80 GiB available.
MAX_FEATURES = 23_000
#: Largest C accepted (memory is O(C·P): bounded by MAX_CLASSES_X_FEATURES and the analysis'
#: memory plan; this bounds the per-class vectors of length C).
MAX_CLASSES = 2**21
#: Largest C·P accepted: W and the class means are C×P float64 (2 GiB each at this limit).
MAX_CLASSES_X_FEATURES = 2**28
#: Largest N accepted: the labels are held in memory as int64 (1 GiB at this limit).
MAX_SAMPLES = 2**27
#: Largest number of epoch slots accepted.
MAX_EPOCHS = 10_000_000
#: Largest magnitude of a feature, class mean or classifier entry: the keys are polynomials of
#: degree up to 4 in them, summed over up to C·P·N terms, so (1e60)⁴·1e20 stays within float64
#: (~1.8e308) while every float32 value (≤ 3.4e38) is allowed. Within-class spread is held to
#: twice this (the spread of values within ±MAX_MAGNITUDE).
MAX_MAGNITUDE = 1e60
