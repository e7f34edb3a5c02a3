"""Decompression by chunk geometry (issue 10 item 5): time `metrics` on a gzip file whose
chunks (256 MiB each) are far larger than one read (16 MiB).

Usage: ``flock /tmp/bench.lock python benchmarks/bench_chunk_bomb.py [FOLDER]``. Writes
``bomb.h5`` (two epochs, N = 2**21, P = 32, chunks (1, N, P), gzip, ~33 MB) and the same data
uncompressed as ``plain.h5``, then times ``ncanalyze metrics`` on both and checks that the
outputs are identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import h5py
import numpy as np


def build(folder: str) -> tuple[str, str]:
    n, p = 2**21, 32
    y = (np.arange(n) % 4).astype(np.int64)
    x = np.zeros((n, p), np.float32)
    x[np.arange(n), y] = 1.0
    x[:, 5] = (np.arange(n) % 7).astype(np.float32)
    paths = []
    for name, kw in (("bomb.h5", {"compression": "gzip", "chunks": (1, n, p)}), ("plain.h5", {})):
        path = os.path.join(folder, name)
        with h5py.File(path, "w") as f:
            f.attrs["ncanalyze_format"] = 1
            f["labels"] = y
            f["epoch"] = np.array([1, 2], dtype=np.int64)
            ds = f.create_dataset("features", shape=(2, n, p), dtype="f4", **kw)
            for e in range(2):
                ds[e] = x
        paths.append(path)
    return paths[0], paths[1]


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    outputs = {}
    for path in build(folder):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "ncanalyze", "metrics", path, "-f", "csv",
                              "--quiet"], capture_output=True, text=True, check=True).stdout
        print(f"{os.path.basename(path)}: {time.perf_counter() - start:.2f} s "
              f"({os.path.getsize(path) / 2**20:.0f} MiB on disk)")
        outputs[path] = out
    print("outputs identical:", len(set(outputs.values())) == 1)
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
