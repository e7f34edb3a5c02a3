"""The optional training-framework callbacks, on a 2-layer GPT-2 built from a config and
trained on CPU on the standard library's pydoc topics with a tokenizer trained here."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.factories import lm_examples, pydoc_token_ids, tiny_gpt2

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

VOCAB = 256


@pytest.fixture(scope="module")
def corpus():
    ids, _ = pydoc_token_ids(VOCAB, chars=12_000)
    examples = lm_examples(ids, 32)
    return examples[:16], examples[16:24]


def _loader(examples, batch=8):
    from torch.utils.data import DataLoader

    return DataLoader(examples, batch_size=batch)


def _assert_matches_a_fresh_recording(path, model, loader, epoch):
    """The file's epoch equals recording the final model again (nothing lost or shifted)."""
    from ncanalyze.io import open_run
    from ncanalyze.recorder import record_statistics

    rec = record_statistics(model, loader, model.lm_head, shift_labels=True)
    with open_run(path) as run:
        got = run.statistics(epoch)
        ids = rec.stats.class_ids
        np.testing.assert_array_equal(got.counts[ids], rec.stats.counts)
        np.testing.assert_allclose(got.means[ids], rec.stats.means, rtol=1e-12, atol=1e-12)
        assert got.decisions["total"] == rec.decisions.total
        np.testing.assert_array_equal(run.weight(epoch), model.lm_head.weight.detach().numpy())


def test_hugging_face_trainer_records_statistics_at_chosen_epochs(tmp_path, corpus):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from transformers import Trainer, TrainingArguments

    from ncanalyze.integrations.hf import NCRecorderCallback
    from ncanalyze.io import open_run

    train, held_out = corpus
    model = tiny_gpt2(VOCAB)
    path = tmp_path / "hf.h5"
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2,
                             per_device_train_batch_size=8, learning_rate=3e-3,
                             report_to=[], use_cpu=True, save_strategy="no", logging_steps=2,
                             disable_tqdm=True, seed=0)
    callback = NCRecorderCallback(path, _loader(held_out), epochs=[0, 2], weight_decay=0.0)
    Trainer(model=model, args=args, train_dataset=train, callbacks=[callback]).train()
    with open_run(path) as run:
        assert run.kind == "statistics" and run.info.epochs.tolist() == [0, 2]
        assert run.info.num_classes == VOCAB
        assert run.scalars(0)["train_loss"] is None  # before the first step
        assert run.scalars(2)["train_loss"] > 0 and run.scalars(2)["global_step"] == 4
    _assert_matches_a_fresh_recording(path, model, _loader(held_out), 2)


def test_lightning_records_statistics_every_epoch_and_features_on_request(tmp_path, corpus):
    lightning = pytest.importorskip("lightning")
    from ncanalyze.integrations.lightning import NCRecorder
    from ncanalyze.io import open_run

    class LitLM(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = tiny_gpt2(VOCAB)

        def training_step(self, batch, _):
            loss = self.model(**batch).loss
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=3e-3)

    train, held_out = corpus
    lit = LitLM()
    stats_path, feats_path = tmp_path / "stats.h5", tmp_path / "feats.h5"
    trainer = lightning.Trainer(max_epochs=2, accelerator="cpu", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False,
                                callbacks=[NCRecorder(stats_path, _loader(held_out)),
                                           NCRecorder(feats_path, _loader(held_out),
                                                      mode="features", steps=[3])])
    trainer.fit(lit, _loader(train))
    with open_run(stats_path) as run:
        assert run.kind == "statistics" and run.info.epochs.tolist() == [1, 2]
    _assert_matches_a_fresh_recording(stats_path, lit.model, _loader(held_out), 2)
    with open_run(feats_path) as run:
        assert run.kind == "features" and run.info.epochs.tolist() == [3]
        assert run.info.num_samples == 8 * 31  # every position but the last of each block


def test_import_ncanalyze_imports_no_training_framework():
    code = ("import sys, ncanalyze, ncanalyze.recorder, ncanalyze.capture, ncanalyze.cli; "
            "print(sorted(m for m in ('transformers', 'lightning', 'pytorch_lightning') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
