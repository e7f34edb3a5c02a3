"""Statistics runs (docs/FORMAT.md, "Statistics runs"): the writer's API, what it stores, and
the rules it shares with the reader (a lie is refused before anything is written)."""

import h5py
import numpy as np
import pytest

from ncanalyze.core.decisions import DecisionCounts
from ncanalyze.errors import InputError, UsageError
from ncanalyze.io import RunWriter, open_run
from tests.factories import statistics_of, write_statistics_run


def _data(rng, n=120, c=4, p=5, absent=None):
    y = np.arange(n) % c
    if absent is not None:
        y[y == absent] = (absent + 1) % c
    h = rng.normal(size=(n, p)) + 3 * np.eye(c, p)[y]
    return y, h, rng.normal(size=(c, p)), rng.normal(size=c)


def test_roundtrip_stores_full_c_rows_and_attributes(tmp_path, rng):
    y, h, w, b = _data(rng, absent=2)
    path = write_statistics_run(tmp_path / "s.h5", y, [h, 2 * h], [w, w], [b, b], epochs=[3, 9],
                                num_classes=4, feature_dtype="bfloat16", lr=[0.1, 0.01])
    with h5py.File(path, "r") as f:
        assert f.attrs["ncanalyze_format"] == 2
        assert f["statistics"].attrs["feature_dtype"] == "bfloat16"
        assert f["statistics/means"].shape == (2, 4, 5) and f["statistics/means"].dtype == "f8"
        assert f["statistics/counts"][1, 2] == 0 and not f["statistics/means"][1, 2].any()
        assert "features" not in f
    with open_run(path) as run:
        assert run.kind == "statistics" and run.info.epochs.tolist() == [3, 9]
        assert run.info.num_samples == 120 and run.train.feature_dtype == "bfloat16"
        np.testing.assert_array_equal(run.class_counts(), np.bincount(y, minlength=4))
        stored = run.statistics(9)
        stats, dec = statistics_of(2 * h, y, 4, w, b)
        np.testing.assert_array_equal(stored.means[stats.class_ids], stats.means)
        np.testing.assert_array_equal(stored.within_scatter, stats.within_scatter)
        assert stored.decisions == {"ncc_correct": dec.ncc_correct, "total": 120,
                                    "classifier_correct": dec.classifier_correct,
                                    "ncc_mismatch": dec.mismatch}
        assert run.scalars(9) == {"lr": 0.01}
        with pytest.raises(InputError, match="no per-sample features"):
            next(run.iter_chunks(3))


def test_without_labels_needs_num_classes(tmp_path):
    with pytest.raises(UsageError, match="needs num_classes"):
        RunWriter(tmp_path / "s.h5", None, statistics=True)
    with pytest.raises(UsageError, match="labels are required"):
        RunWriter(tmp_path / "f.h5", None, num_classes=3)


def test_labels_optional_layers_and_splits(tmp_path, rng):
    y, h, w, b = _data(rng)
    yt = np.arange(40) % 4
    ht = rng.normal(size=(40, 5))
    path = write_statistics_run(tmp_path / "s.h5", y, [h], [w], [b], store_labels=False,
                                num_classes=4, layers={"l1": [h[:, :3]]},
                                splits={"test": (yt, [ht])})
    with h5py.File(path, "r") as f:
        assert "labels" not in f and "labels" not in f["splits/test"]
    with open_run(path) as run:
        assert run.info.layers["l1"].num_features == 3
        assert run.info.splits["test"].num_samples == 40
        assert run.statistics(1, run.info.splits["test"]).decisions["total"] == 40
        assert run.statistics(1, run.info.layers["l1"]).decisions is None
        with pytest.raises(InputError, match="stores no labels"):
            run.labels()


def _writer(tmp_path, y, **kw):
    return RunWriter(tmp_path / "s.h5", y, num_classes=4, statistics=True, overwrite=True, **kw)


@pytest.mark.parametrize("lie, match", [
    (lambda s, d: s.update(counts=s["counts"] + np.array([1, 0, 0, 0])), "differ from the labels"),
    (lambda s, d: s.update(within_scatter=s["within_scatter"] + np.triu(np.ones((5, 5)), 1)),
     "not symmetric"),
    (lambda s, d: s.update(class_scatter=-s["class_scatter"]), "negative sum of squares"),
    (lambda s, d: s["means"].__setitem__((0, 0), np.nan), "NaN or Inf"),
    (lambda s, d: s.update(means=s["means"][:3]), r"must have shape \(4, P\)"),
    (lambda s, d: s.update(class_scatter=2 * s["class_scatter"]), "trace of within_scatter"),
    (lambda s, d: d.update(ncc_correct=10**6), "outside 0..120"),
    (lambda s, d: d.update(ncc_mismatch=0, classifier_correct=0, ncc_correct=5),
     "cannot explain"),
])
def test_writer_refuses_what_the_reader_refuses(tmp_path, rng, lie, match):
    y, h, w, b = _data(rng)
    stats, dec = statistics_of(h, y, 4, w, b)
    s = {"counts": stats.counts.astype(np.int64), "means": stats.means.copy(),
         "within_scatter": stats.within_scatter.copy(), "class_scatter": stats.class_scatter}
    d = {"ncc_correct": dec.ncc_correct, "classifier_correct": dec.classifier_correct,
         "ncc_mismatch": dec.mismatch}
    lie(s, d)
    with _writer(tmp_path, y) as writer:
        with pytest.raises(UsageError, match=match):
            writer.add_statistics(0, s, d, w, b, feature_dtype="float32")
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert "epoch" not in f  # nothing of the epoch was written


def test_writer_api_rules(tmp_path, rng):
    y, h, w, b = _data(rng)
    stats, dec = statistics_of(h, y, 4, w, b)
    with _writer(tmp_path, y, splits=["test"]) as writer:
        with pytest.raises(UsageError, match="feature_dtype .* is required"):
            writer.add_statistics(0, stats, dec, w, b)
        with pytest.raises(UsageError, match="must name one of"):
            writer.add_statistics(0, stats, dec, w, b, feature_dtype="int8")
        with pytest.raises(UsageError, match="use add_statistics"):
            writer.add_epoch(0, h)
        with pytest.raises(UsageError, match="decisions count 7 samples"):
            writer.add_statistics(0, stats, DecisionCounts(7, 1, 1, 0, True), w, b,
                                  feature_dtype="float32", splits={"test": (stats, dec)})
        with pytest.raises(UsageError, match="split 'test' was declared"):
            writer.add_statistics(0, stats, dec, w, b, feature_dtype="float32")
        writer.add_statistics(0, stats, dec, w, b, feature_dtype=np.float32,
                              splits={"test": (stats, dec)})
        with pytest.raises(UsageError, match="differs from the first epoch"):
            writer.add_statistics(1, stats, dec, w, b, feature_dtype="float16",
                                  splits={"test": (stats, dec)})
        counts = DecisionCounts(dec.total, dec.ncc_correct, 0, 0, False)
        with pytest.raises(UsageError, match="classifier_correct: is missing"):
            writer.add_statistics(1, stats, counts, w, b, splits={"test": (stats, dec)})
    with pytest.raises(UsageError, match="add_statistics needs"):
        with RunWriter(tmp_path / "f.h5", y) as features_writer:
            features_writer.add_statistics(0, stats, dec, feature_dtype="float32")


def test_torch_dtype_and_device_stats(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from ncanalyze.core.accumulator import class_stats

    y, h, w, b = _data(rng)
    stats = class_stats(torch.as_tensor(h), y, 4)  # statistics as torch tensors
    _, dec = statistics_of(h, y, 4, w, b)
    with _writer(tmp_path, y) as writer:
        writer.add_statistics(0, stats, dec, torch.as_tensor(w), torch.as_tensor(b),
                              feature_dtype=torch.bfloat16)
    with open_run(tmp_path / "s.h5") as run:
        assert run.train.feature_dtype == "bfloat16"


def test_before_the_first_epoch_no_complete_epoch_yet(tmp_path, rng):
    """A statistics writer without labels leaves a header of attributes only until its
    first epoch: readers (and --follow) see "no complete epoch yet", as for a features run."""
    y, h, w, b = _data(rng)
    with RunWriter(tmp_path / "s.h5", None, num_classes=4, statistics=True) as writer:
        with pytest.raises(InputError, match="no complete epoch yet") as info:
            open_run(tmp_path / "s.h5")
        assert info.value.dataset == "/epoch"
        stats, dec = statistics_of(h, y, 4, w, b)
        writer.add_statistics(0, stats, dec, w, b, feature_dtype="float32")
        with open_run(tmp_path / "s.h5") as run:
            assert run.info.epochs.tolist() == [0]


@pytest.mark.parametrize("bad", [3.7, 3.0, "4", True, float("nan")])
def test_num_classes_must_be_an_integer(tmp_path, bad):
    """A fractional or non-numeric class count was truncated (3.7 → 3) or raised a raw error."""
    with pytest.raises(UsageError, match="num_classes"):
        RunWriter(tmp_path / "f.h5", None, num_classes=bad, statistics=True)
    with pytest.raises(UsageError, match="num_classes"):
        RunWriter(tmp_path / "g.h5", np.array([0, 1, 1]), num_classes=bad)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("bad", [0, 2.5, "2", True])
def test_steps_per_epoch_must_be_a_positive_integer(tmp_path, bad):
    with pytest.raises(UsageError, match="steps_per_epoch"):
        RunWriter(tmp_path / "f.h5", np.array([0, 1, 1]), steps_per_epoch=bad)
