"""nc1 after a final LayerNorm (docs/METRICS.md, "Rank from the data's precision"): on the
test suite's word-level language model (tests/factories.word_lm_run: stdlib text, a final
LayerNorm, vocabulary 3,000, P = 32, float32 features), ncanalyze's nc1 and nc1_rank against
tests/reference.py cut at the float32 rounding and at the old max(P, K)·ε(float64) cut, and
the largest relative difference between the torch (CPU) and NumPy backends over every key.

    python benchmarks/measure_lm_precision.py      # ~20 s, needs torch
"""
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import h5py

from ncanalyze.analysis import analyze
from ncanalyze.settings import Settings
from tests.factories import word_lm_run
from tests.reference import reference_metrics

d = tempfile.mkdtemp()
path = word_lm_run(f"{d}/lm.h5")
q = ("metrics", "decompose", "snr")
_, ref = analyze(path, Settings(backend="numpy", quantities=q, workers=1))
_, tor = analyze(path, Settings(backend="torch:cpu", quantities=q, workers=1))
worst = 0.0
for a, b in zip(ref, tor):
    for k, v in a.values.items():
        w = b.values[k]
        if isinstance(v, list):
            pairs = zip(v, w)
        else:
            pairs = [(v, w)]
        for x, y in pairs:
            if x is None or y is None or isinstance(x, str):
                continue
            if isinstance(x, float) and (math.isnan(x)):
                continue
            worst = max(worst, abs(x - y) / max(abs(x), 1e-300) if x else abs(y))
print("torch:cpu vs numpy, max relative difference over every key of every epoch:", worst)
with h5py.File(path) as f:
    for i in range(f["features"].shape[0]):
        h, y, W, b = f["features"][i], f["labels"][:], f["weight"][i], f["bias"][i]
        C = int(f.attrs["num_classes"])
        r32 = reference_metrics(h, y, W, b, C=C, precision="float32")
        r64 = reference_metrics(h, y, W, b, C=C, precision="float64")
        got = ref[i].values
        print(f"epoch {ref[i].epoch}: nc1 ncanalyze {got['nc1']:.10g} (rank {got['nc1_rank']}), "
              f"reference cut at float32 rounding {r32['nc1']:.10g} (rank {r32['nc1_rank']}), "
              f"old float64 cut {r64['nc1']:.10g} (rank {r64['nc1_rank']}); "
              f"coincident_pairs {got['coincident_pairs']}, cdnv {got['cdnv']}, gnc2 {got['gnc2']}")
