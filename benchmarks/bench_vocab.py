"""Benchmark of ``ncanalyze report`` at vocabulary-sized class counts (issue 11).

Cases (one epoch each, weight + bias, Zipf(1.1) labels over C classes, so many are absent):

* ``vocab-gpt2``: C = 50,257, P = 768, N = 100,000, float16 features;
* ``vocab-llama``: C = 131,072, P = 2,048, N = 20,000, float32 (the memory case);
* ``classes-sweep``: N = 200,000, P = 768, C ∈ {1,000, 4,000, 16,000, 32,768}, float32.

For each case it prints, measured in the same run: the floor = h5py read of ``/features[0]``
+ one float32 ``HᵀH`` + the float32 decision products (N×P by P×C for the classifier and
N×P by P×C for the class means, in class tiles: N·P·2C multiply-adds); ``ncanalyze report``'s
wall time (in a fresh process, after imports) and its ratio to the floor; its peak RSS
against the issue's bound 4·C·P·8 bytes + 1 GiB.

Files are generated once into ``--dir`` (default /tmp/ncbench_vocab, never the repository).
Run under the project's benchmark lock, e.g.::

    flock /tmp/bench.lock python benchmarks/bench_vocab.py --case vocab-gpt2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np

CASES = {
    "vocab-gpt2": [dict(c=50_257, p=768, n=100_000, dtype="float16")],
    "vocab-llama": [dict(c=131_072, p=2_048, n=20_000, dtype="float32")],
    "classes-sweep": [dict(c=c, p=768, n=200_000, dtype="float32")
                      for c in (1_000, 4_000, 16_000, 32_768)],
}
GIB = 2**30


def zipf_labels(c: int, n: int, rng, s: float = 1.1) -> np.ndarray:
    """n labels with P(class of rank k) ∝ k^-s over a random ranking of the C classes."""
    p = 1.0 / np.arange(1, c + 1) ** s
    ranks = rng.choice(c, size=n, p=p / p.sum())
    return rng.permutation(c)[ranks].astype(np.int64)


def write_case(path: str, c: int, p: int, n: int, dtype: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    y = zipf_labels(c, n, rng)
    with h5py.File(path + ".part", "w") as f:
        f.attrs["ncanalyze_format"] = 1
        f.attrs["num_classes"] = c
        f["/labels"] = y
        f["/epoch"] = np.array([1], dtype=np.int64)
        feats = f.create_dataset("/features", (1, n, p), dtype=dtype,
                                 chunks=(1, max(1, min(n, 2**22 // (p * 4))), p))
        w = f.create_dataset("/weight", (1, c, p), dtype="float32")
        # Class means (generated block by block from a per-block seed), features near them,
        # W = means + noise.
        block = 4096
        means = np.empty((c, p), dtype=np.float32)
        for c0 in range(0, c, block):
            c1 = min(c, c0 + block)
            means[c0:c1] = np.random.default_rng([seed, c0]).standard_normal((c1 - c0, p),
                                                                            dtype=np.float32)
            w[0, c0:c1] = means[c0:c1] + 0.3 * rng.standard_normal((c1 - c0, p),
                                                                   dtype=np.float32)
        for r0 in range(0, n, 8192):
            r1 = min(n, r0 + 8192)
            h = means[y[r0:r1]] + 0.5 * rng.standard_normal((r1 - r0, p), dtype=np.float32)
            feats[0, r0:r1] = h.astype(dtype)
        f["/bias"] = 0.1 * rng.standard_normal((1, c))
    os.replace(path + ".part", path)


def floor(path: str) -> dict[str, float]:
    """Seconds of the read, the float32 HᵀH and the float32 decision products."""
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        h = f["/features"][0]
        w = f["/weight"][0]
    t1 = time.perf_counter()
    h32 = h.astype(np.float32, copy=False)
    h32.T @ h32
    t2 = time.perf_counter()
    # N·P·2C: the logits against the C rows of W and the distances to C means (W stands in
    # for the means: same shapes), in tiles of 4096 rows × 4096 classes.
    for r0 in range(0, h32.shape[0], 4096):
        x = h32[r0:r0 + 4096]
        for _ in range(2):
            for c0 in range(0, w.shape[0], 4096):
                x @ w[c0:c0 + 4096].T
    t3 = time.perf_counter()
    return {"read": t1 - t0, "hth": t2 - t1, "decisions": t3 - t2, "floor": t3 - t0}


CHILD = """
import contextlib, io, json, resource, sys, time
from ncanalyze.cli import app
out = io.StringIO()
t0 = time.perf_counter()
with contextlib.redirect_stdout(out):
    code = app(sys.argv[1:], prog_name="ncanalyze", standalone_mode=False)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "code": code,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "output": out.getvalue()}))
"""


def report(path: str, dtype: str) -> dict:
    """``ncanalyze report`` in a fresh process (through an intermediate one, so that this
    process's peak RSS does not leak into the child's ru_maxrss)."""
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    args = [sys.executable, "-c", launcher, sys.executable, "-c", CHILD, "report", path,
            "--format", "json", "--backend", "numpy", "--dtype", dtype, "--quiet",
            "--workers", "1"]
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"report failed ({res.returncode}): {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--dir", default="/tmp/ncbench_vocab")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="report's --dtype (precision of the statistics products)")
    ap.add_argument("--classes", type=int, nargs="*", help="classes-sweep: only these C")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    for name in (CASES if args.case == "all" else [args.case]):
        for spec in CASES[name]:
            if args.classes and spec["c"] not in args.classes:
                continue
            c, p, n = spec["c"], spec["p"], spec["n"]
            path = os.path.join(args.dir, f"{name}-C{c}-P{p}-N{n}-{spec['dtype']}.h5")
            if not os.path.exists(path):
                t = time.perf_counter()
                write_case(path, **spec)
                print(f"   wrote {path} in {time.perf_counter() - t:.0f} s")
            fl = floor(path)
            out = report(path, args.dtype)
            epoch = json.loads(out["output"])["epochs"][0]
            rss = out["maxrss_kib"] * 1024
            bound = 4 * c * p * 8 + GIB
            print(f"{name}: C={c} P={p} N={n} {spec['dtype']} present={epoch['classes_present']}"
                  f" effective={epoch['effective_classes']:.0f}")
            print(f"   floor {fl['floor']:.1f} s (read {fl['read']:.1f}, HᵀH {fl['hth']:.1f}, "
                  f"decision products {fl['decisions']:.1f})")
            print(f"   report --dtype {args.dtype}: {out['seconds']:.1f} s, "
                  f"ratio {out['seconds'] / fl['floor']:.2f}; peak RSS {rss / GIB:.2f} GiB, "
                  f"bound 4·C·P·8 B + 1 GiB = {bound / GIB:.2f} GiB "
                  f"({'within' if rss <= bound else 'ABOVE'}); load {os.getloadavg()[0]:.1f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
