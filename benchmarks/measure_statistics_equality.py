"""A features run and its statistics run (`ncanalyze convert --statistics`) give the same
report: every number of `ncanalyze report -f json` compared, the largest relative difference
printed, with the two file sizes.

    python benchmarks/measure_statistics_equality.py examples/digits_mlp.h5
"""
import json
import math
import os
import subprocess
import sys
import tempfile

src = sys.argv[1] if len(sys.argv) > 1 else "examples/digits_mlp.h5"
d = tempfile.mkdtemp()
subprocess.run(["ncanalyze", "convert", "--statistics", src, f"{d}/s.h5", "-q"], check=True)
def doc(path):
    out = subprocess.run(["ncanalyze", "report", path, "-f", "json", "-q"], check=False,
                         capture_output=True,
                         text=True)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)
a, b = doc(src), doc(f"{d}/s.h5")
worst, n, where = 0.0, 0, None
def walk(x, y, path):
    global worst, n, where
    if isinstance(x, dict):
        for k in x:
            if k in ("file", "run", "elapsed_s", "source"):
                continue
            walk(x[k], y.get(k) if isinstance(y, dict) else None, path + "." + k)
    elif isinstance(x, list):
        for i, (u, v) in enumerate(zip(x, y or [])):
            walk(u, v, f"{path}[{i}]")
    elif isinstance(x, float) and isinstance(y, (float, int)) and math.isfinite(x):
        n += 1
        r = abs(x - y) / abs(x) if x else abs(y)
        if r > worst:
            worst, where = r, path
walk(a, b, "")
print(f"{src}: {n} numbers compared, max relative difference {worst:.3g}"
      f"{'' if where is None else ' at ' + where}; "
      f"sizes {os.path.getsize(src)/2**20:.1f} MiB -> {os.path.getsize(d + '/s.h5')/2**20:.2f} MiB")
