#!/usr/bin/env python
"""Where torch-CPU time goes against NumPy on a vocabulary-sized run (docs/PERFORMANCE.md,
"torch on the CPU").

One run file: C = 4,097 classes (Zipf(1.2) labels, every class present), P = 128 float32
features, N = 60,000 rows, 2 epochs, W and b — the shape of a word-level language model's
last layer. ``metrics`` is computed in-process with ``--workers 1`` on each backend,
interleaved, ``--reps`` times; the wall time is split into the statistics pass (read +
class statistics), the decision pass (classifier and NCC argmax/argmin over class tiles)
and the formulas (everything else).

    flock /tmp/fullsuite.lock python benchmarks/bench_torch_cpu.py --reps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

import numpy as np


def make_run(path: str) -> None:
    from ncanalyze.io import RunWriter

    rng = np.random.default_rng(0)
    c, p, n = 4097, 128, 60000
    y = np.minimum(rng.zipf(1.2, size=n) - 1, c - 1)
    y[:c] = np.arange(c)
    means = rng.normal(size=(c, p))
    h = (means[y] + rng.normal(size=(n, p))).astype(np.float32)
    w, b = rng.normal(size=(c, p)), rng.normal(size=c)
    with RunWriter(path, y, num_classes=c, overwrite=True) as writer:
        for epoch, scale in ((1, 1.0), (2, 1.01)):
            writer.add_epoch(epoch, h * np.float32(scale), w, b)


def timed(backend: str, path: str) -> dict[str, float]:
    from ncanalyze import analysis, passes
    from ncanalyze.settings import Settings

    spent: dict[str, float] = defaultdict(float)
    originals = {"statistics pass": passes.EpochPasses.stats,
                 "decision pass": passes.EpochPasses.decisions}

    def wrap(name, fn):
        def inner(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t
        return inner

    attrs = {"statistics pass": "stats", "decision pass": "decisions"}
    for name, fn in originals.items():
        setattr(passes.EpochPasses, attrs[name], wrap(name, fn))
    try:
        t = time.perf_counter()
        analysis.analyze(path, Settings(backend=backend, quantities=("metrics",), workers=1))
        total = time.perf_counter() - t
    finally:
        passes.EpochPasses.stats = originals["statistics pass"]
        passes.EpochPasses.decisions = originals["decision pass"]
    spent["formulas and the rest"] = total - sum(spent.values())
    spent["total"] = total
    return dict(spent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--file", default="/tmp/ncbench_torch_cpu.h5")
    ap.add_argument("--backends", default="numpy,torch:cpu")
    args = ap.parse_args()
    if not os.path.exists(args.file):
        make_run(args.file)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    backends = args.backends.split(",")
    for _ in range(args.reps):
        for be in backends:
            runs[be].append(timed(be, args.file))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    phases = list(runs[backends[0]][0])
    print(f"{'seconds (median of ' + str(args.reps) + ')':32}" + "".join(f"{b:>12}" for b in backends))
    for phase in phases:
        print(f"{phase:32}" + "".join(
            f"{statistics.median(r[phase] for r in runs[b]):12.2f}" for b in backends))
    if len(backends) == 2:
        a, b = (statistics.median(r["total"] for r in runs[x]) for x in backends)
        print(f"{backends[1]} / {backends[0]}: {b / a:.2f}x")


if __name__ == "__main__":
    main()
