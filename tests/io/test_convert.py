"""convert: folders of per-epoch dumps -> run file; clear errors on inconsistent input."""

import numpy as np
import pytest

from tests.conftest import run_cli
from ncanalyze.convert import convert, epoch_of
from ncanalyze.errors import InputError
from ncanalyze.io import open_run


def _dumps(folder, epochs=(0, 7, 12), n=30, p=6, c=3, weight=True, seed=0, name="epoch_{:03d}"):
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    y = np.arange(n) % c
    data = {}
    for e in epochs:
        d = {"features": rng.standard_normal((n, p)).astype(np.float32), "labels": y}
        if weight:
            d["weight"] = rng.standard_normal((c, p))
            d["bias"] = rng.standard_normal(c)
        np.savez(folder / (name.format(e) + ".npz"), **d)
        data[e] = d
    return data


def test_epoch_numbers_from_names():
    assert epoch_of("epoch_007.npz") == 7
    assert epoch_of("ep7.npz") == 7
    assert epoch_of("run3_epoch12.pt") == 12
    assert epoch_of("final.npz") is None


def test_npz_roundtrip(tmp_path):
    data = _dumps(tmp_path / "d")
    info = convert(tmp_path / "d", tmp_path / "run.h5", weight_decay=5e-4, loss="mse")
    assert info["epochs"] == [0, 7, 12]
    with open_run(tmp_path / "run.h5") as run:
        assert run.info.epochs.tolist() == [0, 7, 12]
        assert run.info.weight_decay == 5e-4 and run.info.loss == "mse"
        np.testing.assert_array_equal(run.labels(), data[0]["labels"])
        for e in (0, 7, 12):
            feats = np.concatenate([ch for ch, _ in run.iter_chunks(e)])
            np.testing.assert_array_equal(feats, data[e]["features"])
            np.testing.assert_allclose(run.weight(e), data[e]["weight"])
            np.testing.assert_allclose(run.bias(e), data[e]["bias"])


def test_epochs_sorted_numerically_not_lexically(tmp_path):
    _dumps(tmp_path / "d", epochs=(2, 10, 100), name="ep{}")
    assert convert(tmp_path / "d", tmp_path / "r.h5")["epochs"] == [2, 10, 100]


def test_features_only(tmp_path):
    _dumps(tmp_path / "d", weight=False)
    info = convert(tmp_path / "d", tmp_path / "r.h5")
    assert not info["weight"]
    with open_run(tmp_path / "r.h5") as run:
        assert not run.info.has_weight


def test_labels_that_change_are_refused(tmp_path):
    _dumps(tmp_path / "d")
    d = dict(np.load(tmp_path / "d" / "epoch_007.npz"))
    d["labels"] = np.roll(d["labels"], 1)
    np.savez(tmp_path / "d" / "epoch_007.npz", **d)
    with pytest.raises(InputError, match="labels differ"):
        convert(tmp_path / "d", tmp_path / "r.h5")
    assert not (tmp_path / "r.h5").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary left


def test_shapes_that_disagree_are_refused(tmp_path):
    _dumps(tmp_path / "d")
    d = dict(np.load(tmp_path / "d" / "epoch_012.npz"))
    d["features"] = d["features"][:, :4]
    np.savez(tmp_path / "d" / "epoch_012.npz", **d)
    with pytest.raises(InputError, match="epoch 12.*features shape"):
        convert(tmp_path / "d", tmp_path / "r.h5")


def test_weight_with_wrong_shape(tmp_path):
    _dumps(tmp_path / "d", epochs=(1,))
    d = dict(np.load(tmp_path / "d" / "epoch_001.npz"))
    d["weight"] = d["weight"][:, :2]
    np.savez(tmp_path / "d" / "epoch_001.npz", **d)
    with pytest.raises(InputError, match="weight"):
        convert(tmp_path / "d", tmp_path / "r.h5")


def test_missing_arrays_and_object_arrays(tmp_path):
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "d" / "ep1.npz", features=np.zeros((3, 2)))
    with pytest.raises(InputError, match="no array 'labels'"):
        convert(tmp_path / "d", tmp_path / "r.h5")
    np.savez(tmp_path / "d" / "ep1.npz", features=np.array([object()] * 3),
             labels=np.zeros(3, int))
    with pytest.raises(InputError, match="unpickling"):
        convert(tmp_path / "d", tmp_path / "r.h5")


def test_folder_problems(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        convert(tmp_path / "nope", tmp_path / "r.h5")
    (tmp_path / "e").mkdir()
    with pytest.raises(InputError, match="no .npz"):
        convert(tmp_path / "e", tmp_path / "r.h5")
    _dumps(tmp_path / "f", epochs=(1,))
    np.savez(tmp_path / "f" / "ep01.npz", features=np.zeros((3, 2)), labels=np.zeros(3, int))
    with pytest.raises(InputError, match="epoch 1 appears twice"):
        convert(tmp_path / "f", tmp_path / "r.h5")


def test_pt_dumps(tmp_path):
    torch = pytest.importorskip("torch")
    (tmp_path / "d").mkdir()
    y = torch.arange(12) % 3
    for e in (1, 5):
        torch.save({"features": torch.randn(12, 4), "labels": y, "weight": torch.randn(3, 4)},
                   tmp_path / "d" / f"epoch{e}.pt")
    info = convert(tmp_path / "d", tmp_path / "r.h5")
    assert info["epochs"] == [1, 5] and info["weight"] and not info["bias"]
    torch.save([1, 2], tmp_path / "d" / "epoch9.pt")
    with pytest.raises(InputError, match="expected a dict"):
        convert(tmp_path / "d", tmp_path / "r2.h5")


def test_cli_convert(tmp_path):
    _dumps(tmp_path / "d")
    out = tmp_path / "r.h5"
    r = run_cli("convert", str(tmp_path / "d"), str(out), "--loss", "mse")
    assert r.exit_code == 0, r.output
    assert "3 epochs" in r.stdout
    r = run_cli("convert", str(tmp_path / "d"), str(out))
    assert r.exit_code == 2 and "exists" in r.stderr
    r = run_cli("convert", str(tmp_path / "missing"), str(tmp_path / "x.h5"))
    assert r.exit_code == 3 and "no such folder" in r.stderr
    r = run_cli("metrics", str(out), "-f", "json")
    assert r.exit_code == 0


def test_numeric_scalars_are_carried_and_the_rest_listed(tmp_path):
    """Extra keys of a dump: numbers go to /scalars, everything else is named as ignored."""
    folder = tmp_path / "d"
    folder.mkdir()
    y = np.arange(12) % 3
    rng = np.random.default_rng(0)
    for e, loss in ((1, 0.5), (4, 0.25)):
        np.savez(folder / f"epoch_{e}.npz", features=rng.standard_normal((12, 4)), labels=y,
                 train_loss=np.float64(loss), lr=np.array([0.1]), step=np.int64(10 * e),
                 names=np.array(["a", "b"]), grads=rng.standard_normal((3, 4)),
                 epoch=np.int64(e))
    info = convert(folder, tmp_path / "r.h5")
    assert info["scalars"] == ["lr", "step", "train_loss"]
    assert set(info["ignored"]) == {"names", "grads", "epoch"}
    with open_run(tmp_path / "r.h5") as run:
        assert run.scalars(4) == {"lr": 0.1, "step": 40.0, "train_loss": 0.25}
    r = run_cli("convert", folder, tmp_path / "r2.h5")
    assert r.exit_code == 0, r.stderr
    assert "scalars: lr, step, train_loss" in r.stdout
    assert "ignored" in r.stderr and "grads (array float64 3×4)" in r.stderr
