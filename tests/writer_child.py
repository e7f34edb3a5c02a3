"""The writer child program of the crash and live-reading tests: a RunWriter appending
deterministic epochs and saying ``done E`` after each (``python tests/writer_child.py child
PATH EPOCHS PAUSE``), and the checks of what it wrote."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time

import numpy as np

N, P, C, P_LAYER = 3000, 48, 6, 16
HERE = os.path.abspath(__file__)


@functools.lru_cache(maxsize=1)
def _base() -> tuple:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((N, P)).astype(np.float32), rng.standard_normal((C, P)),
            rng.standard_normal(C).astype(np.float32),
            rng.standard_normal((N, P_LAYER)).astype(np.float16))


def epoch_data(epoch: int) -> dict:
    """Deterministic, distinct content of one epoch (features, weight, bias, layer, scalar).

    Cheap to make (an offset of fixed random arrays), so that the writer spends its time in
    ``add_epoch`` and the random kills land there.
    """
    feats, weight, bias, layer = _base()
    return {
        "features": feats + np.float32(epoch),
        "weight": weight * epoch,
        "bias": bias - np.float32(epoch),
        "layer": layer + np.float16(epoch % 512),
        "train_loss": float(epoch) / 7.0,
    }


def labels() -> np.ndarray:
    return np.arange(N) % C


def child(path: str, epochs: int, pause: float) -> None:
    from ncanalyze import RunWriter

    print("ready", flush=True)
    with RunWriter(path, labels(), num_classes=C, loss="mse", weight_decay=5e-4) as w:
        for e in range(1, epochs + 1):
            d = epoch_data(e)
            w.add_epoch(e, d["features"], d["weight"], d["bias"],
                        layers={"block3": d["layer"]}, train_loss=d["train_loss"])
            print(f"done {e}", flush=True)
            if pause:
                time.sleep(pause)


def start_child(path, epochs=1000, pause=0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, HERE, "child", str(path), str(epochs), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class LineReader(threading.Thread):
    """Collect a child's stdout lines as they arrive."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines, self.ready = stream, [], threading.Event()

    def run(self):
        for line in self.stream:
            line = line.strip()
            if line == "ready":
                self.ready.set()
            self.lines.append(line)
        self.ready.set()

    def done(self) -> list[int]:
        return [int(x.split()[1]) for x in list(self.lines) if x.startswith("done ")]


def check_epoch(run, epoch: int) -> None:
    d = epoch_data(epoch)
    got = np.concatenate([c for c, _ in run.iter_chunks(epoch)])
    assert got.dtype == d["features"].dtype and np.array_equal(got, d["features"])
    w, b = run.weight(epoch), run.bias(epoch)
    assert w.dtype == d["weight"].dtype and np.array_equal(w, d["weight"])
    assert b.dtype == d["bias"].dtype and np.array_equal(b, d["bias"])
    layer = np.concatenate([c for c, _ in run.iter_chunks(epoch, run.info.layers["block3"])])
    assert layer.dtype == np.float16 and np.array_equal(layer, d["layer"])
    assert run.scalars(epoch) == {"train_loss": d["train_loss"]}


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
