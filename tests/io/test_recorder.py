"""The statistics recorder: two passes on the model's device equal the features path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ncanalyze.core.accumulator import class_stats
from ncanalyze.core.decisions import PredictionAccumulator
from ncanalyze.errors import InputError, UsageError
from tests.factories import tiny_lm, token_batches

torch = pytest.importorskip("torch")
from ncanalyze.capture import penultimate_features  # noqa: E402
from ncanalyze.recorder import record_statistics, record_statistics_epoch  # noqa: E402

VOCAB = 11


def _reference(model, batches, num_classes=VOCAB):
    """Statistics and decisions of the captured features (the features-run path)."""
    feats, y = penultimate_features(model, batches, model.head, dtype=np.float64)
    stats = class_stats(feats, y, num_classes)
    w = model.head.weight.detach().numpy().astype(np.float64)
    b = model.head.bias.detach().numpy().astype(np.float64)
    pred = PredictionAccumulator(np.asarray(stats.means), w, b, ncc_classes=stats.class_ids)
    pred.update(feats, y)
    return stats, pred.counts()


def _assert_same(got, ref, rtol):
    np.testing.assert_array_equal(got.class_ids, ref.class_ids)
    np.testing.assert_array_equal(got.counts, ref.counts)
    assert got.num_samples == ref.num_samples and got.num_classes_total == VOCAB
    scale = np.abs(ref.means).max()
    np.testing.assert_allclose(got.means, ref.means, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got.within_scatter, ref.within_scatter, rtol=rtol,
                               atol=rtol * np.abs(ref.within_scatter).max())
    np.testing.assert_allclose(got.class_scatter, ref.class_scatter, rtol=rtol)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_recorder_equals_the_features_path(backend, dtype):
    model, batches = tiny_lm(vocab=VOCAB, dtype=dtype), token_batches(vocab=VOCAB)
    rec = record_statistics(model, batches, model.head, backend=backend)
    stats, decisions = _reference(model, batches)
    _assert_same(rec.stats, stats, 1e-12)
    assert rec.decisions == decisions and rec.decisions.with_classifier
    assert rec.feature_dtype == str(dtype).removeprefix("torch.")
    assert rec.weight.dtype == np.dtype(str(dtype).removeprefix("torch."))
    np.testing.assert_array_equal(rec.weight, model.head.weight.detach().numpy())
    assert not model.head._forward_pre_hooks and model.training


def test_hugging_face_batches_with_unshifted_labels():
    """Mappings ``model(**batch)`` whose labels are the tokens (shifted by the recorder)."""

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = tiny_lm(vocab=VOCAB)

        def forward(self, input_ids):
            return self.lm(input_ids)

    model = Wrapped()
    plain = token_batches(vocab=VOCAB, ignore=0.0)
    # labels are the tokens themselves: position t's label is token t + 1
    hf = [{"input_ids": ids, "labels": ids} for ids, _ in plain]
    expected = [(ids, torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], 1))
                for ids, _ in plain]
    rec = record_statistics(model, hf, "lm.head", shift_labels=True)
    ref = record_statistics(model, expected, model.lm.head)
    _assert_same(rec.stats, ref.stats, 0)
    assert rec.decisions == ref.decisions


def test_module_output_and_layers_without_a_classifier():
    model, batches = tiny_lm(vocab=VOCAB), token_batches(vocab=VOCAB)
    rec = record_statistics(model, batches, module=model.body, output=True, num_classes=VOCAB,
                            layers={"embed": model.embed})
    assert rec.weight is None and not rec.decisions.with_classifier
    assert set(rec.layers) == {"embed"}
    assert rec.layers["embed"].num_samples == rec.stats.num_samples


def test_splits_use_the_training_means():
    model = tiny_lm(vocab=VOCAB)
    train, test = token_batches(vocab=VOCAB), token_batches(vocab=VOCAB, seed=7, batches=2)
    rec = record_statistics(model, train, model.head, splits={"test": test})
    stats_test, got = rec.splits["test"]
    feats, y = penultimate_features(model, test, model.head, dtype=np.float64)
    _assert_same(stats_test, class_stats(feats, y, VOCAB), 1e-12)
    w = model.head.weight.detach().numpy().astype(np.float64)
    b = model.head.bias.detach().numpy().astype(np.float64)
    pred = PredictionAccumulator(np.asarray(rec.stats.means), w, b,
                                 ncc_classes=rec.stats.class_ids)
    pred.update(feats, y)
    assert got == pred.counts()


class _NoWrite:
    """A writer that must not be reached."""

    def add_statistics(self, *args, **kwargs):
        raise AssertionError("written despite bad input")


def _epoch(batches, **kw):
    model = kw.pop("model", None) or tiny_lm(vocab=VOCAB)
    return record_statistics_epoch(_NoWrite(), 0, model, batches, kw.pop("classifier", "head"),
                                   **kw)


def test_label_outside_the_classes_is_refused_before_writing():
    batches = token_batches(vocab=VOCAB)
    batches[1][1][2, 3] = VOCAB
    with pytest.raises(InputError, match=rf"batch 1 has label {VOCAB} outside \[0, {VOCAB}\)"):
        _epoch(batches)
    batches[1][1][2, 3] = -5
    with pytest.raises(InputError, match="label -5 outside"):
        _epoch(batches)


def test_loader_that_changes_between_passes_is_refused_before_writing():
    batches = token_batches(vocab=VOCAB)

    class Shrinking:
        passes = 0

        def __iter__(self):
            Shrinking.passes += 1
            return iter(batches if Shrinking.passes == 1 else batches[:-1])

    with pytest.raises(UsageError, match=r"yielded \d+ labelled samples in the decision pass "
                                         r"but \d+ in the statistics pass"):
        _epoch(Shrinking())


def test_a_loader_whose_positions_are_all_ignored_is_refused():
    """Every label -100 (or a batch that is all padding) used to return counts of 0 and print
    NumPy's 'Mean of empty slice' warnings."""
    batches = token_batches(vocab=VOCAB)
    for _, labels in batches:
        labels[...] = -100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UsageError, match="yielded no labelled sample"):
            _epoch(batches)


def test_features_with_nan_are_refused_before_writing():
    """A model whose features hold NaN used to be recorded (NaN statistics returned)."""
    model = tiny_lm(vocab=VOCAB)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(InputError, match="NaN or Inf"):
        _epoch(token_batches(vocab=VOCAB), model=model)


def test_head_that_does_not_match_is_refused():
    batches = token_batches(vocab=VOCAB)
    with pytest.raises(UsageError, match="the classifier has 11 outputs but num_classes is 12"):
        _epoch(batches, num_classes=12)
    with pytest.raises(UsageError, match="the features have 11 columns but the classifier has 6"):
        _epoch(batches, module="head", output=True)
    with pytest.raises(UsageError, match="'nope' did not run|no submodule 'nope'"):
        _epoch(batches, layers={"x": "nope"})


def test_two_ranks_merge_exactly_and_fail_together(tmp_path):
    """A two-process gloo group: each rank records its shard; both return the statistics of
    all batches, and a bad label on one rank is an error on both (no rank left waiting)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", str(rank), "2",
                               str(tmp_path / "init"), str(tmp_path / f"r{rank}.json")],
                              cwd=root, env=env, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    got = [json.loads((tmp_path / f"r{rank}.json").read_text()) for rank in (0, 1)]
    model = tiny_lm(vocab=VOCAB)
    whole = record_statistics(model, token_batches(vocab=VOCAB, batches=5), model.head,
                              splits={"test": token_batches(vocab=VOCAB, batches=3, seed=7)})
    d, (ts, td) = whole.decisions, whole.splits["test"]
    for g in got:
        np.testing.assert_array_equal(g["classes"], whole.stats.class_ids)
        np.testing.assert_array_equal(g["counts"], whole.stats.counts)
        np.testing.assert_allclose(g["means"], whole.stats.means, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g["within"], whole.stats.within_scatter, rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(g["class_scatter"], whole.stats.class_scatter, rtol=1e-12)
        assert g["decisions"] == [d.total, d.ncc_correct, d.classifier_correct, d.mismatch]
        np.testing.assert_allclose(g["test_within"], ts.within_scatter, rtol=1e-12, atol=1e-12)
        assert g["test_decisions"] == [td.total, td.ncc_correct, td.classifier_correct,
                                       td.mismatch]
        assert g["error"] is not None and g["error"].startswith("rank 1: ")
        assert "label 11 outside [0, 11)" in g["error"]


def test_recorded_epochs_read_back_and_bad_input_leaves_the_file_intact(tmp_path):
    from ncanalyze.io import RunWriter, open_run

    model, batches = tiny_lm(vocab=VOCAB), token_batches(vocab=VOCAB)
    path = tmp_path / "lm.h5"
    bad = token_batches(vocab=VOCAB)
    bad[2][1][0, 0] = VOCAB
    with RunWriter(path, num_classes=VOCAB, statistics=True) as w:
        rec = record_statistics_epoch(w, 0, model, batches, model.head,
                                      scalars={"train_loss": 2.5})
        with pytest.raises(InputError, match="outside"):
            record_statistics_epoch(w, 1, model, bad, model.head)
        record_statistics_epoch(w, 2, model, batches, model.head,
                                scalars={"train_loss": 1.5})
    with open_run(path) as run:
        assert run.kind == "statistics" and run.info.epochs.tolist() == [0, 2]
        got = run.statistics(2)
        assert got.feature_dtype == "float32"
        ids = rec.stats.class_ids
        np.testing.assert_array_equal(got.counts[ids], rec.stats.counts)
        np.testing.assert_array_equal(got.means[ids], rec.stats.means)
        np.testing.assert_array_equal(got.within_scatter, rec.stats.within_scatter)
        assert got.decisions["total"] == rec.decisions.total
        np.testing.assert_array_equal(run.weight(2), model.head.weight.detach().numpy())


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_many_classes_few_per_block(backend, monkeypatch):
    """C = 300 with ~100 tokens: the per-block sums over the classes present, the scatter-add
    segment sums (torch) and the in-place compaction of absent classes in finalize."""
    import ncanalyze.core.accumulator as accumulator_module

    monkeypatch.setattr(accumulator_module, "block_rows", lambda p: 32)  # several blocks
    model, batches = tiny_lm(vocab=300), token_batches(vocab=300, batches=4)
    rec = record_statistics(model, batches, model.head, backend=backend)
    feats, y = penultimate_features(model, batches, model.head, dtype=np.float64)
    ref = class_stats(feats, y, 300)
    assert rec.stats.num_classes < 150 and rec.stats.num_classes_total == 300
    np.testing.assert_array_equal(rec.stats.class_ids, ref.class_ids)
    np.testing.assert_allclose(rec.stats.means, ref.means, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(rec.stats.within_scatter, ref.within_scatter, rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(rec.stats.class_scatter, ref.class_scatter, rtol=1e-10,
                               atol=1e-13)
