"""capture: forward hooks record the classifier's input and earlier layers into a run."""

import numpy as np
import pytest

from ncanalyze.errors import UsageError
from ncanalyze.io import RunWriter, open_run

torch = pytest.importorskip("torch")
from ncanalyze.capture import capture_features, penultimate_features, record_epoch  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6),
                               torch.nn.ReLU(), torch.nn.Linear(6, 3))


def _loader(n=20, bs=7):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g)
    y = torch.arange(n) % 3
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)], x, y


def test_penultimate_is_classifier_input():
    model, (loader, x, y) = _model(), _loader()
    model.train()
    feats, labels = penultimate_features(model, loader, model[4])
    with torch.no_grad():
        expected = model[3](model[2](model[1](model[0](x)))).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(labels, y.numpy())
    assert model.training  # mode restored
    assert not model[4]._forward_pre_hooks  # hooks removed


def test_capture_by_name():
    model, (loader, x, _) = _model(), _loader()
    out, _ = capture_features(model, loader, {"first": "1"})
    np.testing.assert_allclose(out["first"], torch.relu(model[0](x)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(UsageError, match="no submodule"):
        capture_features(model, loader, {"x": "nope"})


def test_record_epoch_writes_a_run(tmp_path):
    model, (loader, x, y) = _model(), _loader()
    test_loader, _, y_test = _loader(9, 4)
    with RunWriter(tmp_path / "r.h5", y, splits={"test": y_test}) as w:
        for epoch in (0, 1):
            record_epoch(w, epoch, model, loader, classifier=model[4],
                         layers={"block1": model[1]}, splits={"test": test_loader},
                         train_loss=0.5)
    with open_run(tmp_path / "r.h5") as run:
        assert run.info.epochs.tolist() == [0, 1]
        assert run.info.num_features == 6
        np.testing.assert_allclose(run.weight(1), model[4].weight.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(run.bias(1), model[4].bias.detach().numpy(), rtol=1e-6)
        assert set(run.info.layers) == {"block1"} and set(run.info.splits) == {"test"}


def test_shuffled_loader_is_refused(tmp_path):
    model, (loader, x, y) = _model(), _loader()
    with RunWriter(tmp_path / "r.h5", y.flip(0)) as w:
        with pytest.raises(UsageError, match="differ"):
            record_epoch(w, 0, model, loader, classifier=model[4])


def _lm_features(model, batches):
    """The head's input at every labelled position, computed by hand."""
    rows, labels = [], []
    with torch.no_grad():
        for ids, y in batches:
            h = torch.tanh(model.body(model.embed(ids)))
            keep = y != -100
            rows.append(h[keep])
            labels.append(y[keep])
    return torch.cat(rows).numpy(), torch.cat(labels).numpy()


def test_causal_lm_features_are_one_row_per_labelled_position():
    from tests.factories import tiny_lm, token_batches

    model, batches = tiny_lm(), token_batches()
    feats, labels = penultimate_features(model, batches, model.head)
    expected, y = _lm_features(model, batches)
    assert feats.shape == expected.shape and -100 not in labels
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_allclose(feats, expected, rtol=1e-6, atol=1e-7)


def test_float64_model_gives_float64_features_exactly(tmp_path):
    from tests.factories import tiny_lm, token_batches

    model, batches = tiny_lm(dtype=torch.float64), token_batches()
    feats, _ = penultimate_features(model, batches, model.head, dtype=np.float64)
    expected, y = _lm_features(model, batches)
    assert feats.dtype == np.float64
    np.testing.assert_array_equal(feats, expected)  # no float32 round trip
    with RunWriter(tmp_path / "lm.h5", y, num_classes=11) as w:
        record_epoch(w, 0, model, batches, classifier=model.head, dtype=np.float64)
    with open_run(tmp_path / "lm.h5") as run:
        np.testing.assert_array_equal(run.weight(0), model.head.weight.detach().numpy())


def test_features_that_do_not_match_the_labels_are_refused():
    from tests.factories import tiny_lm, token_batches

    model = tiny_lm()
    batches = [(ids, y[:, :-1]) for ids, y in token_batches()]
    with pytest.raises(UsageError, match=r"features of shape \(4, 9, 6\) do not match labels"):
        penultimate_features(model, batches, model.head)
