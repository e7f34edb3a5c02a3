"""Benchmark of ``ncanalyze report`` against the floor and the peers' algorithms (issue 4).

Run from the repository root (takes ~5–10 minutes on 2 cores and needs ~3 GiB in --dir):

    python benchmarks/bench_report.py                 # all three cases
    python benchmarks/bench_report.py --cases 1 --reps 7
    python benchmarks/bench_report.py --cases 1 --backend numpy,torch:cpu

For each case it writes a synthetic run file (one epoch, float32 features near collapse) and
prints, with medians over interleaved repetitions measured in the same process:

* floor: h5py read of ``/features[e]`` + one float32 ``HᵀH`` (NumPy, i.e. BLAS syrk);
* ``report`` (metrics + decompose + snr in one pass, in-process through the CLI) on each
  backend of ``--backend`` (default ``numpy``; e.g. ``numpy,torch:cpu,cupy,torch:cuda``) with
  ``--dtype float64`` (default) and ``--dtype float32``: seconds per epoch, GB/s of features
  read end to end and the ratio to the floor. A GPU backend's floor is the read plus the
  upload and a float32 ``HᵀH`` on that device (synchronised);
* the peers' algorithms, re-implemented from their papers' descriptions: Σ_W by per-class
  accumulation of B×P×P per-sample outer products, NC1 through the full P×P pseudo-inverse of
  Σ_B, and a per-sample nearest-class-centre loop; the outer-product and NCC loops are timed
  on a subset of rows and scaled linearly to N (they are linear in N), which the output says;
* case 3 (streaming): ``report`` in a fresh subprocess, its peak RSS (getrusage) and the
  largest relative difference of its values from an in-memory float64 computation;
* GPU: when no GPU backend is asked for, a line saying whether CuPy or PyTorch sees a CUDA
  device here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np

CASES = {
    1: dict(n=50_000, p=512, c=10, name="N=50 000, P=512, C=10"),
    2: dict(n=100_000, p=2_048, c=1_000, name="N=100 000, P=2 048, C=1 000"),
    3: dict(n=2_000_000, p=256, c=10, name="N=2 000 000, P=256, C=10 (streaming)"),
}
REPORT_KEYS_CHECKED = ("nc1", "cdnv", "equinorm_means", "equiangle_means", "etf_distance_means",
                       "of_distance_means", "self_duality", "nc3_etf", "bias_collapse",
                       "accuracy", "ncc_accuracy", "ncc_mismatch")


# ---------------------------------------------------------------------- data
def write_run(path: str, n: int, p: int, c: int, seed: int = 0) -> None:
    """A run file (docs/FORMAT.md) with one epoch of float32 features near collapse, written in slices."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    labels[:c] = np.arange(c)
    means = rng.standard_normal((c, p)) * 2.0 + 0.5
    weight = (means - means.mean(0)) + 0.05 * rng.standard_normal((c, p))
    rows = max(1, (4 * 2**20) // (4 * p))
    with h5py.File(path, "w") as f:
        f.attrs["ncanalyze_format"] = 1
        f.attrs["num_classes"] = c
        f.attrs["loss"] = "mse"
        f.attrs["weight_decay"] = 5e-4
        f["labels"] = labels.astype(np.int64)
        f["epoch"] = np.array([1], dtype=np.int64)
        ds = f.create_dataset("features", (1, n, p), dtype=np.float32, chunks=(1, rows, p))
        step = 65_536
        for s in range(0, n, step):
            e = min(n, s + step)
            block = means[labels[s:e]] + 0.5 * rng.standard_normal((e - s, p))
            ds[0, s:e] = block.astype(np.float32)
        f["weight"] = weight[None].astype(np.float32)
        f["bias"] = (0.01 * rng.standard_normal((1, c))).astype(np.float32)


# ---------------------------------------------------------------------- timings
def floor(path: str) -> tuple[float, float]:
    """Seconds of (h5py read of /features[0], read + float32 HᵀH)."""
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        h = f["/features"][0]
    t1 = time.perf_counter()
    h.T @ h
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def device_floor(path: str, backend: str) -> float:
    """Seconds of the h5py read + upload + float32 HᵀH on a GPU backend's device."""
    from ncanalyze.backend import get_backend

    be = get_backend(backend)
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        h = f["/features"][0]
    x = be.asarray(h, np.float32)
    g = be.xp.matmul(x.T, x)
    float(g[0, 0])  # waits for the device
    return time.perf_counter() - t0


def is_gpu(backend: str) -> bool:
    return backend == "cupy" or backend.startswith("torch:cuda") or (
        backend == "torch" and gpu_status() is None)


_COMMAND: list = []  # the Click command Typer builds from the app, once per process
CLI_SETUP_SECONDS: list[float] = []


def cli_command():
    """The ``ncanalyze`` Click command, built once (``ncanalyze.cli.app`` rebuilds it from
    the function signatures on every call, ~40 ms: a per-process start-up cost like the
    imports, which a single ``ncanalyze report`` process pays once and which is not counted)."""
    if not _COMMAND:
        import typer

        from ncanalyze.cli import app

        t0 = time.perf_counter()
        _COMMAND.append(typer.main.get_command(app))
        CLI_SETUP_SECONDS.append(time.perf_counter() - t0)
    return _COMMAND[0]


def report_inprocess(path: str, dtype: str, backend: str = "numpy") -> float:
    """Seconds of ``ncanalyze report PATH --format json`` run in this process (CLI code, with
    the CLI's Click command already built: :func:`cli_command`)."""
    command = cli_command()
    args = ["report", path, "--format", "json", "--backend", backend, "--dtype", dtype,
            "--quiet"]
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = command.main(args, prog_name="ncanalyze", standalone_mode=False)
    dt = time.perf_counter() - t0
    if code not in (0, None):
        raise SystemExit(f"report exited with {code}")
    return dt


CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys, time
    from ncanalyze.cli import app
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = app(sys.argv[1:], prog_name="ncanalyze", standalone_mode=False)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "code": code, "base_kib": base,
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "output": out.getvalue()}))
""")


def report_subprocess(path: str, dtype: str, backend: str = "numpy") -> dict:
    """``report`` in a fresh Python process: seconds (after imports), peak RSS, JSON output."""
    # Through a small intermediate process: Linux carries the peak RSS of the address space a
    # process was started from into its ru_maxrss, and this benchmark holds GiBs at times.
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    args = [sys.executable, "-c", launcher, sys.executable, "-c", CHILD, "report", path,
            "--format", "json", "--backend", backend, "--dtype", dtype, "--quiet"]
    res = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- peers
def peer_outer_products(h: np.ndarray, labels: np.ndarray, means: np.ndarray,
                        batch: int) -> float:
    """Σ_W by per-class accumulation of B×P×P per-sample outer products (seconds; the class
    means come from an earlier pass over all rows)."""
    t0 = time.perf_counter()
    p = h.shape[1]
    sw = np.zeros((p, p), dtype=np.float32)
    for s in range(0, h.shape[0], batch):
        hb, yb = h[s:s + batch], labels[s:s + batch]
        for k in np.unique(yb):
            z = hb[yb == k] - means[k]
            sw += (z[:, :, None] * z[:, None, :]).sum(0)
    return time.perf_counter() - t0


def peer_pinv(h: np.ndarray, labels: np.ndarray, c: int) -> float:
    """NC1 through the full P×P pseudo-inverse of Σ_B (seconds; Σ_W given)."""
    t0 = time.perf_counter()
    means = np.stack([h[labels == k].mean(0) for k in range(c)]).astype(np.float64)
    mbar = means - means.mean(0)
    sb = mbar.T @ mbar / c
    np.linalg.pinv(sb)
    return time.perf_counter() - t0


def peer_ncc_loop(h: np.ndarray, means: np.ndarray) -> float:
    """Per-sample nearest-class-centre loop (seconds)."""
    t0 = time.perf_counter()
    for i in range(h.shape[0]):
        np.argmin(np.linalg.norm(h[i] - means, axis=1))
    return time.perf_counter() - t0


# ---------------------------------------------------------------------- GPU
def gpu_status() -> str | None:
    """None when CuPy or PyTorch sees a CUDA device, else why not."""
    from ncanalyze.backend import cupy_available, torch_cuda_available

    if cupy_available() or torch_cuda_available():
        return None
    return "neither CuPy nor PyTorch sees a CUDA device"


# ---------------------------------------------------------------------- report
def med(xs):
    return statistics.median(xs)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import numpy

    blas = "?"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                         for i in threadpool_info() if i["user_api"] == "blas")
    except Exception:  # noqa: BLE001 - informational only
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python "
            f"{platform.python_version()}, NumPy {numpy.__version__}, h5py {h5py.__version__}, "
            f"BLAS: {blas}; load average at start {os.getloadavg()[0]:.2f}")


def run_case(k: int, directory: str, reps: int, keep: bool, backends: list[str]) -> None:
    cfg = CASES[k]
    n, p, c = cfg["n"], cfg["p"], cfg["c"]
    path = os.path.join(directory, f"ncanalyze_bench_case{k}.h5")
    gib = n * p * 4 / 2**30
    print(f"\n== case {k}: {cfg['name']}  ({gib:.2f} GiB of float32 features, 1 epoch)")
    t0 = time.perf_counter()
    if not os.path.exists(path):
        write_run(path, n, p, c)
    print(f"   file {path} ready in {time.perf_counter() - t0:.1f} s (read from the page cache "
          "below: the file was just written)")
    try:
        streaming = k == 3
        dtypes = ("float64", "float32")
        reads, floors = [], []
        dev_floors: dict[str, list[float]] = {b: [] for b in backends if is_gpu(b)}
        times = {(b, d): [] for b in backends for d in dtypes}
        subs: dict[tuple[str, str], list[dict]] = {key: [] for key in times}
        for _ in range(reps):
            rd, fl = floor(path)
            reads.append(rd)
            floors.append(fl)
            for b in dev_floors:
                dev_floors[b].append(device_floor(path, b))
            for b in backends:
                for d in dtypes:
                    if streaming:
                        res = report_subprocess(path, d, b)
                        subs[b, d].append(res)
                        times[b, d].append(res["seconds"])
                    else:
                        times[b, d].append(report_inprocess(path, d, backend=b))
        fl = med(floors)
        nbytes = n * p * 4
        print(f"   floor (h5py read + float32 HᵀH): {fl:8.3f} s   (read alone {med(reads):.3f} s "
              f"= {nbytes / med(reads) / 1e9:.2f} GB/s)")
        for b, xs in dev_floors.items():
            print(f"   {b} floor (read + upload + device float32 HᵀH): {med(xs):8.3f} s")
        for b in backends:
            base = dev_floors.get(b, floors)
            for d in dtypes:
                xs = times[b, d]
                ratios = [x / f for x, f in zip(xs, base)]
                print(f"   report --backend {b} --dtype {d}: {med(xs):8.3f} s/epoch   "
                      f"{nbytes / med(xs) / 1e9:5.2f} GB/s read   ratio to floor "
                      f"{med(xs) / med(base):5.2f}  (per repetition "
                      f"{', '.join(f'{r:.2f}' for r in ratios)})")
        if "numpy" in backends:
            for b in backends:
                if b != "numpy":
                    print(f"   {b} / numpy (medians): " + ", ".join(
                        f"{d} {med(times[b, d]) / med(times['numpy', d]):.2f}×"
                        for d in dtypes))
        print(f"   repetitions: {reps}, interleaved floor / each backend × float64, float32; "
              "medians")
        if not streaming and CLI_SETUP_SECONDS:
            print(f"   not counted above: building the CLI's Click command from the Typer app, "
                  f"{CLI_SETUP_SECONDS[0] * 1e3:.0f} ms once per process (like the imports)")
        if streaming:
            for b in backends:
                for d in dtypes:
                    runs = subs[b, d]
                    peak = max(r["maxrss_kib"] for r in runs) / 1024
                    base_rss = runs[0]["base_kib"] / 1024
                    print(f"   peak RSS of report --backend {b} --dtype {d} (fresh process): "
                          f"{peak:.0f} MiB (after imports: {base_rss:.0f} MiB; limit 512 MiB)")
            b0 = backends[0]
            check_streaming(path, subs[b0, "float32"][-1]["output"],
                            subs[b0, "float64"][-1]["output"])
        elif "numpy" in backends:
            peers(path, n, p, c, med(times["numpy", "float64"]), med(times["numpy", "float32"]),
                  med(reads))
        if not dev_floors:
            why = gpu_status()
            print("   GPU: " + ("a CUDA device is usable here: add --backend cupy or torch:cuda"
                              if why is None else f"no GPU available on this machine ({why}); "
                              "no GPU numbers measured"))
    finally:
        if not keep:
            os.remove(path)


def peers(path: str, n: int, p: int, c: int, ours64: float, ours32: float, read: float) -> None:
    with h5py.File(path, "r") as f:
        hh = f["/features"][0]
        ll = f["/labels"][()]
    means_all = np.stack([hh[ll == k].mean(0) for k in range(c)])
    sub = min(n, max(200, int(2e9 // (p * p))))  # rows for the B×P×P loop (~2e9 entries)
    batch = max(1, min(128, (256 * 2**20) // (4 * p * p)))
    t_outer = peer_outer_products(hh[:sub], ll[:sub], means_all, batch) * n / sub
    t_pinv = peer_pinv(hh, ll, c)
    sub_ncc = min(n, 5000 if c <= 100 else 500)
    t_ncc = peer_ncc_loop(hh[:sub_ncc], means_all) * n / sub_ncc
    del hh
    total = read + t_outer + t_pinv + t_ncc
    print("   peers (re-implemented; linear parts timed on a subset and scaled to N):")
    print(f"     Σ_W by per-class B×P×P outer products (B={batch}, {sub} rows ×{n / sub:.0f}): "
          f"{t_outer:9.1f} s   (whole report --dtype float32 / this step: "
          f"{t_outer / ours32:.1f}× faster)")
    print(f"     NC1 by full P×P pinv of Σ_B:                         {t_pinv:9.2f} s   "
          f"(whole report --dtype float32 / this step: {t_pinv / ours32:.2f}×)")
    print(f"     per-sample NCC loop ({sub_ncc} rows ×{n / sub_ncc:.0f}):                  "
          f"{t_ncc:9.1f} s   (whole report --dtype float32 / this step: "
          f"{t_ncc / ours32:.1f}× faster)")
    print(f"     peer pipeline (read + the three): {total:.1f} s; report is {total / ours64:.1f}× "
          f"(--dtype float64) / {total / ours32:.1f}× (--dtype float32) faster while computing "
          "all of metrics+decompose+snr")


def check_streaming(path: str, out32: str, out64: str) -> None:
    """Largest relative difference of the streamed values from an in-memory float64 run."""
    from ncanalyze.core.accumulator import class_stats
    from ncanalyze.core.decisions import PredictionAccumulator
    from ncanalyze.core.metrics import nc_metrics_from_stats

    with h5py.File(path, "r") as f:
        h = f["/features"][0]
        labels = f["/labels"][()]
        w = f["/weight"][0].astype(np.float64)
        b = f["/bias"][0].astype(np.float64)
    t0 = time.perf_counter()
    # float64 products over the whole in-memory array, float64 per-sample scores.
    stats = class_stats(h, labels, int(labels.max()) + 1, compute_dtype="float64")
    pred = PredictionAccumulator(stats.means, w, b)
    for s in range(0, h.shape[0], 65_536):
        pred.update(h[s:s + 65_536].astype(np.float64), labels[s:s + 65_536])
    ref = nc_metrics_from_stats(stats, w, b, pred).values
    del h
    dt = time.perf_counter() - t0
    for name, out in (("float64", out64), ("float32", out32)):
        got = json.loads(out)["epochs"][0]
        worst, key = 0.0, None
        for k in REPORT_KEYS_CHECKED:
            if ref.get(k) is None or got.get(k) is None:
                continue
            rel = abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-300)
            if abs(got[k] - ref[k]) > 1e-9 and rel > worst:
                worst, key = rel, k
        print(f"   streamed report --dtype {name} vs in-memory float64 ({dt:.0f} s): largest "
              f"relative difference {worst:.1e}" + (f" ({key})" if key else "") +
              f" over {len(REPORT_KEYS_CHECKED)} keys (|diff| ≤ 1e-9 counts as equal)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="1,2,3")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 7/3/2)")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--backend", default="numpy",
                    help="comma list of backends to time (numpy, torch:cpu, cupy, torch:cuda, …)")
    args = ap.parse_args()
    import ncanalyze

    print(f"ncanalyze {ncanalyze.__version__} benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {machine()}")
    backends = [b.strip() for b in args.backend.split(",")]
    if any(b.startswith("torch") for b in backends):
        import torch

        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} intra-op threads, CUDA "
              f"{'available' if torch.cuda.is_available() else 'not available'}")
    for k in (int(x) for x in args.cases.split(",")):
        reps = args.reps or {1: 7, 2: 3, 3: 2}[k]
        run_case(k, args.dir, reps, args.keep, backends)


if __name__ == "__main__":
    main()
