"""RunWriter -> open_run round trips (docs/FORMAT.md, the Python API): dtypes, splits, layers, scalars, torch."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ncanalyze import InputError, RunWriter, UsageError, open_run
from ncanalyze.io import to_numpy
from ncanalyze.io.h5 import DEFAULT_CHUNK_BYTES

N, C, P = 90, 3, 5


def _features(rows: np.ndarray) -> np.ndarray:
    return np.concatenate(list(rows))


def _all(run, epoch, source=None, rows=None):
    return _features([c for c, _ in run.iter_chunks(epoch, source, rows=rows)])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_round_trip_dtypes(tmp_path, rng, dtype, compression):
    y = rng.integers(0, C, N)
    y[:C] = np.arange(C)
    epochs = [0, 3, 10]
    data = {e: (rng.standard_normal((N, P)).astype(dtype), rng.standard_normal((C, P)),
                rng.standard_normal(C).astype(np.float32)) for e in epochs}
    path = tmp_path / "run.h5"
    with RunWriter(path, y, num_classes=C, weight_decay=5e-4, loss="mse",
                   compression=compression) as w:
        for e in epochs:
            h, W, b = data[e]
            w.add_epoch(e, h, W, b, train_loss=e / 2, lr=np.float32(0.1))
    with open_run(path) as run:
        info = run.info
        assert (info.num_classes, info.num_samples, info.num_features) == (C, N, P)
        assert info.features_dtype == dtype and info.format_version == 1
        assert info.weight_decay == 5e-4 and info.loss == "mse"
        assert info.has_weight and info.has_bias and sorted(info.scalars) == ["lr", "train_loss"]
        assert list(run.epochs) == epochs
        assert np.array_equal(run.labels(), y)
        assert np.array_equal(run.class_counts(), np.bincount(y, minlength=C))
        for e in epochs:
            h, W, b = data[e]
            got = _all(run, e)
            assert got.dtype == dtype and np.array_equal(got, h)
            assert np.array_equal(_all(run, e, rows=7), h)  # uneven chunks
            assert np.array_equal(run.weight(e), W) and run.weight(e).dtype == np.float64
            assert np.array_equal(run.bias(e), b) and run.bias(e).dtype == np.float32
            assert run.scalars(e) == {"train_loss": e / 2, "lr": float(np.float32(0.1))}
        with pytest.raises(InputError, match="epoch 4 is not in the file"):
            run.weight(4)


def test_layers_and_splits(tmp_path, rng):
    y = np.arange(N) % C
    yt = np.arange(30) % C
    path = tmp_path / "run.h5"
    data = {}
    with RunWriter(path, y, splits={"test": yt}) as w:
        for e in (1, 2):
            d = data[e] = {"h": rng.standard_normal((N, P)), "l1": rng.standard_normal((N, 7)),
                           "l2": rng.standard_normal((N, 2)).astype(np.float16),
                           "ht": rng.standard_normal((30, P)).astype(np.float32)}
            w.add_epoch(e, d["h"], layers={"block1": d["l1"], "block2": d["l2"]},
                        splits={"test": d["ht"]})
    with open_run(path) as run:
        info = run.info
        assert not info.has_weight and not info.has_bias and run.weight(1) is None
        assert run.bias(1) is None and run.scalars(1) == {}
        assert sorted(info.layers) == ["block1", "block2"]
        assert info.layers["block1"].num_features == 7
        test = info.splits["test"]
        assert (test.num_samples, test.num_features) == (30, P)
        assert np.array_equal(run.labels(test), yt)
        for e in (1, 2):
            d = data[e]
            assert np.array_equal(_all(run, e), d["h"])
            assert np.array_equal(_all(run, e, info.layers["block1"]), d["l1"])
            l2 = _all(run, e, info.layers["block2"])
            assert l2.dtype == np.float16 and np.array_equal(l2, d["l2"])
            chunks = list(run.iter_chunks(e, test, rows=8))
            assert np.array_equal(_features([c for c, _ in chunks]), d["ht"])
            assert np.array_equal(np.concatenate([lab for _, lab in chunks]), yt)


def test_torch_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    y = torch.arange(N) % C
    feats = torch.randn(N, P, requires_grad=True) * 2  # non-leaf, tracks gradients
    layer = torch.nn.Linear(P, C)  # weight/bias are requires_grad Parameters
    path = tmp_path / "torch.h5"
    with RunWriter(path, y, loss="ce") as w:
        w.add_epoch(1, feats, layer.weight, layer.bias, train_loss=torch.tensor(0.25),
                    layers={"half": feats.half()})
        w.add_epoch(2, feats.detach().double(), layer.weight, layer.bias,
                    train_loss=torch.tensor(0.125), layers={"half": feats.half()})
    with open_run(path) as run:
        assert run.info.features_dtype == np.float32
        assert np.array_equal(_all(run, 1), feats.detach().numpy())
        assert np.array_equal(_all(run, 2), feats.detach().numpy())  # float64 -> column dtype
        assert np.array_equal(run.weight(1), layer.weight.detach().numpy())
        assert np.array_equal(run.bias(2), layer.bias.detach().numpy())
        assert np.array_equal(_all(run, 1, run.info.layers["half"]),
                              feats.detach().half().numpy())
        assert run.scalars(2) == {"train_loss": 0.125}


def test_to_numpy_duck_types():
    class ViaArray:
        def __array__(self, dtype=None, copy=None):
            return np.arange(3.0)

    class ViaDLPack:
        def __init__(self):
            self.a = np.arange(4.0)

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    assert np.array_equal(to_numpy(ViaArray()), np.arange(3.0))
    assert np.array_equal(to_numpy(ViaDLPack()), np.arange(4.0))
    torch = pytest.importorskip("torch")
    t = torch.ones(2, 2, requires_grad=True)
    assert np.array_equal(to_numpy(t * 3), np.full((2, 2), 3.0))


def test_writer_usage_errors(tmp_path, rng):
    y = np.arange(N) % C
    path = tmp_path / "w.h5"
    with RunWriter(path, y) as w:
        with pytest.raises(UsageError, match=r"features must have shape \(90, P\)"):
            w.add_epoch(1, rng.standard_normal((N - 1, P)))
        with pytest.raises(UsageError, match="weight must have shape"):
            w.add_epoch(1, rng.standard_normal((N, P)), rng.standard_normal((C + 1, P)))
        w.add_epoch(1, rng.standard_normal((N, P)), train_loss=1.0)
        with pytest.raises(UsageError, match="not larger than the previous"):
            w.add_epoch(1, rng.standard_normal((N, P)), train_loss=1.0)
        with pytest.raises(UsageError, match="same arrays and scalars"):
            w.add_epoch(2, rng.standard_normal((N, P)))
        with pytest.raises(UsageError, match="first epoch had"):
            w.add_epoch(2, rng.standard_normal((N, P + 1)), train_loss=1.0)
        w.add_epoch(2, rng.standard_normal((N, P)), train_loss=0.5)
    with pytest.raises(UsageError, match="add_epoch on a closed RunWriter"):
        w.add_epoch(3, rng.standard_normal((N, P)), train_loss=0.1)
    with open_run(path) as run:  # the refused calls left no trace
        assert list(run.epochs) == [1, 2]
    with pytest.raises(UsageError, match="exists"):
        RunWriter(path, y)
    with pytest.raises(UsageError, match="labels: has 30 label.s. ≥ C = 3"):
        RunWriter(tmp_path / "x.h5", y + 1, num_classes=3)
    with pytest.raises(UsageError, match="labels: has negative labels"):
        RunWriter(tmp_path / "x.h5", y - 1)
    with pytest.raises(UsageError, match="integers"):
        RunWriter(tmp_path / "x.h5", y + 0.5)
    with pytest.raises(UsageError, match="split 'test'"):
        RunWriter(tmp_path / "x.h5", y, splits={"test": np.array([0, 5])})
    assert not (tmp_path / "x.h5").exists()
    RunWriter(path, y, overwrite=True).close()
    with pytest.raises(InputError, match="no complete epoch yet"):
        open_run(path)


def test_no_temporary_files_left(tmp_path, rng):
    y = np.arange(N) % C
    with RunWriter(tmp_path / "r.h5", y) as w:
        for e in range(3):
            w.add_epoch(e, rng.standard_normal((N, P)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def test_chunk_reads_stay_within_budget(tmp_path, rng):
    # HDF5 chunks of 64 rows, rows of 40 bytes: a 1000-byte budget reads 25 rows, not 64.
    y = np.arange(200) % C
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["labels"] = y
        f["epoch"] = [1]
        f.create_dataset("features", data=rng.standard_normal((1, 200, 5)), chunks=(1, 64, 5))
    with open_run(path) as run:
        assert run.chunk_rows(chunk_bytes=1000) == 25
        assert run.chunk_rows(chunk_bytes=64 * 40 * 2 + 100) == 128  # whole HDF5 chunks
        assert run.chunk_rows() == 200
        sizes = [c.nbytes for c, _ in run.iter_chunks(1, rows=run.chunk_rows(chunk_bytes=1000))]
        assert max(sizes) <= 1000 and sum(sizes) == 200 * 40
    assert DEFAULT_CHUNK_BYTES <= 64 * 2**20


def test_reader_opens_read_only(tmp_path, rng):
    path = tmp_path / "ro.h5"
    with RunWriter(path, np.arange(N) % C) as w:
        w.add_epoch(1, rng.standard_normal((N, P)))
    with open_run(path) as run:
        assert run._file.mode == "r"
        with pytest.raises((OSError, ValueError, KeyError)):
            run._file.create_dataset("x", data=[1])
